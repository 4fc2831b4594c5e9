"""LSP positions <-> code-point offsets in the negotiated encoding, and suggestions -> LSP items.

Lines end at "\\r\\n", "\\r" or "\\n" (the LSP's line breaks). A character past the end of its line means the
line's end and a line past the last means the document's end, as the specification asks. Position encodings:
"utf-16" (the default), "utf-8", "utf-32".
"""

from __future__ import annotations

import bisect
import re

from lsprotocol import types

from ..outcomes import Suggestion

LINE_BREAK = re.compile(r"\r\n|\r|\n")
LONE_SURROGATE = re.compile(r"[\ud800-\udfff]")
LABEL_CHARS = 60


def line_starts(text: str) -> list[int]:
    return [0, *(m.end() for m in LINE_BREAK.finditer(text))]


def clean(text: str) -> str:
    """Text with lone surrogates (valid JSON, invalid Unicode) replaced, so it can be encoded and parsed."""
    return text if text.isascii() else LONE_SURROGATE.sub("\ufffd", text)


def _unit_len(ch: str, encoding: str) -> int:
    if encoding == types.PositionEncodingKind.Utf8:
        return len(ch.encode())
    if encoding == types.PositionEncodingKind.Utf16:
        return 2 if ord(ch) > 0xFFFF else 1
    return 1


def units(s: str, encoding: str) -> int:
    """Length of s in the encoding's code units."""
    if encoding == types.PositionEncodingKind.Utf32 or s.isascii():
        return len(s)
    if encoding == types.PositionEncodingKind.Utf8:
        return len(s.encode())
    return len(s) + sum(ord(ch) > 0xFFFF for ch in s)


def chars_within(line: str, n: int, encoding: str) -> int:
    """Code points of line that fit in n code units (a character split by n counts as before it)."""
    if encoding == types.PositionEncodingKind.Utf32 or line.isascii():
        return min(n, len(line))
    used = 0
    for i, ch in enumerate(line):
        used += _unit_len(ch, encoding)
        if used > n:
            return i
    return len(line)


def offset_at(text: str, starts: list[int], position: types.Position, encoding: str) -> int:
    if position.line >= len(starts):
        return len(text)
    start = starts[position.line]
    end = starts[position.line + 1] if position.line + 1 < len(starts) else len(text)
    line = text[start:end].rstrip("\r\n")
    return start + chars_within(line, position.character, encoding)


def position_at(text: str, starts: list[int], offset: int, encoding: str) -> types.Position:
    line = bisect.bisect_right(starts, offset) - 1
    return types.Position(line, units(text[starts[line] : offset], encoding))


def word_before(text: str, offset: int) -> str:
    """The identifier characters just before offset (what completion clients filter on)."""
    start = offset
    while start > 0 and (text[start - 1].isalnum() or text[start - 1] == "_"):
        start -= 1
    return text[start:offset]


def edit_range(s: Suggestion, at: types.Position, encoding: str, lead: str | None = None) -> types.Range:
    lead = s.lead if lead is None else lead
    return types.Range(
        types.Position(at.line, at.character - units(lead, encoding)),
        types.Position(at.line, at.character + units(s.trail, encoding)),
    )


def inline_item(s: Suggestion, at: types.Position, encoding: str, explain: bool = False
                ) -> types.InlineCompletionItem:
    """With `explain`, the item carries the suggestion's probability, source and kind as the arguments of a
    command "unmask.explain" (inline items have no data field; clients run it on acceptance)."""
    command = types.Command("unmask", "unmask.explain", arguments=[s.explained()]) if explain else None
    return types.InlineCompletionItem(insert_text=s.text, range=edit_range(s, at, encoding), command=command)


def completion_item(s: Suggestion, at: types.Position, encoding: str, word: str) -> types.CompletionItem:
    """One item whose textEdit starts at the typed word (so clients' filtering keeps it) or at s's lead."""
    lead = s.lead if len(s.lead) >= len(word) else word
    new_text = lead[: len(lead) - len(s.lead)] + s.text
    rest = s.text[len(s.lead) :] if s.text.startswith(s.lead) else s.text
    first, *more = rest.split("\n", 1)
    label = (first.strip() or rest.strip() or s.text)[:LABEL_CHARS] + ("…" if more else "")
    return types.CompletionItem(
        label=label,
        kind=types.CompletionItemKind.Text,
        detail=f"unmask {s.kind} ({s.confidence:.2f})",
        documentation=s.text if more else None,
        filter_text=lead + rest,
        text_edit=types.TextEdit(edit_range(s, at, encoding, lead), new_text),
        insert_text_format=types.InsertTextFormat.PlainText,
        insert_text_mode=types.InsertTextMode.AsIs,
        data=s.explained(),
    )
