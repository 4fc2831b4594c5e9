import pytest
from lsprotocol import types

from lsp_server.outcomes import Suggestion
from lsp_server.protocol import convert

U8, U16, U32 = (
    types.PositionEncodingKind.Utf8,
    types.PositionEncodingKind.Utf16,
    types.PositionEncodingKind.Utf32,
)
TEXT = "ab\r\nx😀y = 'é'\rz\n"  # CRLF, lone CR and LF breaks; a character outside the BMP


def offset(text, line, character, encoding):
    return convert.offset_at(text, convert.line_starts(text), types.Position(line, character), encoding)


def test_line_starts_follow_lsp_line_breaks():
    assert convert.line_starts(TEXT) == [0, 4, 14, 16]


@pytest.mark.parametrize(
    "encoding, character, expected",
    [
        (U16, 1, 5),
        (U16, 3, 6),
        (U16, 4, 7),
        (U8, 5, 6),
        (U8, 6, 7),
        (U32, 2, 6),
        (U32, 3, 7),
        (U16, 2, 5),  # inside the surrogate pair: before the character
        (U8, 3, 5),  # inside its UTF-8 bytes
    ],
)
def test_offsets_count_the_negotiated_code_units(encoding, character, expected):
    assert offset(TEXT, 1, character, encoding) == expected


def test_positions_round_trip_in_every_encoding():
    for encoding in (U8, U16, U32):
        starts = convert.line_starts(TEXT)
        for off in range(len(TEXT) + 1):
            if TEXT[off - 1 : off + 1] == "\r\n":
                continue  # between CR and LF: no position addresses it
            pos = convert.position_at(TEXT, starts, off, encoding)
            assert convert.offset_at(TEXT, starts, pos, encoding) == off


def test_out_of_range_positions_clamp():
    assert offset(TEXT, 0, 99, U16) == 2  # past the line's end: before its CRLF
    assert offset(TEXT, 2, 99, U16) == 15
    assert offset(TEXT, 50, 0, U16) == len(TEXT)
    assert offset("", 0, 5, U16) == 0


def test_units():
    assert [convert.units("x😀é", e) for e in (U8, U16, U32)] == [7, 4, 3]


def test_clean_replaces_lone_surrogates_only():
    assert convert.clean("a\ud800b😀") == "a\ufffdb😀"


def test_word_before():
    assert convert.word_before("x = foo_bar1", 12) == "foo_bar1"
    assert convert.word_before("f(", 2) == ""


def test_inline_item_range_spans_lead_and_trail_in_utf16():
    s = Suggestion(lead="  ", trail=")", text="  😀x)", kind="rest_of_line", confidence=0.5)
    item = convert.inline_item(s, types.Position(3, 10), U16)
    assert item.insert_text == "  😀x)"
    assert item.range == types.Range(types.Position(3, 8), types.Position(3, 11))


def test_completion_item_starts_at_the_typed_word():
    s = Suggestion(lead="", trail="", text="nt(x)\n    return", kind="lines", confidence=0.9)
    item = convert.completion_item(s, types.Position(0, 7), U16, word="pri")
    assert item.text_edit.new_text == "print(x)\n    return"
    assert item.text_edit.range == types.Range(types.Position(0, 4), types.Position(0, 7))
    assert item.filter_text.startswith("print(x)")
    assert item.label == "nt(x)…"
    assert item.insert_text_mode == types.InsertTextMode.AsIs
    assert item.documentation == s.text
