"""Repository memory: unbounded-n matches against remembered texts, mixed into the denoiser's distribution.

Code repeats inside a project (identifiers, call patterns, whole lines); a small network cannot memorize a
project it has never seen, an index can. At a masked position whose left neighbour is known, the memory
finds the longest suffix of the known text before it that occurs in the remembered texts (infini-gram's
backoff to the longest matching context), tokenizes what followed each occurrence, and counts the first
tokens: count(context + token) / count(context). Mirrored, the known text right of a position votes for the
token that preceded its occurrences.

Matching is on UTF-8 bytes, not token ids: the prefix of an infill ends where the cursor is, mid-word or
after an indentation, and tokenizes differently from the same text inside a file ("\\n", "        " versus
"\\n", "       ", " bu"), so a token-level index would miss exactly the matches that matter. The continuations
are tokenized the way the canvas is (separately from the context), so the votes are in the canvas's tokens.

Texts are kept as one bytes object per source; a search runs over two byte strings, the document being
edited and all other sources joined by a byte that never occurs in UTF-8 (0xFF), so an edit replaces one
source and copies nothing else (no index to rebuild). A search is a handful of `bytes.find` calls: the
longest match in the document by galloping and bisection (a suffix that occurs implies every shorter one
occurs), then one more find in the rest unless it holds a longer one, then the occurrences.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from itertools import islice
from typing import Protocol

import torch
from torch import Tensor

from engine.api import Proposal
from engine.params import MemoryConfig

SEP = b"\xff"  # between sources and at a cursor; never in UTF-8, so no match crosses it
CONTINUATION_BYTES = 24  # text taken after (or before) an occurrence to tokenize for the vote


@dataclass(frozen=True)
class Match:
    length: int  # bytes matched
    # per occurrence (segment, position): where what follows it starts (left match) or where it starts (right)
    at: tuple[tuple[int, int], ...]
    segments: tuple[bytes, ...] = ()  # the memory's byte strings the positions refer to

    @property
    def count(self) -> int:
        return len(self.at)

    def following(self) -> list[bytes]:
        return [self.segments[s][a : a + CONTINUATION_BYTES].split(SEP)[0] for s, a in self.at]

    def preceding(self) -> list[bytes]:
        return [self.segments[s][max(0, a - CONTINUATION_BYTES) : a].split(SEP)[-1] for s, a in self.at]

    def extend(self, piece: bytes) -> Match:
        """The occurrences of this (left) match that `piece` follows, as a match of the longer context."""
        at = tuple((s, a + len(piece)) for s, a in self.at if self.segments[s].startswith(piece, a))
        return Match(self.length + len(piece), at, self.segments) if at else NO_MATCH


NO_MATCH = Match(0, ())


class TextIndex:
    """Remembered texts by source name, with a size bound; longest-match queries over all of them.

    The texts are searched as two byte strings: the most recently updated source (the document being
    edited) and all the others joined, which stays as it is while the same document is edited, so a
    keystroke never copies the whole memory."""

    def __init__(self, max_bytes: int = 8 * 2**20):
        self.max_bytes = max_bytes
        self._sources: dict[str, bytes] = {}  # least recently updated first
        self._size = 0
        self._newest: bytes | None = None
        self._rest: bytes | None = None  # all but the most recently updated source, joined
        self._blind = (0, 0)  # bytes of the newest source that no continuation may start in

    def set(self, key: str, data: bytes, blind: tuple[int, int] = (0, 0)) -> None:
        if not self._sources or next(reversed(self._sources)) != key:
            self._rest = None  # typing in the same document keeps the rest as it is
        self._blind = blind
        self._size += len(data) - len(self._sources.pop(key, b""))
        self._sources[key] = data
        self._newest = None
        while self._size > self.max_bytes and len(self._sources) > 1:
            oldest = next(iter(self._sources))  # evict the least recently updated source
            self._size -= len(self._sources.pop(oldest))
            self._rest = None

    def remove(self, key: str) -> None:
        if key in self._sources:
            self._size -= len(self._sources.pop(key))
            self._newest = self._rest = None

    def clear(self) -> None:
        self._sources.clear()
        self._size = 0
        self._newest = self._rest = None

    def keys(self) -> list[str]:
        return list(self._sources)

    def source(self, key: str) -> bytes:
        return self._sources.get(key, b"")

    @property
    def size(self) -> int:
        return self._size

    def segments(self) -> tuple[bytes, bytes]:
        # SEP at both ends of each keeps every hit - 1 and hit + len inside
        if self._newest is None:
            self._newest = SEP + next(reversed(self._sources.values()), b"") + SEP
        if self._rest is None:
            self._rest = SEP + SEP.join(list(self._sources.values())[-2::-1]) + SEP
        return self._newest, self._rest

    def blind(self) -> range:
        # in the newest segment, whose text starts at 1
        return range(self._blind[0] + 1, self._blind[1] + 1)

    def match_left(self, context: bytes, cfg: MemoryConfig) -> Match:
        """The longest suffix of `context` in memory that something follows (an occurrence right before a
        separator, such as the context itself at a cursor, has nothing to say), with its occurrences."""
        context = context[-cfg.max_length :].split(SEP)[-1]
        return self._match(lambda k: context[len(context) - k :], len(context), +1, cfg.max_occurrences)

    def match_right(self, context: bytes, cfg: MemoryConfig) -> Match:
        """The longest prefix of `context` in memory that something precedes, with its occurrences."""
        context = context[: cfg.max_length].split(SEP)[0]
        return self._match(lambda k: context[:k], len(context), -1, cfg.max_occurrences)

    def _match(self, piece: Callable[[int], bytes], limit: int, side: int, max_occurrences: int) -> Match:
        segments = self.segments()
        blinds = (self.blind() if side > 0 else range(0), range(0))
        best = 0
        for data, blind in zip(segments, blinds):  # the newest first: the rest is only searched for longer
            best = longest_match(lambda k: _find_all(data, piece(k), side, 1, blind), best, limit)
        if best == 0:
            return NO_MATCH
        at: list[tuple[int, int]] = []
        for s, (data, blind) in enumerate(zip(segments, blinds)):
            found = _find_all(data, piece(best), side, max_occurrences - len(at), blind)
            at += [(s, a + best if side > 0 else a) for a in found]
        return Match(best, tuple(at), segments)


def _find_all(data: bytes, needle: bytes, side: int, limit: int, blind: range = range(0)) -> list[int]:
    # starts of up to `limit` occurrences of needle with a byte other than SEP after (side +1) or before it;
    # with side +1, none whose continuation starts in `blind`
    out, at = [], data.find(needle)
    while at >= 0 and len(out) < limit:
        neighbour = data[at + len(needle)] if side > 0 else data[at - 1]
        if neighbour != SEP[0] and (at + len(needle)) not in blind:
            out.append(at)
        at = data.find(needle, at + 1)
    return out


def longest_match(occurs: Callable[[int], list[int]], known: int, limit: int) -> int:
    """The largest k in [known, limit] with an occurrence of length k (`known` needs none): occurrence is
    monotone in k. One search when nothing longer than `known` occurs; galloping up, then bisecting."""
    if known >= limit or not occurs(known + 1):
        return known
    lo, step = known + 1, 1
    while lo + step <= limit and occurs(lo + step):
        lo, step = lo + step, step * 2
    hi = min(limit, lo + step - 1)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if occurs(mid):
            lo = mid
        else:
            hi = mid - 1
    return lo


WORD = re.compile(rb"[A-Za-z_][A-Za-z0-9_]*")


def proposals(index: TextIndex, prefix: str, cfg: MemoryConfig, single_line: bool, limit: int,
              max_bytes: int = 240) -> list[Proposal]:
    """The distinct texts that followed the longest earlier occurrences of `prefix` (its last
    cfg.max_length bytes, at least cfg.min_length of them), most frequent first; a single line's end at its
    newline, else up to max_bytes."""
    m = index.match_left(prefix.encode("utf-8", "replace"), cfg)
    if m.length < cfg.min_length or not m.count:
        return []
    counts: Counter = Counter()
    for s, a in m.at:
        text = m.segments[s][a : a + max_bytes].split(SEP)[0]
        if single_line:
            text = text.split(b"\n", 1)[0]
        text = text.decode("utf-8", "ignore")
        if text.strip():
            counts[text] += 1
    return [Proposal(text, m.length, n, m.count) for text, n in counts.most_common(limit)]


class RepositoryMemory:
    """Texts by name (open documents, workspace files). With `cursor`, a text is cut there (a separator
    between the two sides), so a completion never matches the code it completes against the text that
    follows the cursor in the same document; and no continuation is taken from the line before the cursor's,
    the rest of the cursor's line or the line after it: a completion would only duplicate a neighbour."""

    def __init__(self, max_bytes: int = 8 * 2**20):
        self.index = TextIndex(max_bytes)
        self._words: dict[str, frozenset[bytes]] = {}  # identifiers per source, for contains()

    def update(self, key: str, text: str, cursor: int | None = None) -> None:
        if cursor is not None:
            cursor = max(0, min(cursor, len(text)))
            left, right = text[:cursor].encode("utf-8", "replace"), text[cursor:].encode("utf-8", "replace")
            line = left.rfind(b"\n")
            start = left.rfind(b"\n", 0, max(line, 0)) + 1 if line >= 0 else 0  # the line before the cursor's
            first = right.find(b"\n")
            second = right.find(b"\n", first + 1) if first >= 0 else -1
            end = len(left) + 1 + (len(right) if second < 0 else second)
            self.index.set(key, left + SEP + right, blind=(start, end))
        else:
            self.index.set(key, text.encode("utf-8", "replace"))
        self._words.pop(key, None)  # found again on the next contains()
        if len(self._words) > len(self.index.keys()) + 64:  # sources the index evicted
            kept = set(self.index.keys())
            self._words = {k: v for k, v in self._words.items() if k in kept}

    def remove(self, key: str) -> None:
        self.index.remove(key)
        self._words.pop(key, None)

    def contains(self, word: str) -> bool:
        """Whether any remembered source holds `word` as a whole identifier."""
        needle = word.encode("utf-8", "replace")
        for key in self.index.keys():
            words = self._words.get(key)
            if words is None:
                words = self._words[key] = frozenset(WORD.findall(self.index.source(key)))
            if needle in words:
                return True
        return False

    def __bool__(self) -> bool:
        return self.index.size > 0

    def clear(self) -> None:
        self.index.clear()
        self._words.clear()

    def limit(self, max_bytes: int) -> None:
        """The most bytes kept; the least recently updated sources go first, at the next update."""
        self.index.max_bytes = max_bytes

    def report(self) -> dict:
        return {
            "sources": len(self.index.keys()),
            "bytes": self.index.size,
            "max_bytes": self.index.max_bytes,
        }


class Matcher(Protocol):
    """A fixed text collection answering longest-match queries (engine/corpus_index.py)."""

    def match_left(self, context: bytes, cfg: MemoryConfig) -> Match: ...


class MemoryPrior:
    """The denoiser's hook (engine.generate.Prior): mixes memory votes into the canvas logits.

    `prefix` and `suffix` are the texts around the canvas; `encode`/`decode` are the model's tokenizer;
    `skip` are token ids the memory never votes for (specials)."""

    def __init__(
        self,
        index: TextIndex,
        cfg: MemoryConfig,
        prefix: str,
        suffix: str,
        encode: Callable[[list[str]], list[list[int]]],
        decode: Callable[[list[int]], str],
        skip: frozenset[int],
        healed: str = "",
        corpus: Matcher | None = None,
    ):
        self.index, self.cfg, self.encode, self.decode, self.skip = index, cfg, encode, decode, skip
        self.corpus = corpus if cfg.corpus_weight > 0 else None
        self.prefix = prefix.encode("utf-8", "replace")[-cfg.max_length :]
        # text the prefix was healed of (typed blanks, or a token longer ones extend; engine/heal.py): the
        # middle starts with it
        self.healed = healed.encode("utf-8", "replace")
        self.suffix = suffix.encode("utf-8", "replace")[: cfg.max_length]
        # per completion: a context's match and vote (a chain step extends the match of the step before)
        self._matches: dict[tuple[str, bytes], Match] = {}
        self._votes: dict[tuple[str, bytes], Counter] = {}

    def __call__(self, logits: Tensor, canvas: Tensor, masked: Tensor) -> Tensor:
        length = canvas.shape[0]
        known = [not bool(x) for x in masked]
        ids = canvas.tolist()
        votes: dict[int, list[tuple[float, Counter]]] = {}
        agreed: list[int] = []  # chain positions where the network's first choice is the memory's
        best = logits.argmax(-1).tolist()
        for p in range(length):
            if known[p] or not (p == 0 or known[p - 1]):
                continue
            # a run of masks with a known left neighbour: follow the memory's most frequent continuation
            # along the run, so a remembered line can be committed in one forward, not one token per forward
            q = p
            while q > 0 and known[q - 1] and ids[q - 1] not in self.skip:
                q -= 1
            left = (self.prefix if q == 0 else b"") + self.decode(ids[q:p]).encode("utf-8", "replace")
            own = self.chain(left, p, known, best, votes, agreed, "left")
            if self.corpus is not None:
                # the corpus fills in what the project's match leaves open, from the run's first position on
                self.chain(left, p, known, best, votes, agreed, "corpus", own)
        if self.cfg.right:
            for p in range(length - 1):
                if known[p] or not known[p + 1] or ids[p + 1] in self.skip:
                    continue
                q = p + 1
                while q < length and known[q] and ids[q] not in self.skip:
                    q += 1
                votes.setdefault(p, []).append(
                    self.vote("right", self.decode(ids[p + 1 : q]).encode("utf-8", "replace"))
                )
        if not votes:
            return logits
        out = self.mix(logits, votes)
        for r in agreed:
            top = best[r]
            out[r] = float("-inf")
            out[r, top] = 0.0
        return out

    def mix(self, logits: Tensor, votes: dict[int, list[tuple[float, Counter]]]) -> Tensor:
        # row p: (1 - scale * total) * softmax(logits[p]) + sum_k scale * w_k * counts_k / |counts_k|
        # (all rows in one softmax and one scatter)
        out, v = logits.clone(), logits.shape[-1]
        rows, keep, at, tokens, values = [], [], [], [], []
        for p, pv in votes.items():
            total = sum(w for w, _ in pv)
            if total == 0:
                continue
            scale = min(1.0, self.cfg.weight / total)
            kept = 1.0 - scale * total
            for w, counts in pv:
                known = [t for t in counts if t < v]
                if not known:  # ids past the model's vocabulary (a tokenizer larger than the head)
                    kept += scale * w
                    continue
                norm = scale * w / sum(counts[t] for t in known)
                at += [len(rows)] * len(known)
                tokens += known
                values += [counts[t] * norm for t in known]
            rows.append(p)
            keep.append(kept)
        if not rows:
            return out
        index = torch.tensor(rows, device=logits.device)
        mix = torch.softmax(logits[index].float(), -1) * torch.tensor(keep, device=logits.device)[:, None]
        mix.index_put_((torch.tensor(at, dtype=torch.long, device=mix.device),
                        torch.tensor(tokens, dtype=torch.long, device=mix.device)),
                       torch.tensor(values, device=mix.device), accumulate=True)
        out[index] = torch.log(mix.clamp_min(1e-30)).to(out.dtype)
        return out

    def vote(
        self, source: str, context: bytes, parent: tuple[bytes, bytes] | None = None
    ) -> tuple[float, Counter]:
        """(mix weight, counts of the token voted for) for a context: "left" (the known text before a masked
        position, in this memory), "right" (the known text after it) or "corpus" (left, in the checkpoint's
        corpus index). `parent` (a shorter left context and the bytes added to it) lets a chain extend the
        match found one step before instead of searching the whole memory again."""
        key = (source, context)
        if key not in self._matches:
            m = self._extended(parent) if source == "left" and parent is not None else NO_MATCH
            if m.count == 0:
                if source == "right":
                    m = self.index.match_right(context, self.cfg)
                else:
                    where = self.index if source == "left" else self.corpus
                    m = where.match_left(self.typed(context), self.cfg)
            self._matches[key] = m
            self._votes[key] = self.count(m, "right" if source == "right" else "left", context)
        m, counts = self._matches[key], self._votes[key]
        weight = self.cfg.corpus_mix_weight if source == "corpus" else self.cfg.mix_weight
        return weight(m.length, m.count if counts else 0), counts

    def _extended(self, parent: tuple[bytes, bytes]) -> Match:
        # the left match of the shorter context, extended by the bytes a chain step added
        shorter, piece = parent
        if ("left", shorter) not in self._matches:
            return NO_MATCH
        if self.healed and shorter == self.prefix:
            # that match already covers the healed text, which the canvas's first token starts with
            if not piece.startswith(self.healed):
                return NO_MATCH
            piece = piece[len(self.healed) :]
        return self._matches["left", shorter].extend(piece)

    def follow(self, context: bytes, source: str = "left") -> Iterator[tuple[float, Counter, int]]:
        """(weight, counts, most voted token) along the memory's most voted continuation of a left
        `context`, each step assuming the token before; ends where the memory has nothing to say."""
        parent = None
        while True:
            weight, counts = self.vote(source, context, parent)
            if weight <= 0:
                return
            token = counts.most_common(1)[0][0]
            yield weight, counts, token
            piece = self.decode([token]).encode("utf-8", "replace")
            context, parent = context + piece, (context, piece)

    def chain(self, left: bytes, p: int, known: list[bool], best: list[int],
              votes: dict[int, list[tuple[float, Counter]]], agreed: list[int], source: str,
              own: dict[int, float] | None = None) -> dict[int, float]:
        """Votes from `left` on along the masked run starting at p (see follow); returns the weight given per
        position. With `own` (another source's weights) the weights are scaled by what that source leaves,
        and a position it decides alone is skipped."""
        agreeing, given, steps = True, {}, self.follow(left, source)
        for r in range(p, len(known)):
            step = None if known[r] else next(steps, None)
            if step is None:
                break
            w, counts, token = step
            if own is not None:
                w *= 1.0 - own.get(r, 0.0) / self.cfg.weight
            if w <= 0:
                break
            votes.setdefault(r, []).append((w, counts))
            given[r] = w
            # where both sources pick the same token, all along the chain from its known start, the
            # token is committed now (confidence 1): the remembered line lands in few forwards
            agreeing = agreeing and best[r] == token
            if agreeing:
                agreed.append(r)
        return given

    def typed(self, context: bytes) -> bytes:
        # the text before the cursor as typed: the healed prefix gets its healed text back
        return context + self.healed if self.healed and context == self.prefix else context

    def count(self, m: Match, side: str, context: bytes = b"") -> Counter:
        """Votes per token. A left occurrence whose line is followed by what follows the cursor's line
        (the suffix from its first newline) is the likelier one: it weighs 1 + the bytes that agree. After
        an indentation, an occurrence that goes on with more whitespace sat deeper in its block: no vote."""
        raw = m.following() if side == "left" else m.preceding()
        if side == "left" and self.healed and context == self.prefix:
            # the match covers the healed text: the canvas's first token is that text and what followed it.
            # After typed blanks, only what goes on with code counts, not trailing blanks before a line break
            blank = not self.healed.strip()
            raw = [self.healed + t if t[:1].strip() or not blank else b"" for t in raw]
        texts = [t.decode("utf-8", "ignore") for t in raw]
        tail = context.rsplit(b"\n", 1)[-1]
        if side == "left" and tail and not tail.strip():
            texts = ["" if t[:1] in (" ", "\t") else t for t in texts]
        distinct = sorted({t for t in texts if t})
        first = {}
        for text, ids in zip(distinct, self.encode(distinct) if distinct else []):
            ids = [i for i in ids if i not in self.skip]
            if ids:
                first[text] = ids[0] if side == "left" else ids[-1]
        votes: Counter = Counter()
        for (seg, a), t in zip(m.at, texts):
            if t in first:
                votes[first[t]] += 1 + (self.agreement(m.segments[seg], a) if side == "left" else 0)
        return votes

    def agreement(self, data: bytes, at: int) -> int:
        # common prefix of the text after the occurrence's line and the text after the cursor's line
        nl = self.suffix.find(b"\n")
        end = data.find(b"\n", at, at + 200)
        if nl < 0 or end < 0:
            return 0
        theirs, ours = data[end : end + 48], self.suffix[nl : nl + 48]
        n = 0
        for x, y in zip(theirs, ours):
            if x != y:
                break
            n += 1
        return n


def recall(prior: MemoryPrior, max_tokens: int, stops: frozenset[int]) -> list[int]:
    """The memory's own guess, no network: left to right, the most voted token while the match is at least
    min_length long, until a stop token or max_tokens."""
    out: list[int] = []
    for _, _, token in islice(prior.follow(prior.prefix), max_tokens):
        out.append(token)
        if token in stops:
            break
    return out
