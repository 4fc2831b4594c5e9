"""Each open document, owned by the event loop: text, version and line index, and whether it can complete.

This is the only copy of the text. Every change makes a new immutable `DocumentText`; the engine thread is
handed those (completion/worker.py) and keeps only a parse derived from one of them, so it can never hold text
the client did not send. Position conversions and cache look-ups read this copy without waiting.
"""

from __future__ import annotations

from dataclasses import dataclass

from lsprotocol import types
from pygls.uris import to_fs_path

import infill

from ..protocol import convert

MAX_BYTES = 5_000_000  # documents this large are kept but never parsed nor completed
BINARY_SAMPLE = 4096
BINARY_FRACTION = 0.1  # share of control or replacement characters that makes text look binary
TEXT_CONTROLS = set("\t\n\r\f\v\b\x1b")


def looks_binary(text: str) -> bool:
    if "\x00" in text:
        return True
    sample = text[:BINARY_SAMPLE]
    odd = sum((ch < " " and ch not in TEXT_CONTROLS) or ch == "\ufffd" for ch in sample)
    return odd > BINARY_FRACTION * max(len(sample), 1)


def too_large(text: str) -> bool:
    return len(text) >= MAX_BYTES or (4 * len(text) >= MAX_BYTES and len(text.encode()) >= MAX_BYTES)


@dataclass(frozen=True, slots=True, eq=False)
class DocumentText:
    """One state of an open document's text; a change makes a new one, so identity names the state."""

    uri: str
    language: str | None
    text: str


class OpenDocument:
    def __init__(self, item: types.TextDocumentItem):
        self.uri, self.version = item.uri, item.version
        self.revision = 0  # changes applied; a request whose revision is gone is stale
        path = to_fs_path(item.uri) if item.uri.startswith("file:") else None
        self.language = infill.language_for(item.language_id, path)
        self._set(convert.clean(item.text))

    @property
    def text(self) -> str:
        return self.content.text

    @property
    def parseable(self) -> bool:
        """Whether the engine thread keeps a parsed copy: a supported language, not too large, not binary."""
        return self.language is not None and not self.large and not self.binary

    def apply(self, change: types.TextDocumentContentChangeEvent, encoding: str) -> tuple[int, int, str]:
        """Apply one change; the code-point edit (start, end, new_text) it made."""
        new = convert.clean(change.text)
        if isinstance(change, types.TextDocumentContentChangePartial):
            start, end = (self.offset_at(p, encoding) for p in (change.range.start, change.range.end))
            start, end = min(start, end), max(start, end)
        else:
            start, end = 0, len(self.text)
        text = self.text
        self._set(text[:start] + new + text[end:])
        self.revision += 1
        return start, end, new

    def offset_at(self, position: types.Position, encoding: str) -> int:
        return convert.offset_at(self.text, self._line_starts(), position, encoding)

    def position_at(self, offset: int, encoding: str) -> types.Position:
        return convert.position_at(self.text, self._line_starts(), offset, encoding)

    def _set(self, text: str) -> None:
        self.content, self._starts = DocumentText(self.uri, self.language, text), None
        self.large = too_large(text)
        self.binary = looks_binary(text)

    def _line_starts(self) -> list[int]:
        if self._starts is None:
            self._starts = convert.line_starts(self.text)
        return self._starts
