"""Ranking of replacement candidates: fewest syntax errors added, then model confidence."""

from dataclasses import dataclass

import tree_sitter

from .document import Document
from .languages import ts_language
from .syntax import count_errors, first_child_for_byte

# the re-parsed region reaches at most this far on each side of the span (about 0.4 ms a parse of Python)
MAX_WINDOW_CHARS = 5_000


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


def _window(node: tree_sitter.Node, b: int, lo: int, hi: int, limit: int) -> tuple[int, int]:
    """Bytes [lo, hi) to re-parse around byte b: the nodes beside and holding the cursor, at the shallowest
    level of the tree where they fit in `limit` bytes. Whole nodes parse as they do in the whole document;
    a region cut at arbitrary lines can swallow a new error into an ERROR node its cut made."""
    while True:
        child = first_child_for_byte(node, b)
        last = node.child(node.child_count - 1) if node.child_count else None
        before = child.prev_sibling if child is not None else last
        holds = child is not None and child.start_byte <= b
        if holds:
            before = child
        after = child.next_sibling if holds else child
        start = before.start_byte if before is not None else lo
        end = after.end_byte if after is not None else hi
        if end - start <= limit or not holds or child.child_count == 0:
            # more neighbours while they fit: a broken statement's recovery can reach past the next one
            while True:
                wider = before.prev_sibling if before is not None else None
                if wider is not None and end - wider.start_byte <= limit:
                    before, start = wider, wider.start_byte
                wide = after.next_sibling if after is not None else None
                if wide is not None and wide.end_byte - start <= limit:
                    after, end = wide, wide.end_byte
                elif wider is None or before is not wider:
                    return start, end
        node, lo, hi = child, child.start_byte, child.end_byte  # too large: the statements inside it


class SyntaxCheck:
    """Counts the ERROR/MISSING nodes a replacement adds, re-parsing only whole statements around the cursor
    (its top-level statement and as many neighbours as fit in about 2 x MAX_WINDOW_CHARS or, where the
    top-level one is larger, the statements around it deeper in the tree) rather than the whole document."""

    def __init__(self, doc: Document, start: int, end: int):
        text, b = doc.text, doc.byte_offset(start)
        root = doc.tree_at(b).root_node
        chunk_lo, chunk_hi = doc.chunk_span(b)  # errors elsewhere stay in other chunks
        lo_b, hi_b = _window(root, b, chunk_lo, chunk_hi, 2 * MAX_WINDOW_CHARS)
        lo, hi = _line_start(text, doc.char_offset(lo_b)), max(doc.char_offset(hi_b), end)
        if hi_b - lo_b > 2 * MAX_WINDOW_CHARS:  # no node small enough holds the cursor: cut at lines
            lo = max(lo, _line_start(text, max(0, start - MAX_WINDOW_CHARS)))
            hi = min(hi, _line_end(text, min(len(text), end + MAX_WINDOW_CHARS)))
        self._lo, self._hi = lo, hi
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
