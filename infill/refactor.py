"""Fill-in-the-middle refactors of a whole document: rewrite a selection, fill every hole marker, complete an
empty body. Pure functions reaching the model through a Filler (or a Complete built on infill.complete); each
returns edits against the text it was given (infill/edits.py), never a changed copy of it."""

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from itertools import accumulate

from .context import build_context
from .document import Document
from .edits import Edit, compose
from .languages import LanguageSpec, spec
from .pipeline import Completion, Filler
from .postprocess import is_repetitive
from .syntax import captures_near, guess_indent_unit, indent_of

HOLE = "<|fill|>"
# a rewrite's canvas: the selection's tokens with room to say it longer; twice that where it can grow
GROWTH, SLACK = 1.25, 4
_EOL = re.compile(r"\r\n|\r|\n")

Complete = Callable[[Document, int], Completion | None]  # infill.complete at an offset of that document


@dataclass(frozen=True, slots=True)
class Refactor:
    edits: tuple[Edit, ...]  # against the text given; () when nothing came of it
    note: str = ""  # what was left undone and why, for the user


@dataclass(frozen=True, slots=True)
class Filled:
    edits: tuple[Edit, ...]
    text: str  # the filled text
    holes: int
    empty: tuple[int, ...]  # 1-based numbers of the holes left empty

    @property
    def note(self) -> str:
        if not self.empty:
            return ""
        which = ", ".join(map(str, self.empty))
        return f"hole{'s' * (len(self.empty) > 1)} {which} of {self.holes} left empty"


def eol_of(text: str) -> str:
    m = _EOL.search(text)
    return m.group() if m else "\n"


# ---- rewrite a selection


def selection_core(text: str, start: int, end: int) -> tuple[int, int] | None:
    """The selection without its surrounding whitespace, which stays (indentation, line breaks); None if
    nothing but whitespace is selected."""
    selected = text[start:end]
    s, e = start + len(selected) - len(selected.lstrip()), end - len(selected) + len(selected.rstrip())
    return (s, e) if s < e else None


def rewrite_canvas(tokens: int) -> int:
    return math.ceil(tokens * GROWTH) + SLACK


def rewrite(
    text: str,
    language: str,
    start: int,
    end: int,
    fill: Filler,
    *,
    count_tokens: Callable[[str], int],
    context_tokens: Callable[[int], int],
    max_tokens: int,
    again: Filler | None = None,
) -> Refactor:
    """text[start:end] (less its surrounding whitespace) masked and infilled with the code on both sides;
    context_tokens(n) is the budget for the prompt beside a canvas of up to n tokens. When fill writes the
    selection back as it was, `again` (the model without its repository memory, say) is asked once more."""
    core = selection_core(text, start, end)
    if core is None:
        return Refactor((), "nothing but whitespace is selected")
    s, e = core
    canvas = rewrite_canvas(count_tokens(text[s:e]))
    if canvas > max_tokens:
        return Refactor((), f"the selection is too long to rewrite ({canvas} tokens, at most {max_tokens})")
    single_line = _EOL.search(text, s, e) is None
    grown = min(2 * canvas, max_tokens)
    prompt = build_context(Document(text[:s] + text[e:], language), s, count_tokens, context_tokens(grown))
    for filler in (fill, again):
        if filler is None:
            break
        middle, _ = filler(prompt.prefix, prompt.suffix, canvas, grown, single_line)
        new = (middle.split("\n", 1)[0] if single_line else middle).strip()
        if not new or is_repetitive(new):
            return Refactor((), "the model had no rewrite for the selection")
        new = new.replace("\r\n", "\n").replace("\n", eol_of(text))
        if new != text[s:e]:
            return Refactor((Edit(s, e, new),))
    return Refactor((), "the model wrote the selection back unchanged")


# ---- fill hole markers


def fill_holes(
    text: str,
    language: str,
    complete: Complete,
    marker: str = HOLE,
    progress: Callable[[int, int], None] | None = None,
) -> Filled:
    """Every marker first to last, each filled seeing the holes filled before it; progress(done, holes)
    before each."""
    pieces = text.split(marker)
    holes = list(accumulate(len(p) for p in pieces[:-1]))  # offsets in the text without markers
    edits: list[Edit] = []
    current = text
    for h in holes:  # the markers go first: each hole is filled where its marker was
        edits = compose(edits, current, h, h + len(marker), "")
        current = current[:h] + current[h + len(marker) :]
    doc, empty = Document(current, language), []
    for i in range(len(holes)):
        if progress is not None:
            progress(i, len(holes))
        c = complete(doc, holes[i])
        if c is None:
            empty.append(i + 1)
            continue
        edits = compose(edits, doc.text, c.start, c.end, c.text)
        doc.apply_edit(c.start, c.end, c.text)
        delta = len(c.text) - (c.end - c.start)
        holes[i + 1 :] = [h + delta if h >= c.end else c.start + len(c.text) for h in holes[i + 1 :]]
    return Filled(tuple(edits), doc.text, len(holes), tuple(empty))


# ---- complete an empty body


@dataclass(frozen=True, slots=True)
class Body:
    start: int  # text[start:end] becomes `opened`: a line one level in, where the body's completion goes
    end: int
    opened: str
    cursor: int  # that line's end, in the text with the body opened


def body_at(doc: Document, start: int, end: int) -> Body | None:
    """The innermost empty body on the lines of [start, end]: nothing but whitespace between its
    delimiters (or, by the offside rule, under its header), or only a placeholder (@block.stub). A body is
    on a line from its owner's header (`def f():`, `func f() {`) to its end."""
    if not doc.trees:
        return None
    text, lang = doc.text, spec(doc.language)
    first = text.count("\n", 0, start)
    last = first + text.count("\n", start, end)
    lo = _header_above(text, text.rfind("\n", 0, start) + 1)
    hi = _line_end(text, _line_end(text, end) + 1)  # one line more: a brace on the line after its header
    caps = captures_near(doc, "textobjects", doc.byte_offset(lo), doc.byte_offset(hi))
    blocks = {(n.start_byte, n.end_byte): n for n in caps.get("block.outer", [])}
    stubs = {(n.start_byte, n.end_byte) for n in caps.get("block.stub", [])}
    found = []
    for key, n in blocks.items():
        stub = key in stubs
        if not stub and not _empty(doc.data[n.start_byte : n.end_byte].decode(errors="replace"), lang):
            continue
        owner = n.parent
        own = owner is not None and (owner.start_byte, owner.end_byte) not in blocks
        top = owner.start_point.row if own else n.start_point.row
        bottom = n.end_point.row
        if lang.offside and not stub:  # the blank lines under an empty header are its body too
            bottom += _blank_lines_after(text, doc.char_offset(n.end_byte))
        if top <= last and bottom >= first:
            found.append((n, stub, owner if own else n))
    if not found:
        return None
    n, stub, owner = max(found, key=lambda f: (f[0].start_byte, -f[0].end_byte))
    return _open(doc, n, stub, owner, lang)


def _header_above(text: str, lo: int) -> int:
    """The start of the line above lo's blank lines (lo a line start): an empty body's header."""
    while lo > 0:
        lo = text.rfind("\n", 0, lo - 1) + 1
        if text[lo : _line_end(text, lo)].strip():
            break
    return lo


def _line_end(text: str, pos: int) -> int:
    end = text.find("\n", pos)
    return len(text) if end < 0 else end


def _blank_lines_after(text: str, pos: int) -> int:
    """How many blank lines follow the line holding pos."""
    count, end = 0, _line_end(text, pos)
    while end < len(text):
        following = _line_end(text, end + 1)
        if text[end + 1 : following].strip():
            break
        count, end = count + 1, following
    return count


def _empty(body: str, lang: LanguageSpec) -> bool:
    if lang.offside:
        return not body.strip()
    opened, closed = body.startswith(lang.block_open), body.endswith(lang.block_close)
    return opened and closed and not body[len(lang.block_open) : len(body) - len(lang.block_close)].strip()


def _open(doc: Document, n, stub: bool, owner, lang: LanguageSpec) -> Body:
    text, eol = doc.text, eol_of(doc.text)
    s, e = doc.char_offset(n.start_byte), doc.char_offset(n.end_byte)
    header = text.rfind("\n", 0, doc.char_offset(owner.start_byte) if lang.offside else s) + 1
    indent = indent_of(text[header : _line_end(text, header)])
    inner = indent + guess_indent_unit(text, header, lang.indent)
    if not lang.offside:
        o, c = s + len(lang.block_open), e - len(lang.block_close)
        return Body(o, c, eol + inner + eol + indent, o + len(eol) + len(inner))
    if stub:  # the placeholder goes, from the end of the header (or its comment) on
        at = len(text[:s].rstrip())
        return Body(at, e, eol + inner, at + len(eol) + len(inner))
    at = _EOL.search(text, s)
    at = at.start() if at else len(text)
    return Body(at, at, eol + inner, at + len(eol) + len(inner))


def complete_body(text: str, language: str, start: int, end: int, complete: Complete) -> Refactor:
    """The empty body on the lines of [start, end] opened and completed as one block."""
    doc = Document(text, language)
    body = body_at(doc, start, end)
    if body is None:
        return Refactor((), "no empty body here")
    doc.apply_edit(body.start, body.end, body.opened)
    c = complete(doc, body.cursor)
    if c is None:
        return Refactor((), "the model left the body empty")
    opened = [Edit(body.start, body.end, body.opened)]
    return Refactor(tuple(compose(opened, doc.text, c.start, c.end, c.text)))
