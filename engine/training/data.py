"""Token streams and batches. Every batch is a pure function of (seed, step), so a resumed run sees exactly
the batches an uninterrupted one would.

Two kinds of rows share a batch:
- plain: a window of the flat token stream (files joined by EOS); every position may be masked.
- infill: `prefix + canvas + suffix` exactly as the engine builds it at inference: the three parts are
  tokenized separately, canvas = middle + EOS * pad_len, and only canvas positions may be masked.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tokenizers import Tokenizer

from engine.training.corpus import SourceFile

SPAN_KINDS = ("rest_of_line", "whole_line", "lines", "block")
SPAN_WEIGHTS = (0.35, 0.3, 0.2, 0.15)
CONTEXT_CHARS = 6000  # text either side of the span handed to the tokenizer; more than T tokens of code
MAX_TRIES = 20


@dataclass(frozen=True)
class Batch:
    ids: torch.Tensor  # [B, T] clean tokens
    maskable: torch.Tensor  # [B, T] bool: positions the noise may mask (and the loss may score)
    length: torch.Tensor  # [B] float: the normaliser of each row's loss (T, or the canvas length)


# ---------------------------------------------------------------- token streams

def tokenize_files(tok: Tokenizer, files: list[SourceFile], eos_id: int) -> np.ndarray:
    """Files in order, each followed by EOS, as one uint16 stream."""
    assert tok.get_vocab_size() <= 65536, "uint16 streams need a vocabulary of at most 65536"
    out = []
    for enc in tok.encode_batch([f.text for f in files], add_special_tokens=False):
        out.append(np.asarray(enc.ids, dtype=np.uint16))
        out.append(np.asarray([eos_id], dtype=np.uint16))
    return np.concatenate(out) if out else np.zeros(0, dtype=np.uint16)


def save_stream(stream: np.ndarray, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    stream.astype(np.uint16).tofile(path)


def load_stream(path: Path) -> np.ndarray:
    if not path.exists():
        raise FileNotFoundError(f"{path}: no token stream; run `python -m engine.training prepare` first")
    return np.memmap(path, dtype=np.uint16, mode="r")


def plain_rows(stream: np.ndarray, seq_len: int, seed: int, first: int, count: int) -> np.ndarray:
    """Rows first..first+count-1 of an endless sequence of epochs; each epoch is a fresh permutation of
    non-overlapping windows at a fresh offset. [count, seq_len] int64."""
    n = (len(stream) - seq_len) // seq_len
    assert n > 0, f"token stream of {len(stream)} tokens is shorter than two windows of {seq_len}"
    rows = np.empty((count, seq_len), dtype=np.int64)
    cache: dict[int, tuple[np.ndarray, int]] = {}
    for j, g in enumerate(range(first, first + count)):
        epoch, k = divmod(g, n)
        if epoch not in cache:
            rng = np.random.default_rng([seed, epoch, 0])
            cache[epoch] = (rng.permutation(n), int(rng.integers(seq_len)))
        perm, offset = cache[epoch]
        start = offset + int(perm[k]) * seq_len
        rows[j] = stream[start : start + seq_len]
    return rows


# ---------------------------------------------------------------- infill spans

def indent_of(line: str) -> int:
    return len(line) - len(line.lstrip(" \t"))


def block_end(lines: list[str], header: int) -> int:
    """Index past the last line of the indented body under lines[header] (blank lines inside count)."""
    base = indent_of(lines[header])
    end = header + 1
    for i in range(header + 1, len(lines)):
        if not lines[i].strip():
            continue
        if indent_of(lines[i]) <= base:
            break
        end = i + 1
    return end


def pick_span(text: str, kind: str, rng: np.random.Generator) -> tuple[int, int] | None:
    """(start, end) character offsets of a middle of this kind, or None if none was found here.

    The middle never includes the newline that ends its last line: at inference the cursor's line break
    belongs to the suffix. Whole-line spans start after the indentation (auto-indent typed it) or, a quarter
    of the time, at the line start."""
    lines = text.splitlines(keepends=True)
    starts = np.cumsum([0] + [len(x) for x in lines])
    candidates = [i for i, x in enumerate(lines) if x.strip()]
    if not candidates:
        return None
    i = candidates[int(rng.integers(len(candidates)))]
    body = lines[i].rstrip("\r\n")
    indent = indent_of(body)
    if kind == "rest_of_line":
        col = int(rng.integers(indent, len(body)))
        return int(starts[i]) + col, int(starts[i]) + len(body)
    if kind == "block":
        headers = [k for k in candidates if lines[k].rstrip().endswith(":") and block_end(lines, k) > k + 1]
        if not headers:
            return None
        h = headers[int(rng.integers(len(headers)))]
        i, last = h + 1, block_end(lines, h) - 1
        while not lines[i].strip():
            i += 1
        indent = indent_of(lines[i])
    elif kind == "lines":
        last = min(len(lines) - 1, i + int(rng.integers(1, 6)))
    else:
        last = i
    col = 0 if rng.random() < 0.25 else indent
    return int(starts[i]) + col, int(starts[last]) + len(lines[last].rstrip("\r\n"))


def infill_row(
    tok: Tokenizer, text: str, span: tuple[int, int], seq_len: int, eos_id: int, max_middle: int,
    rng: np.random.Generator,
) -> tuple[np.ndarray, int, int] | None:
    """ids [seq_len], canvas start, canvas length; None if the middle is empty or too long."""
    a, b = span
    middle = tok.encode(text[a:b], add_special_tokens=False).ids
    if not middle or len(middle) > min(max_middle, seq_len // 2):
        return None
    canvas = min(len(middle) + int(rng.integers(0, 2 * len(middle) + 5)), seq_len // 2)
    room = seq_len - canvas - 1  # the engine ends every Dream-family infill prompt with EOS after the suffix
    prefix = tok.encode(text[max(0, a - CONTEXT_CHARS) : a], add_special_tokens=False).ids
    suffix = tok.encode(text[b : b + CONTEXT_CHARS], add_special_tokens=False).ids
    want_suffix = int(room * rng.uniform(0.15, 0.5))
    n_suffix = min(len(suffix), max(want_suffix, room - len(prefix)))
    n_prefix = min(len(prefix), room - n_suffix)
    row = np.full(seq_len, eos_id, dtype=np.int64)  # after the suffix: EOS, as at inference, then EOS filler
    parts = prefix[len(prefix) - n_prefix :] + middle + [eos_id] * (canvas - len(middle)) + suffix[:n_suffix]
    row[: len(parts)] = parts
    return row, n_prefix, canvas


def line_spans(text: str, k: int, rng: np.random.Generator, window: int = 30) -> list[tuple[int, int]] | None:
    """k single-line middles (rest of a line or a whole line) on distinct non-blank lines within `window`
    lines of each other, in order; None if the file has too few lines there."""
    lines = text.splitlines(keepends=True)
    starts = np.cumsum([0] + [len(x) for x in lines])
    candidates = [i for i, x in enumerate(lines) if x.strip()]
    if len(candidates) < k:
        return None
    first = int(rng.integers(len(candidates)))
    near = [c for c in candidates[first + 1 :] if c - candidates[first] <= window]
    if len(near) < k - 1:
        return None
    chosen = [candidates[first]] + sorted(int(x) for x in rng.choice(near, size=k - 1, replace=False))
    spans = []
    for i in chosen:
        body = lines[i].rstrip("\r\n")
        indent = indent_of(body)
        col = indent if rng.random() < 0.5 else int(rng.integers(indent, len(body)))
        spans.append((int(starts[i]) + col, int(starts[i]) + len(body)))
    return spans


def multi_infill_row(
    tok: Tokenizer, text: str, spans: list[tuple[int, int]], seq_len: int, eos_id: int, max_middle: int,
    rng: np.random.Generator,
) -> tuple[np.ndarray, list[tuple[int, int]]] | None:
    """Several holes in one row: prefix, then per span a canvas (middle + EOS padding) and the text up to the
    next span, then the suffix. ids [seq_len] and (start, length) of every canvas; None if it does not fit."""
    middles = [tok.encode(text[a:b], add_special_tokens=False).ids for a, b in spans]
    if any(not m or len(m) > max_middle for m in middles):
        return None
    canvases = [min(len(m) + int(rng.integers(0, 2 * len(m) + 5)), seq_len // 4) for m in middles]
    between = [tok.encode(text[spans[i][1] : spans[i + 1][0]], add_special_tokens=False).ids
               for i in range(len(spans) - 1)]
    room = seq_len - 1 - sum(canvases) - sum(len(b) for b in between)
    if room < 16:
        return None
    prefix = tok.encode(text[max(0, spans[0][0] - CONTEXT_CHARS) : spans[0][0]], add_special_tokens=False).ids
    suffix = tok.encode(text[spans[-1][1] : spans[-1][1] + CONTEXT_CHARS], add_special_tokens=False).ids
    n_suffix = min(len(suffix), max(int(room * rng.uniform(0.15, 0.5)), room - len(prefix)))
    n_prefix = min(len(prefix), room - n_suffix)
    parts, holes = prefix[len(prefix) - n_prefix :], []
    for i, (middle, canvas) in enumerate(zip(middles, canvases)):
        holes.append((len(parts), canvas))
        parts = parts + middle + [eos_id] * (canvas - len(middle)) + (between[i] if i < len(between) else [])
    parts = parts + suffix[:n_suffix]
    row = np.full(seq_len, eos_id, dtype=np.int64)
    row[: len(parts)] = parts
    return row, holes


class InfillSampler:
    def __init__(self, tok: Tokenizer, files: list[SourceFile], eos_id: int, seq_len: int,
                 max_middle: int = 96, holes: int = 1):
        assert files, "no files to draw infill examples from"
        self.tok, self.files, self.eos_id = tok, files, eos_id
        self.seq_len, self.max_middle, self.holes = seq_len, max_middle, holes
        sizes = np.asarray([len(f.text) for f in files], dtype=np.float64)
        self.cum = np.cumsum(sizes) / sizes.sum()  # draw files in proportion to their size

    def rows(self, seed: int, step: int, count: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """ids [count, T], maskable [count, T] bool, canvas lengths [count]."""
        rng = np.random.default_rng([seed, step, 1])
        ids = np.empty((count, self.seq_len), dtype=np.int64)
        maskable = np.zeros((count, self.seq_len), dtype=bool)
        lengths = np.empty(count, dtype=np.int64)
        for j in range(count):
            k = int(rng.integers(1, self.holes + 1)) if self.holes > 1 else 1
            out = self.several(rng, k) if k > 1 else None
            if out is None:
                row, start, canvas = self.one(rng)
                out = row, [(start, canvas)]
            ids[j] = out[0]
            lengths[j] = sum(c for _, c in out[1])
            for start, canvas in out[1]:
                maskable[j, start : start + canvas] = True
        return ids, maskable, lengths

    def several(self, rng: np.random.Generator, k: int) -> tuple[np.ndarray, list[tuple[int, int]]] | None:
        """A row with k single-line holes, or None after MAX_TRIES files without room for them."""
        for _ in range(MAX_TRIES):
            i = int(np.searchsorted(self.cum, rng.random(), side="right").clip(0, len(self.files) - 1))
            text = self.files[i].text
            spans = line_spans(text, k, rng)
            if spans is None or any(b <= a for a, b in spans):
                continue
            out = multi_infill_row(self.tok, text, spans, self.seq_len, self.eos_id, self.max_middle, rng)
            if out is not None:
                return out
        return None

    def one(self, rng: np.random.Generator) -> tuple[np.ndarray, int, int]:
        for _ in range(MAX_TRIES):
            i = int(np.searchsorted(self.cum, rng.random(), side="right").clip(0, len(self.files) - 1))
            text = self.files[i].text
            kind = SPAN_KINDS[int(rng.choice(len(SPAN_KINDS), p=SPAN_WEIGHTS))]
            span = pick_span(text, kind, rng)
            if span is None or span[1] <= span[0]:
                continue
            out = infill_row(self.tok, text, span, self.seq_len, self.eos_id, self.max_middle, rng)
            if out is not None:
                return out
        raise RuntimeError(f"no infill example found in {MAX_TRIES} tries; are the files empty?")


# ---------------------------------------------------------------- batches

@dataclass(frozen=True)
class BatchSource:
    stream: np.ndarray
    infill: InfillSampler
    seq_len: int
    batch_size: int
    infill_fraction: float
    seed: int

    @property
    def n_infill(self) -> int:
        return round(self.batch_size * self.infill_fraction)

    def batch(self, step: int) -> Batch:
        n_plain = self.batch_size - self.n_infill
        plain = plain_rows(self.stream, self.seq_len, self.seed, step * n_plain, n_plain)
        ids, maskable, lengths = self.infill.rows(self.seed, step, self.n_infill)
        return Batch(
            ids=torch.from_numpy(np.concatenate([plain, ids])),
            maskable=torch.from_numpy(np.concatenate([np.ones_like(plain, dtype=bool), maskable])),
            length=torch.from_numpy(np.concatenate([np.full(n_plain, self.seq_len), lengths])).float(),
        )
