"""One open document: its text and its tree-sitter trees, one per chunk of consecutive top-level nodes.

An edit re-parses only the chunk(s) it touches. Tree-sitter never reuses *fragile* nodes (reduced in
parse states with conflicts, e.g. Go's `func f(a, b int)`), so re-parsing a whole file costs about as
much as parsing it afresh for such grammars; chunks bound that cost. Each chunk is parsed with
`included_ranges` set to its byte range, so its nodes carry absolute document positions. A chunk
starts at a line start (at a top-level node at column 0 when it was cut), so the offside rule and
indentation-sensitive scanners see the same columns as in a full parse. Errors (an unclosed `{`)
stay inside their chunk.

A chunk only shifted by an edit before it keeps its tree, edited in place: py-tree-sitter then drops
the tree's source, so `Node.text` is None there. Slice `Document.data` by byte range instead.
"""

from bisect import bisect_right
from dataclasses import dataclass

import tree_sitter

from .definitions import DefinitionIndex
from .languages import ts_language

# Target chunk size in bytes: a Go chunk this size re-parses in ~0.5 ms. A chunk grown past twice
# this is cut again; a file under 1.5 times this stays one chunk.
CHUNK_BYTES = 12_000
_NL = 10


@dataclass(slots=True)
class _Chunk:
    start: int  # bytes [start, end); start is a line start, so its column is 0
    end: int
    row: int  # the row of start
    tree: tree_sitter.Tree


def _start(c: _Chunk) -> int:
    return c.start


def _point(data: bytes, byte: int, chunk: _Chunk) -> tuple[int, int]:
    """Row and byte column of `byte` in `chunk` (counting newlines from the chunk's start only)."""
    return chunk.row + data.count(b"\n", chunk.start, byte), byte - (data.rfind(b"\n", 0, byte) + 1)


def _cuts(root: tree_sitter.Node, data: bytes, lo: int, hi: int, target: int) -> list[int]:
    """Chunk starts for bytes [lo, hi): lo, then each first top-level node at the start of a line at
    least `target` bytes after the previous cut, leaving at least target // 2 bytes to the last chunk.
    Cutting only between top-level nodes keeps every node of `root` whole. Walks the children in
    order: TreeCursor.goto_first_child_for_byte misses children after blank lines in Go."""
    cuts = [lo]
    cursor = root.walk()
    if not cursor.goto_first_child():
        return cuts
    while True:
        node = cursor.node
        s = node.start_byte
        if s >= cuts[-1] + target and data[s - 1] == _NL and not node.is_error:
            if hi - s < target // 2:
                return cuts
            cuts.append(s)
        if not cursor.goto_next_sibling():
            return cuts


class Document:
    """Owns one document's text, its UTF-8 bytes, its chunk trees and its definition index.

    Offsets in the public API are Python str indices (code points); trees work in bytes.
    `language=None` keeps plain text without trees (infill then declines to complete).
    `chunk_bytes` is the target chunk size (tests set it small to get several chunks).
    """

    def __init__(self, text: str, language: str | None, chunk_bytes: int = CHUNK_BYTES):
        self.language = language
        self.version = 0
        self.chunk_bytes = chunk_bytes
        self._text = text
        self._bytes = text.encode()
        self._ascii = text.isascii()
        self._parser = tree_sitter.Parser(ts_language(language)) if language else None
        self._chunks: list[_Chunk] = []
        if self._parser:
            full = self._parser.parse(self._bytes)  # one parse finds the top-level nodes to cut between
            self._chunks = self._split(_Chunk(0, len(self._bytes), 0, full))
        self.definitions = DefinitionIndex(language) if language else None

    @property
    def text(self) -> str:
        return self._text

    @property
    def data(self) -> bytes:
        return self._bytes

    @property
    def trees(self) -> tuple[tree_sitter.Tree, ...]:
        """The chunks' trees in document order; () without a language."""
        return tuple(c.tree for c in self._chunks)

    @property
    def spans(self) -> tuple[tuple[int, int], ...]:
        """The chunks' byte ranges [start, end), parallel to `trees`; they tile the document."""
        return tuple((c.start, c.end) for c in self._chunks)

    def tree_at(self, byte: int) -> tree_sitter.Tree | None:
        """The tree of the chunk holding `byte` (a chunk's start belongs to it; the end of the
        document to the last chunk); None without a language."""
        return self._chunks[self._index(byte)].tree if self._chunks else None

    def chunk_span(self, byte: int) -> tuple[int, int]:
        """Byte range [start, end) of the chunk holding `byte`; the whole document without a language."""
        if not self._chunks:
            return 0, len(self._bytes)
        c = self._chunks[self._index(byte)]
        return c.start, c.end

    def trees_in(self, lo: int, hi: int) -> list[tree_sitter.Tree]:
        """Trees of the chunks overlapping bytes [lo, hi) (the chunk holding lo when the range is empty)."""
        if not self._chunks:
            return []
        first = self._index(lo)
        last = self._index(hi - 1) if hi > lo else first
        return [c.tree for c in self._chunks[first : last + 1]]

    def byte_offset(self, offset: int) -> int:
        return offset if self._ascii else len(self._text[:offset].encode())

    def char_offset(self, byte: int) -> int:
        return byte if self._ascii else len(self._bytes[:byte].decode(errors="ignore"))

    def apply_edit(self, start: int, end: int, new_text: str) -> None:
        """Replace text[start:end] with new_text and re-parse the chunk(s) it touches."""
        if not 0 <= start <= end <= len(self._text):
            raise ValueError(f"edit range [{start}, {end}) outside document of length {len(self._text)}")
        old = self._bytes
        start_b, old_end_b = self.byte_offset(start), self.byte_offset(end)
        new_b = new_text.encode()
        self._text = self._text[:start] + new_text + self._text[end:]
        self._bytes = old[:start_b] + new_b + old[old_end_b:]
        self._ascii = self._ascii and new_text.isascii() or self._text.isascii()
        self.version += 1
        if self._chunks:
            self._reparse(old, start_b, old_end_b, new_b)

    def _index(self, byte: int) -> int:
        return max(0, bisect_right(self._chunks, byte, key=_start) - 1)

    def _reparse(self, old: bytes, start_b: int, old_end_b: int, new_b: bytes) -> None:
        chunks, data = self._chunks, self._bytes
        first = self._index(start_b)  # an insertion at a chunk's start belongs to that chunk
        last = self._index(old_end_b - 1) if old_end_b > start_b else first
        head, tail = chunks[first], chunks[last]
        start_pt, old_end_pt = _point(old, start_b, head), _point(old, old_end_b, tail)
        lines = new_b.count(b"\n")
        col = len(new_b) - (new_b.rfind(b"\n") + 1)
        new_end_b = start_b + len(new_b)
        new_end_pt = (start_pt[0] + lines, col if lines else start_pt[1] + col)
        edit = (start_b, old_end_b, new_end_b, start_pt, old_end_pt, new_end_pt)
        delta, rows = new_end_b - old_end_b, new_end_pt[0] - old_end_pt[0]
        for c in chunks[last + 1 :]:  # only shifted: editing a tree before its text is cheap
            c.tree.edit(*edit)
            c.start, c.end, c.row = c.start + delta, c.end + delta, c.row + rows
        lo, hi, stop = head.start, tail.end + delta, last + 1
        if lo == hi and len(chunks) > 1:  # the edit deleted whole chunks
            del chunks[first:stop]
            self.definitions.edit(start_b, old_end_b, new_end_b, [])
            return
        if hi < len(data) and data[hi - 1] != _NL:  # the next chunk would no longer start a line
            hi, stop = chunks[stop].end, stop + 1
        if stop - first == 1:
            old_tree = head.tree
            old_tree.edit(*edit)
            tree = self._parse(lo, hi, head.row, old_tree)
            changed = [(max(r.start_byte, lo), min(r.end_byte, hi)) for r in old_tree.changed_ranges(tree)]
        else:  # merged chunks: their old trees cover different ranges, so parse afresh
            tree = self._parse(lo, hi, head.row, None)
            changed = [(lo, hi)]
        pieces = [_Chunk(lo, hi, head.row, tree)]
        if hi - lo > 2 * self.chunk_bytes:
            pieces = self._split(pieces[0])
            changed = changed if len(pieces) == 1 else [(lo, hi)]
        chunks[first:stop] = pieces
        self.definitions.edit(start_b, old_end_b, new_end_b, [(a, b) for a, b in changed if a <= b])

    def _parse(self, lo: int, hi: int, row: int, old: tree_sitter.Tree | None) -> tree_sitter.Tree:
        data = self._bytes
        nl = data.rfind(b"\n", lo, hi)
        end = (row + data.count(b"\n", lo, hi), hi - (nl + 1 if nl >= 0 else lo))
        self._parser.included_ranges = [tree_sitter.Range((row, 0), end, lo, hi)]
        return self._parser.parse(data) if old is None else self._parser.parse(data, old)

    def _split(self, chunk: _Chunk) -> list[_Chunk]:
        """The chunk cut between its top-level nodes into pieces of about chunk_bytes, each parsed
        with the chunk's tree as the old tree (reusing what the grammar lets it)."""
        cuts = _cuts(chunk.tree.root_node, self._bytes, chunk.start, chunk.end, self.chunk_bytes)
        if len(cuts) == 1:
            return [chunk]
        pieces, row = [], chunk.row
        for lo, hi in zip(cuts, [*cuts[1:], chunk.end]):
            pieces.append(_Chunk(lo, hi, row, self._parse(lo, hi, row, chunk.tree)))
            row += self._bytes.count(b"\n", lo, hi)
        return pieces
