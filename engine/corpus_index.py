"""The training corpus as a suffix array: the memory's background where the user's project has no match.

A 7M-parameter network forgets most of what it was trained on; an index keeps it (infini-gram's unbounded
n-gram). The checkpoint may ship a sample of its training text (`memory.txt.xz`, documents joined by the
separator byte); the suffix array over its bytes is built at load with libdivsufsort (pydivsufsort, about a
second per 10 MB) and cached beside the user's other caches, keyed by the text's hash.

Queries are longest-match searches like the project memory's (engine/memory.py) but by binary search over
the sorted suffixes instead of `bytes.find`, so a 20 MB index answers in microseconds: every suffix starting
with a pattern sits in one contiguous range of the array.
"""

from __future__ import annotations

import hashlib
import lzma
import os
from pathlib import Path

import numpy as np

from engine.memory import NO_MATCH, SEP, Match, MemoryConfig, longest_match

INDEX_FILE = "memory.txt.xz"


def cache_dir() -> Path:
    root = os.environ.get("UNMASK_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "unmask"
    )
    return Path(root)


def suffix_array(data: bytes) -> np.ndarray:
    from pydivsufsort import divsufsort  # C library; imported only when an index is built

    return divsufsort(np.frombuffer(bytearray(data), dtype=np.uint8))  # [N] int32 or int64


class CorpusIndex:
    """Fixed texts (joined by SEP) and the suffix array of their bytes."""

    def __init__(self, data: bytes, sa: np.ndarray | None = None):
        self.data = SEP + data.strip(SEP) + SEP
        self.sa = suffix_array(self.data) if sa is None else sa
        if len(self.sa) != len(self.data):
            raise ValueError(f"suffix array has {len(self.sa)} entries for {len(self.data)} bytes")

    @classmethod
    def load(cls, path: str | Path, cache: Path | None = None) -> CorpusIndex:
        """An index from an xz-compressed text file; the suffix array is read from (or written to) the cache
        folder under the text's hash, and rebuilt if the cached one is missing or unreadable."""
        path = Path(path)
        try:
            data = lzma.decompress(path.read_bytes())
        except (OSError, lzma.LZMAError) as e:
            raise ValueError(f"{path}: cannot read the corpus index ({e})") from None
        folder = cache_dir() if cache is None else cache
        sa_path = folder / f"corpus-{hashlib.sha256(data).hexdigest()[:16]}.sa.npy"
        try:
            sa = np.load(sa_path, mmap_mode="r", allow_pickle=False)
            return cls(data, sa)
        except (OSError, ValueError):
            pass
        index = cls(data)
        try:
            folder.mkdir(parents=True, exist_ok=True)
            tmp = sa_path.with_suffix(f".tmp{os.getpid()}.npy")
            np.save(tmp, index.sa, allow_pickle=False)
            os.replace(tmp, sa_path)
        except OSError:
            pass  # a read-only home: rebuild next time
        return index

    def __len__(self) -> int:
        return len(self.data)

    def _bound(self, pattern: bytes, upper: bool) -> int:
        # first suffix (in sorted order) whose first len(pattern) bytes are > pattern (upper) or >= pattern
        data, sa, m = self.data, self.sa, len(pattern)
        lo, hi = 0, len(sa)
        while lo < hi:
            mid = (lo + hi) // 2
            s = int(sa[mid])
            head = data[s : s + m]
            if head < pattern or (upper and head == pattern):
                lo = mid + 1
            else:
                hi = mid
        return lo

    def range(self, pattern: bytes) -> tuple[int, int]:
        """[lo, hi): the suffix array rows whose suffixes start with `pattern`."""
        lo = self._bound(pattern, upper=False)
        return lo, self._bound(pattern, upper=True)

    def count(self, pattern: bytes) -> int:
        lo, hi = self.range(pattern)
        return hi - lo

    def _starts(self, pattern: bytes, limit: int) -> list[int]:
        # up to `limit` occurrence starts, spread evenly over the range (sorted by what follows them, so an
        # even spread samples the continuations in proportion)
        lo, hi = self.range(pattern)
        if hi - lo <= limit:
            rows = range(lo, hi)
        else:
            rows = (lo + (i * (hi - lo)) // limit for i in range(limit))
        return [int(self.sa[r]) for r in rows]

    def match_left(self, context: bytes, cfg: MemoryConfig, limit: int | None = None) -> Match:
        """The longest suffix of `context` that occurs, with occurrences where something follows it."""
        context = context[-cfg.max_length :].split(SEP)[-1]
        best = longest_match(lambda k: self.count(context[len(context) - k :]) > 0, 0, len(context))
        while best > 0:
            piece = context[len(context) - best :]
            starts = self._starts(piece, limit or cfg.max_occurrences)
            at = tuple((0, s + best) for s in starts if self.data[s + best] != SEP[0])
            if at:
                return Match(best, at, (self.data,))
            best -= 1  # every occurrence ends a document: something shorter may go on
        return NO_MATCH

    def match_right(self, context: bytes, cfg: MemoryConfig, limit: int | None = None) -> Match:
        """The longest prefix of `context` that occurs, with occurrences where something precedes it."""
        context = context[: cfg.max_length].split(SEP)[0]
        best = longest_match(lambda k: self.count(context[:k]) > 0, 0, len(context))
        while best > 0:
            starts = self._starts(context[:best], limit or cfg.max_occurrences)
            at = tuple((0, s) for s in starts if self.data[s - 1] != SEP[0])
            if at:
                return Match(best, at, (self.data,))
            best -= 1
        return NO_MATCH


def load_index(folder: Path) -> CorpusIndex | None:
    """The checkpoint's shipped corpus index, or None when it ships none."""
    path = Path(folder) / INDEX_FILE
    return CorpusIndex.load(path) if path.is_file() else None
