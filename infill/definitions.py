"""Definitions of one document (tags.scm), kept up to date across edits by re-querying only what changed."""

from collections.abc import Sequence
from dataclasses import dataclass

import tree_sitter

from .languages import spec
from .queries import matches

MAX_SIGNATURE_LINES = 4
MAX_SIGNATURE_CHARS = 300


@dataclass(slots=True)
class Definition:
    name: str
    kind: str  # "function", "class", ... from @definition.<kind>
    start: int  # bytes: [start, end) of the definition, name_end is where its name ends
    name_end: int
    end: int


def _shift(p: int, start: int, delta: int) -> int:
    """Where byte p moves when an edit at `start` changes the length by delta (a deleted byte: to start)."""
    return p if p < start else max(start, p + delta)


class DefinitionIndex:
    """Built in full on first lookup. Edits are only queued (the re-parse path stays cheap); the next
    lookup shifts the entries after each edit, drops those it touched or whose syntax changed, and
    re-queries only those ranges."""

    def __init__(self, language: str):
        self.language = language
        self._by_name: dict[str, list[Definition]] | None = None
        self._pending: list[tuple[int, int, int, list[tuple[int, int]]]] = []

    def edit(self, start: int, old_end: int, new_end: int, changed: list[tuple[int, int]]) -> None:
        """Bytes [start, old_end) became [start, new_end); `changed` are the byte ranges (after the
        edit) whose syntax changed, which may reach far beyond the edit (an unclosed string, a dedent)."""
        if self._by_name is not None:
            self._pending.append((start, old_end, new_end, changed))

    def lookup(self, trees: Sequence[tree_sitter.Tree], data: bytes) -> dict[str, list[Definition]]:
        """All definitions by name, brought up to date with the current trees (a document's chunks)."""
        if self._by_name is None:
            self._by_name = {}
            for tree in trees:
                self._add(tree.root_node, data, None, None)
            return self._by_name
        if not self._pending:
            return self._by_name
        dirty: list[tuple[int, int]] = []
        for start, old_end, new_end, changed in self._pending:
            delta = new_end - old_end
            dirty = [(_shift(lo, start, delta), _shift(hi, start, delta)) for lo, hi in dirty]
            dirty += [(start, new_end), *changed]
            for name, entries in list(self._by_name.items()):
                kept = []
                for d in entries:
                    if d.start > old_end:
                        d.start, d.name_end, d.end = d.start + delta, d.name_end + delta, d.end + delta
                    elif d.end >= start:
                        continue  # the edit touched it
                    if not any(d.start <= hi and lo <= d.end for lo, hi in changed):
                        kept.append(d)
                if kept:
                    self._by_name[name] = kept
                else:
                    del self._by_name[name]
        self._pending = []
        roots = [tree.root_node for tree in trees]
        for lo, hi in dirty:  # the dropped entries intersect these ranges, so the query finds them again
            lo, hi = max(0, lo - 1), min(len(data), hi + 1)
            for root in roots:
                if root.start_byte <= hi and lo <= root.end_byte:
                    self._add(root, data, lo, hi)
        return self._by_name

    def _add(self, root: tree_sitter.Node, data: bytes, lo: int | None, hi: int | None) -> None:
        for caps in matches(self.language, "tags", root, lo, hi):
            name = caps.get("name")
            kind = next((k for k in caps if k.startswith("definition.")), None)
            if not name or kind is None:
                continue
            node, name_node = caps[kind][0], name[0]
            # not name_node.text: a tree only shifted by an edit before it no longer holds its source
            text = data[name_node.start_byte : name_node.end_byte].decode(errors="replace")
            entries = self._by_name.setdefault(text, [])
            if any(d.start == node.start_byte for d in entries):
                continue
            entries.append(
                Definition(text, kind.split(".", 1)[1], node.start_byte, name_node.end_byte, node.end_byte)
            )


def signature(d: Definition, data: bytes, language: str) -> str:
    """The definition's head: from its start through the line holding its name, continued while
    brackets stay open, without a trailing block opener."""
    s = spec(language)
    end = data.find(b"\n", d.name_end, d.end)
    end = d.end if end < 0 else end
    text = data[d.start : end].decode(errors="replace")
    opens, closes = s.brackets[0::2], s.brackets[1::2]
    depth = sum(text.count(o) for o in opens) - sum(text.count(c) for c in closes)
    lines = text.split("\n")
    while (
        depth > 0
        and not text.rstrip().endswith(s.block_open)
        and end < d.end
        and len(lines) < MAX_SIGNATURE_LINES
    ):
        nxt = data.find(b"\n", end + 1, d.end)
        nxt = d.end if nxt < 0 else nxt
        line = data[end + 1 : nxt].decode(errors="replace")
        depth += sum(line.count(o) for o in opens) - sum(line.count(c) for c in closes)
        lines.append(line)
        end = nxt
    head = "\n".join(lines).rstrip()
    if s.block_close and head.endswith(s.block_open):
        head = head[: -len(s.block_open)].rstrip()
    return head[:MAX_SIGNATURE_CHARS]
