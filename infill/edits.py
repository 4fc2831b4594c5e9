"""Edits against one original text, kept as the text changes under them: `compose` turns a replacement in
the current text into sorted, disjoint replacements of the original, which is what an editor applies."""

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Edit:
    start: int  # replace original[start:end] with text (str offsets)
    end: int
    text: str


def apply(text: str, edits: Sequence[Edit]) -> str:
    """text with sorted, disjoint edits applied."""
    parts, at = [], 0
    for e in edits:
        parts += [text[at : e.start], e.text]
        at = e.end
    return "".join(parts) + text[at:]


def compose(edits: Sequence[Edit], current: str, start: int, end: int, text: str) -> list[Edit]:
    """`edits` (sorted, disjoint, against the original; `current` is the original with them applied), then
    current[start:end] replaced by text, as edits against the original. Edits the new one overlaps or
    touches merge with it, so no two edits ever meet: an editor could not order two insertions at one
    offset."""
    before, touched, after = [], [], []
    shift = 0  # current offset minus original offset, up to the edit looked at
    for e in edits:
        cs = e.start + shift
        ce = cs + len(e.text)
        (before if ce < start else after if cs > end else touched).append((e, cs, ce))
        shift += len(e.text) - (e.end - e.start)
    shift_before = sum(len(e.text) - (e.end - e.start) for e, _, _ in before)
    shift_after = shift_before + sum(len(e.text) - (e.end - e.start) for e, _, _ in touched)
    lo = min([start] + [cs for _, cs, _ in touched])
    hi = max([end] + [ce for _, _, ce in touched])
    merged = Edit(lo - shift_before, hi - shift_after, current[lo:start] + text + current[end:hi])
    return [e for e, _, _ in before] + [merged] + [e for e, _, _ in after]
