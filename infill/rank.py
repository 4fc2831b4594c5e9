"""Ranking of replacement candidates: fewest syntax errors added, then model confidence."""

from dataclasses import dataclass

import tree_sitter

from .document import Document
from .languages import ts_language
from .syntax import count_errors, first_child_for_byte

MAX_WINDOW_CHARS = 20_000  # the re-parsed region is at most this far on each side of the cursor


@dataclass(frozen=True, slots=True)
class Candidate:
    text: str  # replaces doc.text[start:end]
    confidence: float
    canvas: int
    errors_added: int  # ERROR/MISSING nodes the replacement adds to its region (negative: it repairs some)


def _line_start(text: str, pos: int) -> int:
    return text.rfind("\n", 0, pos) + 1


def _line_end(text: str, pos: int) -> int:
    end = text.find("\n", pos)
    return len(text) if end < 0 else end


class SyntaxCheck:
    """Counts the ERROR/MISSING nodes a replacement adds, re-parsing only the top-level statements
    around the cursor (bounded by MAX_WINDOW_CHARS) rather than the whole document."""

    def __init__(self, doc: Document, start: int, end: int):
        text, b = doc.text, doc.byte_offset(start)
        root = doc.tree.root_node
        child = first_child_for_byte(root, b)
        before = child.prev_sibling if child is not None else root.child(root.child_count - 1)
        if child is not None and child.start_byte <= b:
            before = child
        after = child.next_sibling if child is not None and child.start_byte <= b else child
        lo = doc.char_offset(before.start_byte) if before is not None else 0
        hi = doc.char_offset(after.end_byte) if after is not None else len(text)
        self._lo = max(lo, _line_start(text, max(0, start - MAX_WINDOW_CHARS)))
        self._hi = min(max(hi, end), _line_end(text, min(len(text), end + MAX_WINDOW_CHARS)))
        self._head, self._tail = text[self._lo : start], text[end : self._hi]
        self._parser = tree_sitter.Parser(ts_language(doc.language))
        self.baseline = self._errors("")

    def _errors(self, middle: str) -> int:
        return count_errors(self._parser.parse((self._head + middle + self._tail).encode()).root_node)

    def errors_added(self, replacement: str) -> int:
        return self._errors(replacement) - self.baseline


def best(candidates: list[Candidate]) -> Candidate | None:
    """Fewest errors added, then highest confidence; earlier candidates win ties (less edited)."""
    if not candidates:
        return None
    return min(enumerate(candidates), key=lambda ic: (ic[1].errors_added, -ic[1].confidence, ic[0]))[1]
