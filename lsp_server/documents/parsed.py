"""The engine thread's parses of the open documents, each derived from one `DocumentText` (documents.py).

The event loop owns the text; every job brings the state it was made for. An edit re-parses incrementally
only when the parse kept is of the state the edit was made from, and its result is checked against the
state it leads to; anything else (a failed edit, a missed job) leaves the document unparsed, and the next
reader parses the owner's text whole. So a parse never outlives the text it was made from.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import infill

from .documents import DocumentText

log = logging.getLogger(__name__)


@dataclass(slots=True)
class _Kept:
    content: DocumentText  # the newest state the owner sent
    parsed: infill.Document | None = None  # a parse of content.text; None until (re)parsed


class ParsedDocuments:
    def __init__(self):
        self._kept: dict[str, _Kept] = {}  # most recently changed last

    def __contains__(self, uri: str) -> bool:
        return uri in self._kept

    def open(self, content: DocumentText) -> None:
        self._kept.pop(content.uri, None)
        self._kept[content.uri] = kept = _Kept(content)
        self._parse(kept)

    def edit(self, before: DocumentText, after: DocumentText, start: int, end: int, text: str) -> None:
        """The change from `before` to `after` replaced code points [start, end) with text."""
        old = self._kept.pop(after.uri, None)
        self._kept[after.uri] = kept = _Kept(after)  # first: whatever fails below, this state is kept
        if old is None or old.content is not before or old.parsed is None:
            return
        old.parsed.apply_edit(start, end, text)
        if old.parsed.text == after.text:
            kept.parsed = old.parsed
        else:
            log.warning("incremental parse of %s disagreed with its text; parsing it whole", after.uri)

    def close(self, uri: str) -> None:
        self._kept.pop(uri, None)

    def get(self, content: DocumentText) -> infill.Document:
        """The parse of exactly this state (kept in place of another, which only a missed job leaves)."""
        kept = self._kept.get(content.uri)
        if kept is None or kept.content is not content:
            self._kept.pop(content.uri, None)
            self._kept[content.uri] = kept = _Kept(content)
        return self._parse(kept)

    def text(self, uri: str) -> str | None:
        """The text the next completion in uri would see; None when uri is not open."""
        kept = self._kept.get(uri)
        return None if kept is None else self._parse(kept).text

    def contents(self) -> list[DocumentText]:
        """The newest state of every kept document, least recently changed first."""
        return [k.content for k in self._kept.values()]

    def others(self, content: DocumentText, count: int) -> tuple[infill.Document, ...]:
        """Up to count other documents of content's language, most recently changed first."""
        newest_first = [k for u, k in reversed(self._kept.items()) if u != content.uri]
        same = [k for k in newest_first if k.content.language == content.language]
        return tuple(self._parse(k) for k in same[:count])

    @staticmethod
    def _parse(kept: _Kept) -> infill.Document:
        if kept.parsed is None:
            kept.parsed = infill.Document(kept.content.text, kept.content.language)
        return kept.parsed
