"""The repository memory of a remote model: the texts themselves, sent with each request for the team server's
memory to match against (engine/memory.py does the matching there).

It has the shape of engine.RepositoryMemory where lsp_server uses one (`update` with a cursor, `remove`,
`report`, `limit`: engine.api.Memory), so the worker and filler.complete feed it as they feed the local one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from infill import language_for

AFTER_CURSOR = "#after-cursor"  # the name of a document's text after its cursor, beside the text before


@dataclass(frozen=True, slots=True)
class Source:
    parts: tuple[str, ...]  # the text, or (before, after) for a document cut at its cursor
    language: str | None  # by the name's file extension: which sources go with which document
    size: int  # UTF-8 bytes


class TextStore:
    """Sources by name within a size bound, the least recently updated dropped first (the policy of
    engine.memory.TextIndex)."""

    def __init__(self, max_bytes: int = 8 * 2**20):
        self.max_bytes = max_bytes
        self._sources: dict[str, Source] = {}  # least recently updated first
        self.size = 0

    def set(self, key: str, parts: tuple[str, ...]) -> None:
        self.remove(key)
        size = sum(len(p.encode("utf-8", "replace")) for p in parts)
        self._sources[key] = Source(parts, language_for(None, key), size)
        self.size += size
        while self.size > self.max_bytes and len(self._sources) > 1:
            self.remove(next(iter(self._sources)))

    def remove(self, key: str) -> None:
        if (source := self._sources.pop(key, None)) is not None:
            self.size -= source.size

    def keys(self) -> list[str]:
        return list(self._sources)

    def newest_first(self):
        return reversed(self._sources.items())


class RemoteMemory:
    def __init__(self, max_bytes: int = 8 * 2**20):
        self.index = TextStore(max_bytes)

    def update(self, key: str, text: str, cursor: int | None = None) -> None:
        self.index.set(key, (text,) if cursor is None else cut_at_cursor(text, cursor))

    def remove(self, key: str) -> None:
        self.index.remove(key)

    def __bool__(self) -> bool:
        return self.index.size > 0

    def contains(self, word: str) -> bool:
        """Whether any kept text holds `word` as a whole identifier."""
        pattern = re.compile(rf"(?<![A-Za-z0-9_]){re.escape(word)}(?![A-Za-z0-9_])")
        return any(pattern.search(part) for _, source in self.index.newest_first() for part in source.parts)

    def limit(self, max_bytes: int) -> None:
        """The most bytes kept; the least recently updated sources go first, at the next update."""
        self.index.max_bytes = max_bytes

    def report(self) -> dict:
        index = self.index
        return {"sources": len(index.keys()), "bytes": index.size, "max_bytes": index.max_bytes}

    def extra(self, limit: int) -> list[dict[str, str]]:
        """The texts for one request, at most `limit` bytes of UTF-8 in all: the most recently updated source
        (the document being completed: filler.complete updates it with its cursor just before) and then the
        others of its language (by file extension), newest first. Listed oldest first, so that a memory
        updated in list order ends with the document as its newest source, as the local one does."""
        sources: list[list[dict[str, str]]] = []  # newest first
        language = None
        for i, (key, source) in enumerate(self.index.newest_first()):
            if limit <= 0:
                break
            if i == 0:
                language = source.language
            elif source.language != language:
                continue
            data = [p.encode("utf-8", "replace") for p in source.parts]
            if len(data) == 2:  # before and after the cursor: the text nearest the cursor kept
                before = _head_or_tail(data[0], limit - min(len(data[1]), limit // 4), tail=True)
                texts = [(key, before), (key + AFTER_CURSOR, _head_or_tail(data[1], limit - len(before)))]
            else:
                texts = [(key, _head_or_tail(data[0], limit))]
            sources.append([{"filename": n, "text": c.decode("utf-8", "replace")} for n, c in texts if c])
            limit -= sum(len(c) for _, c in texts)
        return [item for source in reversed(sources) for item in source]


def cut_at_cursor(text: str, cursor: int) -> tuple[str, str]:
    """(text before, text after) without what engine.RepositoryMemory.update(cursor=...) keeps blind: the
    line before the cursor's, the cursor's line and the line after it, from which a completion would only
    copy its neighbours."""
    cursor = max(0, min(cursor, len(text)))
    left, right = text[:cursor], text[cursor:]
    line = left.rfind("\n")
    start = left.rfind("\n", 0, max(line, 0)) + 1 if line >= 0 else 0
    first = right.find("\n")
    second = right.find("\n", first + 1) if first >= 0 else -1
    return left[:start], right[second:] if second >= 0 else ""


def _head_or_tail(data: bytes, limit: int, *, tail: bool = False) -> bytes:
    """data, or its first (with tail, last) `limit` bytes cut at a line start when it is longer."""
    if len(data) <= max(limit, 0):
        return data
    if limit <= 0:
        return b""
    if tail:
        part = data[len(data) - limit :]
        return part[part.find(b"\n") + 1 :] if b"\n" in part else b""
    part = data[:limit]
    return part[: part.rfind(b"\n") + 1]
