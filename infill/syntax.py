"""What the tree and the nearby lines say about a cursor position: `syntax_context(doc, offset)`."""

import re
from collections import Counter
from dataclasses import dataclass

import tree_sitter

from .document import Document
from .languages import LanguageSpec, spec
from .queries import captures

SCAN_LINES = 200  # how far to look for the nearest non-blank line above and below
_LEADING_WS = re.compile(r"[ \t]*")


def indent_of(line: str) -> str:
    return _LEADING_WS.match(line).group()


def indent_width(ws: str, tab: int = 4) -> int:
    return sum(tab if c == "\t" else 1 for c in ws)


@dataclass(frozen=True, slots=True)
class CursorSyntax:
    text: str
    lang: LanguageSpec
    offset: int
    line_start: int  # str offsets of the cursor's line, line_end before its "\n"
    line_end: int
    prev_line: str  # nearest non-blank lines above and below the cursor's line ("" if none)
    next_line: str
    indent_unit: str
    in_comment: bool
    in_string: bool
    block: tuple[int, int] | None  # str offsets of the innermost delimited block around the cursor
    block_empty: bool  # that block (or, by the offside rule, the body opened just above) is empty

    @property
    def line_prefix(self) -> str:
        return self.text[self.line_start : self.offset]

    @property
    def line_suffix(self) -> str:
        return self.text[self.offset : self.line_end]

    @property
    def mid_word(self) -> bool:
        before = self.text[self.offset - 1 : self.offset]
        after = self.text[self.offset : self.offset + 1]
        return self.lang.is_identifier_char(before) and self.lang.is_identifier_char(after)


def _nearest_nonblank(text: str, pos: int, step: int) -> str:
    """The first non-blank line above (step=-1, pos = a line start) or below (step=1, pos = a line end)."""
    for _ in range(SCAN_LINES):
        if step < 0:
            if pos <= 0:
                return ""
            start = text.rfind("\n", 0, pos - 1) + 1
            line, pos = text[start : pos - 1], start
        else:
            if pos >= len(text):
                return ""
            end = text.find("\n", pos + 1)
            end = len(text) if end < 0 else end
            line, pos = text[pos + 1 : end], end
        if line.strip():
            return line
    return ""


_LINE_INDENT = re.compile(r"\n([ \t]*)\S")


def guess_indent_unit(text: str, pos: int, default: str, chars: int = 2000) -> str:
    """The most frequent positive indentation step between consecutive non-blank lines near pos (the
    smaller on a tie). Not the smallest: continuation lines aligned under an opening bracket, or
    docstrings, make odd steps that are not the block unit."""
    indents = _LINE_INDENT.findall(text, max(0, pos - chars), pos + chars // 2)
    if any("\t" in ws for ws in indents):
        return "\t"
    steps = Counter(len(b) - len(a) for a, b in zip(indents, indents[1:]) if len(b) > len(a))
    if not steps:
        return default
    return " " * min(steps, key=lambda step: (-steps[step], step))


def captures_near(
    doc: Document, purpose: str, lo: int, hi: int, max_depth: int | None = None
) -> dict[str, list[tree_sitter.Node]]:
    """Captures intersecting bytes [lo, hi), gathered over the chunk trees holding that range."""
    out: dict[str, list[tree_sitter.Node]] = {}
    for tree in doc.trees_in(lo, hi):
        for name, nodes in captures(doc.language, purpose, tree.root_node, lo, hi, max_depth).items():
            out.setdefault(name, []).extend(nodes)
    return out


def _flag(doc: Document, purpose: str, name: str, b: int, line_comment: bool) -> bool:
    for node in captures_near(doc, purpose, max(0, b - 1), b + 1).get(name, []):
        # a line comment runs to the end of its line, so the cursor right after it is still inside
        if node.start_byte < b < node.end_byte or (line_comment and node.end_byte == b and name == "comment"):
            return True
    return False


def _block(doc: Document, b: int, lang: LanguageSpec) -> tuple[int, int, bool] | None:
    """Innermost delimited @block.outer strictly around byte b, and whether only whitespace is inside it."""
    if lang.offside:
        return None
    nodes = captures_near(doc, "textobjects", max(0, b - 1), b + 1).get("block.outer", [])
    inside = [n for n in nodes if n.start_byte < b < n.end_byte]
    if not inside:
        return None
    n = min(inside, key=lambda n: n.end_byte - n.start_byte)
    body = doc.data[n.start_byte : n.end_byte].decode(errors="replace")
    if body.startswith(lang.block_open) and body.endswith(lang.block_close):
        body = body[len(lang.block_open) : -len(lang.block_close)]
    return doc.char_offset(n.start_byte), doc.char_offset(n.end_byte), not body.strip()


def _offside_empty(prefix: str, suffix: str, prev: str, nxt: str, lang: LanguageSpec) -> bool:
    """By the offside rule: the cursor sits right after a block opener whose body is still empty."""
    if prefix.strip():
        header = prefix if not suffix.strip() else ""
    else:
        header = prev
    if not header.rstrip().endswith(lang.block_open):
        return False
    return not nxt or indent_width(indent_of(nxt)) <= indent_width(indent_of(header))


def syntax_context(doc: Document, offset: int) -> CursorSyntax | None:
    """Facts about the cursor at str offset `offset`; None for documents without a grammar."""
    if not doc.trees:
        return None
    text = doc.text
    if not 0 <= offset <= len(text):
        raise ValueError(f"offset {offset} outside document of length {len(text)}")
    lang = spec(doc.language)
    line_start = text.rfind("\n", 0, offset) + 1
    line_end = text.find("\n", offset)
    line_end = len(text) if line_end < 0 else line_end
    prev = _nearest_nonblank(text, line_start, -1)
    nxt = _nearest_nonblank(text, line_end, 1)
    b = doc.byte_offset(offset)
    block = _block(doc, b, lang)
    if lang.offside:
        empty = _offside_empty(text[line_start:offset], text[offset:line_end], prev, nxt, lang)
    else:
        empty = block is not None and block[2]
    return CursorSyntax(
        text=text,
        lang=lang,
        offset=offset,
        line_start=line_start,
        line_end=line_end,
        prev_line=prev,
        next_line=nxt,
        indent_unit=guess_indent_unit(text, line_start, lang.indent),
        in_comment=_flag(doc, "literals", "comment", b, line_comment=True),
        in_string=_flag(doc, "literals", "string", b, line_comment=False),
        block=block[:2] if block else None,
        block_empty=empty,
    )


def first_child_for_byte(node: tree_sitter.Node, byte: int) -> tree_sitter.Node | None:
    """The first child ending after `byte`; None past the last one. Goes through a TreeCursor
    because Node.first_child_for_byte crashes there (py-tree-sitter 0.26 returns a null node). The
    cursor call in turn misses the child after a gap inside a hidden node (a blank line between Go
    declarations): then the children are walked."""
    cursor = node.walk()
    if cursor.goto_first_child_for_byte(byte) is not None:
        return cursor.node
    cursor.reset(node)
    if byte >= node.end_byte or not cursor.goto_first_child():
        return None
    while cursor.node.end_byte <= byte:
        if not cursor.goto_next_sibling():
            return None
    return cursor.node


def count_errors(node: tree_sitter.Node) -> int:
    """ERROR and MISSING nodes under node, descending only where has_error says there are some."""
    if not node.has_error and not node.is_missing:
        return 0
    n = 1 if node.is_error or node.is_missing else 0
    return n + sum(count_errors(c) for c in node.children)
