"""The client's side of incremental sync, written apart from lsp_server/protocol/convert.py: a document model
that applies LSP edits, and hypothesis strategies that draw edits against it.

Positions count UTF-16 code units by default (or UTF-8 bytes, or code points); lines end at "\\r\\n", "\\r"
or "\\n" and nowhere else (not at U+2028 or U+0085, which str.splitlines would split at). A character past
its line's end means the line's end and a line past the last means the document's end (the LSP's rules).
"""

from __future__ import annotations

from hypothesis import strategies as st

# pieces that stress the conversions: line breaks of every kind, multi-byte and astral characters,
# characters that other line splitters treat as breaks, and tabs
PIECES = ["a", "b", "xy", " ", "\t", "\n", "\r", "\r\n", "é", "中", "😀", "𝔘", "\u2028", "\x85", "=", "("]
UNITS = {
    "utf-16": lambda ch: 2 if ord(ch) > 0xFFFF else 1,
    "utf-8": lambda ch: len(ch.encode()),
    "utf-32": lambda ch: 1,
}


def lines(text: str) -> list[tuple[int, int]]:
    """(start, end without its break) of every line, by scanning characters."""
    out, start, i = [], 0, 0
    while i < len(text):
        if text[i] in "\r\n":
            end = i
            i += 2 if text[i] == "\r" and text[i + 1 : i + 2] == "\n" else 1
            out.append((start, end))
            start = i
        else:
            i += 1
    out.append((start, len(text)))
    return out


def offset(text: str, line: int, character: int, encoding: str = "utf-16") -> int:
    spans = lines(text)
    if line >= len(spans):
        return len(text)
    start, end = spans[line]
    used = 0
    for k in range(start, end):
        used += UNITS[encoding](text[k])
        if used > character:
            return k
    return end


def apply(text: str, change: dict, encoding: str = "utf-16") -> str:
    """The text after one contentChanges entry (a range edit or the whole text)."""
    if "range" not in change:
        return change["text"]
    r = change["range"]
    a = offset(text, r["start"]["line"], r["start"]["character"], encoding)
    b = offset(text, r["end"]["line"], r["end"]["character"], encoding)
    return text[:a] + change["text"] + text[b:]


texts = st.lists(st.sampled_from(PIECES), max_size=40).map("".join)


@st.composite
def positions(draw, text: str, encoding: str = "utf-16") -> dict:
    """A position on a code-point boundary, now and then past its line's end or past the last line."""
    spans = lines(text)
    line = draw(st.integers(0, len(spans)))  # len(spans): past the last line
    if line == len(spans):
        return {"line": line, "character": draw(st.integers(0, 3))}
    start, end = spans[line]
    k = draw(st.integers(start, end))
    character = sum(UNITS[encoding](ch) for ch in text[start:k])
    if k == end and draw(st.booleans()):
        character += draw(st.integers(1, 5))  # past the line's end
    return {"line": line, "character": character}


@st.composite
def changes(draw, text: str, encoding: str = "utf-16") -> dict:
    """A range edit (start not after end) or, one time in twenty, the whole text."""
    new = draw(texts)
    if draw(st.integers(0, 19)) == 0:
        return {"text": new}
    a, b = draw(positions(text, encoding)), draw(positions(text, encoding))
    if offset(text, b["line"], b["character"], encoding) < offset(text, a["line"], a["character"], encoding):
        a, b = b, a
    return {"range": {"start": a, "end": b}, "text": new}
