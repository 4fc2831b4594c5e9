"""Definitions of one document (tags.scm), kept up to date across edits by re-querying only what changed."""

from bisect import insort
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
    """Built in full on first use; afterwards an edit drops the entries it touches and marks
    its range dirty, and the next lookup re-queries only the dirty ranges."""

    def __init__(self, language: str):
        self.language = language
        self._entries: list[Definition] | None = None
        self._dirty: list[tuple[int, int]] = []

    def edit(self, start: int, old_end: int, new_end: int, changed: list[tree_sitter.Range]) -> None:
        """Bytes [start, old_end) became [start, new_end); `changed` are the ranges (in the new tree)
        whose syntax changed, which may reach far beyond the edit (an unclosed string, a dedent)."""
        if self._entries is None:
            return
        delta = new_end - old_end
        kept = []
        for d in self._entries:
            if d.end < start:
                kept.append(d)
            elif d.start > old_end:
                d.start, d.name_end, d.end = d.start + delta, d.name_end + delta, d.end + delta
                kept.append(d)
        dirty = [(r.start_byte, r.end_byte) for r in changed]
        self._entries = [d for d in kept if not any(d.start <= hi and lo <= d.end for lo, hi in dirty)]
        shifted = [(lo if lo < start else lo + delta, hi if hi < start else hi + delta) for lo, hi in self._dirty]
        self._dirty = [*shifted, (start, new_end), *dirty]

    def lookup(self, tree: tree_sitter.Tree, data: bytes) -> dict[str, list[Definition]]:
        """All definitions by name, refreshed against the current tree."""
        root = tree.root_node
        if self._entries is None:
            self._entries = []
            self._add(root, None, None)
        for lo, hi in self._dirty:
            # the enclosing definitions were dropped too: re-query everything that intersects the edit
            self._add(root, max(0, lo - 1), min(len(data), hi + 1))
        self._dirty = []
        by_name: dict[str, list[Definition]] = {}
        for d in self._entries:
            by_name.setdefault(d.name, []).append(d)
        return by_name

    def _add(self, root: tree_sitter.Node, lo: int | None, hi: int | None) -> None:
        seen = {d.start for d in self._entries}
        for caps in matches(self.language, "tags", root, lo, hi):
            name = caps.get("name")
            kind = next((k for k in caps if k.startswith("definition.")), None)
            if not name or kind is None:
                continue
            node, name_node = caps[kind][0], name[0]
            if node.start_byte in seen:
                continue
            seen.add(node.start_byte)
            d = Definition(name_node.text.decode(errors="replace"), kind.split(".", 1)[1],
                           node.start_byte, name_node.end_byte, node.end_byte)  # fmt: skip
            insort(self._entries, d, key=lambda e: e.start)


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
    while depth > 0 and not text.rstrip().endswith(s.block_open) and end < d.end and len(lines) < MAX_SIGNATURE_LINES:
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
