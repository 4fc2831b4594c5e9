"""The prompt around the canvas within a token budget: the nearest lines before and after the cursor,
cut at syntactic boundaries, preceded by imports, the enclosing scopes' headers and the signatures
of definitions used near the cursor (this document and other open ones)."""

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import tree_sitter

from .definitions import signature
from .document import Document
from .languages import spec
from .syntax import captures_near, first_child_for_byte

CHARS_PER_TOKEN = 3  # first guess for sizing windows before count_tokens measures them
SUFFIX_SHARE = 0.25  # of the budget, for the text after the cursor
EXTRAS_SHARE = 0.25  # of the budget, at most, for imports, headers and signatures
IMPORT_SCAN_CHARS = 16_000  # imports are looked for in the document's head only
IMPORT_DEPTH = 3  # ... and near the top level (inside an include guard at most)
USE_LINES = 12  # identifiers this many lines around the cursor count as "used near the cursor"
MAX_HEADER_LINES = 4
MAX_SIGNATURES = 8
SNAP_SHARE = 0.5  # a window edge moves at most this share of the window to reach a boundary
_IDENT = re.compile(r"[A-Za-z_$][\w$]*")


@dataclass(frozen=True, slots=True)
class Prompt:
    prefix: str
    suffix: str


def _ancestors(tree: tree_sitter.Tree, b: int) -> list[tree_sitter.Node]:
    node = tree.root_node.descendant_for_byte_range(b, b)
    out = []
    while node is not None:
        out.append(node)
        node = node.parent
    return out


def _with_roots(
    doc: Document, path: list[tree_sitter.Node], tree: tree_sitter.Tree, lo: int, hi: int
) -> list[tree_sitter.Node]:
    """The cursor's ancestors, plus the roots of the other chunks overlapping bytes [lo, hi) (between
    the cursor and a window edge): their top-level nodes are the boundaries a full tree's root offers."""
    return path + [t.root_node for t in doc.trees_in(lo, hi) if t is not tree]


def _snap_start(path: list[tree_sitter.Node], lo: int, b: int) -> int:
    """Smallest child start in [lo, lo + slack] among the cursor's ancestors (bytes), else lo."""
    slack = int((b - lo) * SNAP_SHARE)
    best = None
    for a in path:
        c = first_child_for_byte(a, lo)
        while c is not None and c.start_byte < lo:
            c = c.next_sibling
        if c is not None and c.start_byte <= min(b, lo + slack) and (best is None or c.start_byte < best):
            best = c.start_byte
    return best if best is not None else lo


def _snap_end(path: list[tree_sitter.Node], hi: int, b: int) -> int:
    """Largest child end in [hi - slack, hi] among the cursor's ancestors (bytes), else hi."""
    slack = int((hi - b) * SNAP_SHARE)
    best = None
    for a in path:
        c = first_child_for_byte(a, hi)  # the child straddling hi: cut before it
        c = c.prev_sibling if c is not None else (a.child(a.child_count - 1) if a.child_count else None)
        if c is not None and max(b, hi - slack) <= c.end_byte <= hi and (best is None or c.end_byte > best):
            best = c.end_byte
    return best if best is not None else hi


def _line_start(text: str, pos: int) -> int:
    return text.rfind("\n", 0, pos) + 1


def _fit(text: str, budget: int, count: Callable[[str], int], from_end: bool) -> str:
    """Drop whole lines from the far side until text fits the budget (a few count calls)."""
    for _ in range(8):
        n = count(text)
        if n <= budget or not text:
            return text
        cut = max(1, int(len(text) * (1 - budget / n)))
        if from_end:  # keep the end: drop from the start
            nl = text.find("\n", cut - 1)
            text = text[nl + 1 :] if nl >= 0 else ""
        else:
            nl = text.rfind("\n", 0, len(text) - cut)
            text = text[: nl + 1] if nl >= 0 else ""
    return text if count(text) <= budget else ""


def _headers(doc: Document, b: int, window_lo: int) -> list[str]:
    caps = captures_near(doc, "textobjects", max(0, b - 1), b + 1)
    inner = caps.get("function.inner", []) + caps.get("class.inner", [])
    opener = spec(doc.language).block_open.encode()
    out = []
    for outer in caps.get("function.outer", []) + caps.get("class.outer", []):
        if not outer.start_byte < window_lo or not outer.start_byte < b <= outer.end_byte:
            continue
        bodies = [
            n.start_byte
            for n in inner
            if outer.start_byte < n.start_byte <= b and n.end_byte <= outer.end_byte
        ]
        body = min(bodies, default=None)
        if body is None:
            continue
        start = doc.data.rfind(b"\n", 0, outer.start_byte) + 1
        if opener and doc.data.startswith(opener, body):
            body += len(opener)  # a delimited body starts with its opener: keep it in the header
        head = doc.data[start:body].decode(errors="replace").rstrip().split("\n")
        out.append((outer.start_byte, "\n".join(head[:MAX_HEADER_LINES])))
    return [h for _, h in sorted(out)]


def _imports(doc: Document, window_lo: int) -> list[str]:
    hi = min(window_lo, doc.byte_offset(min(len(doc.text), IMPORT_SCAN_CHARS)))
    if hi <= 0:
        return []
    nodes = captures_near(doc, "imports", 0, hi, max_depth=IMPORT_DEPTH).get("import", [])
    nodes = sorted({(n.start_byte, n.end_byte) for n in nodes if n.end_byte <= window_lo})
    return [doc.data[s:e].decode(errors="replace") for s, e in nodes]


def _signatures(
    doc: Document, names: list[str], window: tuple[int, int], b: int, others: Sequence[Document]
) -> list[str]:
    out: list[str] = []
    for d in (doc, *others):
        if d.definitions is None:
            continue
        index = d.definitions.lookup(d.trees, d.data)
        for name in names:
            for entry in index.get(name, []):
                if d is doc and (window[0] <= entry.start < window[1] or entry.start <= b < entry.end):
                    continue  # already visible, or the definition the cursor is in
                sig = signature(entry, d.data, d.language)
                if sig not in out:
                    out.append(sig)
                if len(out) >= MAX_SIGNATURES:
                    return out
    return out


def _comment(lines: list[str], line_comment: str) -> str:
    return "".join(f"{line_comment} {x}\n" for s in lines for x in s.split("\n"))


def _near_names(text: str, offset: int) -> list[str]:
    """Identifiers within USE_LINES lines of the cursor, nearest first."""
    span = 120 * USE_LINES
    before = "\n".join(text[max(0, offset - span) : offset].split("\n")[-USE_LINES:])
    after = "\n".join(text[offset : offset + span].split("\n")[:USE_LINES])
    names = _IDENT.findall(before)[::-1] + _IDENT.findall(after)
    return list(dict.fromkeys(names))


def _window(
    doc: Document, offset: int, before: int, after: int, count: Callable[[str], int]
) -> tuple[int, int]:
    """Str offsets of the nearest text around the cursor, within before/after tokens each side,
    with both edges moved to statement boundaries when one is close."""
    text = doc.text
    lo = _line_start(text, offset - before * CHARS_PER_TOKEN) if offset > before * CHARS_PER_TOKEN else 0
    hi = min(len(text), offset + after * CHARS_PER_TOKEN)
    hi = max(offset, _line_start(text, hi)) if hi < len(text) else hi
    lo = offset - len(_fit(text[lo:offset], before, count, from_end=True))
    hi = offset + len(_fit(text[offset:hi], after, count, from_end=False))
    b = doc.byte_offset(offset)
    tree = doc.tree_at(b)
    path = _ancestors(tree, b)
    if lo > 0:
        lo_b = doc.byte_offset(lo)
        lo = _line_start(text, doc.char_offset(_snap_start(_with_roots(doc, path, tree, lo_b, b), lo_b, b)))
    if hi < len(text):
        hi_b = doc.byte_offset(hi)
        hi = max(offset, doc.char_offset(_snap_end(_with_roots(doc, path, tree, b, hi_b), hi_b, b)))
    return lo, hi


def build_context(
    doc: Document,
    offset: int,
    count_tokens: Callable[[str], int],
    budget: int,
    others: Sequence[Document] = (),
) -> Prompt:
    """Prefix and suffix for the canvas at `offset`, together within `budget` tokens."""
    suffix_budget = int(budget * SUFFIX_SHARE)
    extras_budget = int(budget * EXTRAS_SHARE)
    before_budget = budget - suffix_budget - extras_budget
    lo, hi = _window(doc, offset, before_budget, suffix_budget, count_tokens)
    before, suffix = doc.text[lo:offset], doc.text[offset:hi]
    lo_b, hi_b, b = (
        doc.byte_offset(offset - len(before)),
        doc.byte_offset(offset + len(suffix)),
        doc.byte_offset(offset),
    )
    line_comment = spec(doc.language).line_comment
    parts = (
        "\n".join(_headers(doc, b, lo_b)),
        "\n".join(_imports(doc, lo_b)),
        _comment(_signatures(doc, _near_names(doc.text, offset), (lo_b, hi_b), b, others), line_comment),
    )
    fitted = []
    for part in parts:  # in order of priority
        part = (
            _fit(part.rstrip("\n") + "\n", extras_budget, count_tokens, from_end=False)
            if part.strip()
            else ""
        )
        extras_budget -= count_tokens(part) if part else 0
        fitted.append(part if extras_budget >= 0 else "")
    headers, imports, sigs = fitted
    return Prompt(prefix=sigs + imports + headers + before, suffix=suffix)
