"""Definitions of one document (tags.scm), kept up to date across edits by re-querying only what changed."""

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


class DefinitionIndex:
    """Built in full on first lookup. Edits are only queued (the re-parse path stays cheap); the next
    lookup shifts the entries after each edit, drops those it touched or whose syntax changed, and
    re-queries only those ranges."""

    def __init__(self, language: str):
        self.language = language
        self._by_name: dict[str, list[Definition]] | None = None
        self._pending: list[tuple[int, int, int, list[tuple[int, int]]]] = []

    def edit(self, start: int, old_end: int, new_end: int, changed: list[tree_sitter.Range]) -> None:
        """Bytes [start, old_end) became [start, new_end); `changed` are the ranges (in the new tree)
        whose syntax changed, which may reach far beyond the edit (an unclosed string, a dedent)."""
        if self._by_name is not None:
            self._pending.append((start, old_end, new_end, [(r.start_byte, r.end_byte) for r in changed]))

    def lookup(self, tree: tree_sitter.Tree, data: bytes) -> dict[str, list[Definition]]:
        """All definitions by name, brought up to date with the current tree."""
        root = tree.root_node
        if self._by_name is None:
            self._by_name = {}
            self._add(root, None, None)
            return self._by_name
        if not self._pending:
            return self._by_name
        dirty: list[tuple[int, int]] = []
        for start, old_end, new_end, changed in self._pending:
            delta = new_end - old_end
            dirty = [(lo if lo < start else lo + delta, hi if hi < start else hi + delta) for lo, hi in dirty]
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
        for lo, hi in dirty:  # the dropped entries intersect these ranges, so the query finds them again
            self._add(root, max(0, lo - 1), min(len(data), hi + 1))
        return self._by_name

    def _add(self, root: tree_sitter.Node, lo: int | None, hi: int | None) -> None:
        for caps in matches(self.language, "tags", root, lo, hi):
            name = caps.get("name")
            kind = next((k for k in caps if k.startswith("definition.")), None)
            if not name or kind is None:
                continue
            node, name_node = caps[kind][0], name[0]
            text = name_node.text.decode(errors="replace")
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
