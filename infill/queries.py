"""Load grammars/<lang>/<purpose>.scm (resolving `; inherits:` lines), compile and run them."""

import re
from collections.abc import Iterator
from functools import cache

import tree_sitter

from grammars import query_path

from .languages import spec, ts_language

PURPOSES = ("textobjects", "tags", "imports", "literals")

# The vocabulary infill reads; names starting with "_" are private to predicates.
ALLOWED_CAPTURES = frozenset(
    {
        "function.outer", "function.inner", "class.outer", "class.inner", "block.outer", "block.stub",
        "definition.function", "definition.method", "definition.class", "definition.interface",
        "definition.type", "definition.constant", "definition.module", "definition.macro", "name",
        "import", "comment", "string",
    }
)  # fmt: skip

_INHERITS = re.compile(r"^;+\s*inherits\s*:\s*(.+)$")


def query_source(folder: str, purpose: str, _seen: tuple[str, ...] = ()) -> str:
    """Query text for one folder and purpose, with inherited folders' text first."""
    if folder in _seen:
        raise ValueError(f"grammars/{folder}/{purpose}.scm: inheritance cycle through {' -> '.join(_seen)}")
    path = query_path(folder, purpose)
    if not path.exists():
        return ""
    text = path.read_text(encoding="utf-8")
    parts = []
    for line in text.splitlines():
        m = _INHERITS.match(line.strip())
        if m:
            for parent in (p.strip() for p in m.group(1).split(",")):
                parts.append(query_source(parent, purpose, (*_seen, folder)))
    parts.append(text)
    return "\n".join(parts)


@cache
def query(lang: str, purpose: str) -> tree_sitter.Query:
    """The compiled query; ValueError names the file when it does not compile."""
    source = query_source(spec(lang).queries, purpose)
    try:
        return tree_sitter.Query(ts_language(lang), source)
    except tree_sitter.QueryError as e:
        raise ValueError(f"grammars/{spec(lang).queries}/{purpose}.scm: {e}") from None


def _top_level(node: tree_sitter.Node, start: int, end: int) -> tree_sitter.Node:
    """The root's child spanning [start, end], else the root. Query cursors walk a node's children
    linearly, and a root may have thousands; the root itself is never a capture infill asks for."""
    cursor = node.walk()
    if node.parent is None and cursor.goto_first_child_for_byte(start) is not None:
        child = cursor.node
        if child.start_byte <= start and end <= child.end_byte:
            return child
    return node


def captures(
    lang: str,
    purpose: str,
    node: tree_sitter.Node,
    start: int | None = None,
    end: int | None = None,
    max_depth: int | None = None,
) -> dict[str, list[tree_sitter.Node]]:
    """Captures under `node`, restricted to nodes intersecting bytes [start, end) when given, and to
    matches starting at most max_depth levels below `node`."""
    cursor = tree_sitter.QueryCursor(query(lang, purpose))
    if max_depth is not None:
        cursor.set_max_start_depth(max_depth)
    if start is not None:
        end = end if end is not None else node.end_byte
        cursor.set_byte_range(start, end)
        node = _top_level(node, start, end)
    return cursor.captures(node)


def matches(
    lang: str, purpose: str, node: tree_sitter.Node, start: int | None = None, end: int | None = None
) -> Iterator[dict[str, list[tree_sitter.Node]]]:
    cursor = tree_sitter.QueryCursor(query(lang, purpose))
    if start is not None:
        cursor.set_byte_range(start, end if end is not None else node.end_byte)
    for _, caps in cursor.matches(node):
        yield caps
