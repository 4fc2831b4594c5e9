"""Ranking of replacement candidates: fewest syntax errors added, then model confidence."""

from dataclasses import dataclass

import tree_sitter

from .document import Document
from .languages import ts_language
from .syntax import count_errors, first_child_for_byte

MAX_WINDOW_CHARS = 2_500  # the re-parsed region reaches at most this far on each side of the span


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
    around the cursor in its chunk (bounded by MAX_WINDOW_CHARS) rather than the whole document."""

    def __init__(self, doc: Document, start: int, end: int):
        text, b = doc.text, doc.byte_offset(start)
        root = doc.tree_at(b).root_node
        child = first_child_for_byte(root, b)
        last = root.child(root.child_count - 1) if root.child_count else None  # a blank chunk has none
        before = child.prev_sibling if child is not None else last
        if child is not None and child.start_byte <= b:
            before = child
        after = child.next_sibling if child is not None and child.start_byte <= b else child
        chunk_lo, chunk_hi = doc.chunk_span(b)  # errors elsewhere stay in other chunks
        lo = doc.char_offset(before.start_byte if before is not None else chunk_lo)
        hi = doc.char_offset(after.end_byte if after is not None else chunk_hi)
        self._lo = max(lo, _line_start(text, max(0, start - MAX_WINDOW_CHARS)))
        self._hi = min(max(hi, end), _line_end(text, min(len(text), end + MAX_WINDOW_CHARS)))
        self._head, self._tail = text[self._lo : start].encode(), text[end : self._hi].encode()
        self._parser = tree_sitter.Parser(ts_language(doc.language))
        self._tree = self._parser.parse(self._head + self._tail)
        self.baseline = count_errors(self._tree.root_node)

    def errors_added(self, replacement: str) -> int:
        """Re-parses the window incrementally from its parse without the replacement."""
        rep, at = replacement.encode(), len(self._head)
        row = self._head.count(b"\n")
        col = at - (self._head.rfind(b"\n") + 1)
        lines = rep.count(b"\n")
        last = len(rep) - (rep.rfind(b"\n") + 1)
        tree = self._tree.copy()
        tree.edit(at, at, at + len(rep), (row, col), (row, col), (row + lines, last if lines else col + last))
        tree = self._parser.parse(self._head + rep + self._tail, tree)
        return count_errors(tree.root_node) - self.baseline


def best(candidates: list[Candidate]) -> Candidate | None:
    """Fewest errors added, then highest confidence; earlier candidates win ties (less edited)."""
    if not candidates:
        return None
    return min(enumerate(candidates), key=lambda ic: (ic[1].errors_added, -ic[1].confidence, ic[0]))[1]
