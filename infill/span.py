"""Span planning at a cursor: whether to complete, which span, its canvas and where the middle stops."""

from dataclasses import dataclass

from .options import InfillOptions
from .syntax import CursorSyntax, indent_of, indent_width

KINDS = ("rest_of_line", "line", "lines", "block")
# initial canvas and hard maximum in tokens, per kind
CANVAS = {"rest_of_line": (16, 32), "line": (24, 48), "lines": (48, 128), "block": (64, 128)}


@dataclass(frozen=True, slots=True)
class Span:
    kind: str  # one of KINDS
    start: int  # the completion replaces text[start:end]; both on the cursor's line
    end: int
    indent: str  # indentation the middle's first line should get
    indent_range: tuple[int, int]  # widths of indentation accepted as the model wrote it
    indent_unit: str
    canvas: int  # initial canvas, tokens
    max_canvas: int  # hard maximum, tokens
    max_lines: int
    min_indent: int | None  # later lines indented less than this end the middle (a dedent below the block)
    stop_at_close: bool  # a bracket the middle closes without opening ends it (the block end)
    new_line: bool  # the middle must begin on a new line (the cursor ends a block header)
    keep: str  # text from the line's end that the replacement re-appends (trailing closers)


def _only_closers(tail: str, closers: str) -> bool:
    return all(c in closers or c.isspace() for c in tail)


def _kind(syn: CursorSyntax, blank: bool, at_end: bool) -> str:
    if not at_end:
        return "rest_of_line"
    header = syn.prev_line if blank else syn.line_prefix
    opener = header.rstrip().endswith(syn.lang.block_open)
    if syn.block_empty and (blank or opener):
        return "block"
    if opener:
        return "lines"
    return "rest_of_line" if not blank else "line"


def _header_indent(syn: CursorSyntax, blank: bool) -> str:
    if syn.block is not None and not syn.lang.offside:
        start = syn.text.rfind("\n", 0, syn.block[0]) + 1
        return indent_of(syn.text[start : syn.block[0]])
    return indent_of(syn.prev_line if blank else syn.line_prefix)


def _indent(syn: CursorSyntax, kind: str, blank: bool) -> tuple[str, tuple[int, int]]:
    unit = syn.indent_unit
    if kind == "rest_of_line":
        return "", (0, 1 << 30)
    if kind == "block":
        ind = _header_indent(syn, blank) + unit
        return ind, (indent_width(ind),) * 2
    if kind == "lines":
        header = indent_of(syn.prev_line if blank else syn.line_prefix)
        body = indent_of(syn.next_line)
        ind = body if indent_width(body) > indent_width(header) else header + unit
        # the first line may itself open a deeper block, so anything from the header's body level
        # to the next line's level is accepted as written
        return ind, (indent_width(header + unit), max(indent_width(ind), indent_width(header + unit)))
    if syn.line_prefix:  # the editor (or the user) already indented this line
        return syn.line_prefix, (indent_width(syn.line_prefix),) * 2
    prev = indent_of(syn.prev_line)
    opener = syn.prev_line.rstrip().endswith(syn.lang.block_open)
    ind = prev + unit if opener else prev
    nxt = indent_width(indent_of(syn.next_line)) if syn.next_line else 0  # at the end any dedent fits
    if syn.lang.block_close and syn.next_line.lstrip().startswith(syn.lang.block_close):
        nxt += indent_width(unit)  # the next line closes the cursor's block: the line sits inside it
    widths = (indent_width(ind), nxt)
    return ind, (min(widths), max(widths))


def _keep(syn: CursorSyntax, tail: str, multi: bool) -> str:
    if not tail.strip():
        return ""
    # a multi-line middle pushes the closers onto their own line, indented as the cursor's line was
    return ("\n" + indent_of(syn.line_prefix) if multi else "") + tail.strip()


def plan_span(
    syn: CursorSyntax, invoked: bool = False, options: InfillOptions = InfillOptions()
) -> Span | None:
    """The span to fill at the cursor, or None when an automatic request should not complete here."""
    if not invoked and (syn.in_comment or syn.in_string or syn.mid_word):
        return None
    tail = syn.line_suffix
    at_end = _only_closers(tail, syn.lang.closers)
    if not at_end and not invoked:
        return None
    blank = not syn.line_prefix.strip()
    kind = _kind(syn, blank, at_end)
    indent, indent_range = _indent(syn, kind, blank)
    initial, hard = CANVAS[kind]
    # an explicit canvas (a fixed budget) overrides the kind's defaults; max_tokens caps both
    max_canvas = min(max(hard, options.canvas or 0), options.max_tokens)
    multi = kind in ("lines", "block")
    return Span(
        kind=kind,
        start=syn.line_start if blank and kind != "rest_of_line" else syn.offset,
        end=syn.line_end if at_end else syn.offset,
        indent=indent,
        indent_range=indent_range,
        indent_unit=syn.indent_unit,
        canvas=min(options.canvas or initial, max_canvas),
        max_canvas=max_canvas,
        max_lines=options.max_lines if multi else 1,
        min_indent=indent_width(indent) if multi else None,
        stop_at_close=multi,
        new_line=multi and not blank,
        keep=_keep(syn, tail, multi) if at_end else "",
    )
