"""One open document: its text and tree-sitter tree, re-parsed incrementally on each edit."""

import tree_sitter

from .definitions import DefinitionIndex
from .languages import ts_language


def _point(data: bytes, byte: int) -> tuple[int, int]:
    row = data.count(b"\n", 0, byte)
    return row, byte - (data.rfind(b"\n", 0, byte) + 1)


class Document:
    """Owns one document's text, its UTF-8 bytes, its tree and its definition index.

    Offsets in the public API are Python str indices (code points); the tree works in bytes.
    `language=None` keeps plain text without a tree (infill then declines to complete).
    """

    def __init__(self, text: str, language: str | None):
        self.language = language
        self.version = 0
        self._text = text
        self._bytes = text.encode()
        self._ascii = text.isascii()
        self._parser = tree_sitter.Parser(ts_language(language)) if language else None
        self.tree: tree_sitter.Tree | None = self._parser.parse(self._bytes) if self._parser else None
        self.definitions = DefinitionIndex(language) if language else None

    @property
    def text(self) -> str:
        return self._text

    @property
    def data(self) -> bytes:
        return self._bytes

    def byte_offset(self, offset: int) -> int:
        return offset if self._ascii else len(self._text[:offset].encode())

    def char_offset(self, byte: int) -> int:
        return byte if self._ascii else len(self._bytes[:byte].decode(errors="ignore"))

    def apply_edit(self, start: int, end: int, new_text: str) -> None:
        """Replace text[start:end] with new_text and re-parse with the edited old tree."""
        if not 0 <= start <= end <= len(self._text):
            raise ValueError(f"edit range [{start}, {end}) outside document of length {len(self._text)}")
        old = self._bytes
        start_b, old_end_b = self.byte_offset(start), self.byte_offset(end)
        new_b = new_text.encode()
        self._text = self._text[:start] + new_text + self._text[end:]
        self._bytes = old[:start_b] + new_b + old[old_end_b:]
        self._ascii = self._ascii and new_text.isascii() or self._text.isascii()
        self.version += 1
        if self.tree is None:
            return
        new_end_b = start_b + len(new_b)
        start_pt = _point(old, start_b)
        lines = new_b.count(b"\n")
        tail = len(new_b) - (new_b.rfind(b"\n") + 1)
        new_end_pt = (start_pt[0] + lines, tail if lines else start_pt[1] + tail)
        old_tree = self.tree
        old_tree.edit(start_b, old_end_b, new_end_b, start_pt, _point(old, old_end_b), new_end_pt)
        self.tree = self._parser.parse(self._bytes, old_tree)
        self.definitions.edit(start_b, old_end_b, new_end_b, old_tree.changed_ranges(self.tree))
