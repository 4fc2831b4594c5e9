"""Where a committed canvas ends as a completion: at its first end token, and where it runs into the
suffix."""

from __future__ import annotations

OVERLAP = 3  # suffix tokens a canvas must repeat, from some position on, to count as running into the suffix


def end_of_text(ids: list[int], stops: frozenset[int]) -> int:
    """Index of the first stop token (end of text, pad) in ids, else len(ids)."""
    return next((i for i, t in enumerate(ids) if t in stops), len(ids))


def cut_at_suffix(ids: list[int], suffix: list[int], overlap: int = OVERLAP) -> list[int]:
    """ids up to the first position where they start repeating the suffix: the next min(overlap, len(suffix))
    tokens equal the suffix's first ones, or the canvas ends on fewer tokens that begin the suffix.

    The canvas has a fixed length and the suffix waits right after it, so a short middle is often followed
    by the suffix's own start (a closing bracket, the next line) to fill the canvas.
    """
    for i in range(len(ids)):
        m = min(overlap, len(suffix), len(ids) - i)
        if m and ids[i : i + m] == suffix[:m]:
            return ids[:i]
    return ids
