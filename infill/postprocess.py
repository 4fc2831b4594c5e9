"""Post-processing of one model middle into replacement texts for a span: cut at the span's stops,
fit the indentation, trim what duplicates the suffix, drop empty or repetitive output."""

import re

from .span import Span
from .syntax import CursorSyntax, indent_of, indent_width

SUFFIX_LINES = 5  # how many following lines a middle's tail may duplicate
_REPEATED_CHUNK = re.compile(r"(\S.{0,9}?)\1{5,}")  # a short chunk six or more times in a row
_QUOTES = "\"'`"


MAX_INDENT_VARIANTS = 4


def _indent_string(width: int, span: Span) -> str:
    unit = span.indent_unit
    if "\t" in unit:
        return "\t" * (width // indent_width(unit)) + " " * (width % indent_width(unit))
    return " " * width


def _shift(lines: list[str], first: int, indent: str) -> list[str]:
    base = indent_of(lines[first])
    out = lines[:first]
    for line in lines[first:]:
        ws = indent_of(line)
        if not line.strip():
            out.append("")
            continue
        extra = (
            ws[len(base) :] if ws.startswith(base) else " " * max(0, indent_width(ws) - indent_width(base))
        )
        out.append(indent + extra + line[len(ws) :])
    return out


def _reindent(lines: list[str], first: int, span: Span) -> list[list[str]]:
    """lines as written when lines[first] is indented within span.indent_range; otherwise shifted to
    span.indent first, then to the other block levels nearest it (the syntax check picks)."""
    lo, hi = span.indent_range
    if lo <= indent_width(indent_of(lines[first])) <= hi:
        return [lines]
    default, step = indent_width(span.indent), max(1, indent_width(span.indent_unit))
    levels = sorted(range(0, max(hi, default) + 1, step), key=lambda w: (abs(w - default), -w))
    levels = [w for w in levels if w != default][: MAX_INDENT_VARIANTS - 1]
    return [_shift(lines, first, span.indent)] + [
        _shift(lines, first, _indent_string(w, span)) for w in levels
    ]


def _cut_at_close(text: str, brackets: str) -> str:
    """Cut where the text closes a bracket it did not open (it reached the end of its block)."""
    opens, closes = brackets[0::2], brackets[1::2]
    depth, quote = 0, ""
    for i, ch in enumerate(text):
        if quote:
            quote = "" if ch in (quote, "\n") else quote
        elif ch in _QUOTES:
            quote = ch
        elif ch in opens:
            depth += 1
        elif ch in closes:
            depth -= 1
            if depth < 0:
                return text[:i].rstrip()
    return text


def _cut_multiline(lines: list[str], first: int, span: Span) -> list[str]:
    """Keep at most max_lines content lines and stop at a dedent below the block."""
    out, content = lines[: first + 1], 1
    for line in lines[first + 1 :]:
        if line.strip():
            if span.min_indent is not None and indent_width(indent_of(line)) < span.min_indent:
                break
            content += 1
            if content > span.max_lines:
                break
        out.append(line)
    return out


def _following_lines(syn: CursorSyntax) -> list[str]:
    out, pos = [], syn.line_end
    while len(out) < SUFFIX_LINES and pos < len(syn.text):
        end = syn.text.find("\n", pos + 1)
        end = len(syn.text) if end < 0 else end
        line = syn.text[pos + 1 : end].strip()
        if line:
            out.append(line)
        pos = end
    return out


def _drop_suffix_overlap(lines: list[str], following: list[str]) -> list[str]:
    """Remove trailing lines that repeat the lines right after the cursor's line."""
    stripped = [x.strip() for x in lines]
    for m in range(min(len(following), len(lines)), 0, -1):
        if stripped[len(lines) - m :] == following[:m]:
            return lines[: len(lines) - m]
    return lines


def is_repetitive(text: str) -> bool:
    lines = [x for x in text.split("\n") if x.strip()]
    for a, b, c in zip(lines, lines[1:], lines[2:]):
        if a == b == c and any(ch.isalnum() for ch in a):
            return True
    return any(_REPEATED_CHUNK.search(x) for x in lines)


def _closer_variants(line: str, keep: str) -> list[str]:
    """The line with the kept closers re-appended, the longest overlap with them trimmed first
    (a repeated ";" parses too), the untrimmed line last."""
    line = line.rstrip() if keep else line
    out = [line[:-k] + keep for k in range(len(keep), 0, -1) if line.endswith(keep[:k])]
    return [*out, line + keep]


def trim_unmatched_closers(line: str, brackets: str, context: str = "") -> str:
    """Drop closing brackets at the end of `line` that nothing in context + line opened."""
    opens, closes = brackets[0::2], brackets[1::2]
    text = context + line
    while line.rstrip() and line.rstrip()[-1] in closes:
        ch = line.rstrip()[-1]
        o = opens[closes.index(ch)]
        if text.count(ch) <= text.count(o):
            break
        line = line.rstrip()[:-1]
        text = context + line
    return line


def _single_line(middle: str, lead: str, span: Span, syn: CursorSyntax, min_chars: int) -> list[str]:
    if span.kind == "line":
        middle = middle.lstrip("\n")  # the model may open with the cursor line's own end
    line = lead + middle.split("\n", 1)[0]
    body = line[len(lead) :].strip()
    if len(body) < min_chars or is_repetitive(body):
        return []
    if span.kind == "line" and body in (_following_lines(syn)[:1] + [syn.prev_line.strip()]):
        return []  # it only repeats the line below or above
    lines = [x[0] for x in _reindent([line], 0, span)] if span.kind == "line" else [line]
    context = syn.text[syn.line_start : span.start]
    variants = []
    for line in lines:
        variants += _closer_variants(line, span.keep)
        trimmed = trim_unmatched_closers(line, syn.lang.brackets, context)
        if trimmed != line and trimmed.strip():
            variants += _closer_variants(trimmed, span.keep)
    return list(dict.fromkeys(variants))


def _multi_line(middle: str, lead: str, span: Span, syn: CursorSyntax, min_chars: int) -> list[str]:
    if span.stop_at_close:
        middle = _cut_at_close(middle, syn.lang.brackets)
    if span.new_line and not middle.startswith("\n"):
        middle = "\n" + middle.lstrip()
    lines = (lead + middle).split("\n")
    first = next((i for i, x in enumerate(lines) if x.strip() and (i > 0 or not span.new_line)), None)
    if first is None:
        return []
    following, out = _following_lines(syn), []
    for shifted in _reindent(lines, first, span):
        kept = _drop_suffix_overlap(_cut_multiline(shifted, first, span), following)
        if span.keep and kept and kept[-1].strip() == span.keep.strip():
            kept.pop()  # the model wrote the closing line the suffix already has
        text = "\n".join(kept).rstrip()
        if len(text.strip()) >= min_chars and not is_repetitive(text):
            out.append(text + span.keep)
    return list(dict.fromkeys(out))


def postprocess(middle: str, span: Span, syn: CursorSyntax, min_chars: int = 1) -> list[str]:
    """Replacement texts for text[span.start:span.end], preferred first; [] drops the middle."""
    middle = middle.replace("\r\n", "\n").rstrip()
    if not middle.strip():
        return []
    lead = syn.text[span.start : syn.offset]  # what the replacement repeats of the cursor's line
    if span.kind in ("lines", "block"):
        return _multi_line(middle, lead, span, syn, min_chars)
    return _single_line(middle, lead, span, syn, min_chars)
