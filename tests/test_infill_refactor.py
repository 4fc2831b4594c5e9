"""infill.edits and infill.refactor: composed edits, hole filling, empty bodies and selection rewrites,
with fake completers and fillers (the model's side is tests/test_lsp_actions.py)."""

import random

import pytest

import infill
from infill.edits import Edit, apply, compose
from infill.refactor import (
    HOLE,
    body_at,
    complete_body,
    fill_holes,
    rewrite,
    rewrite_canvas,
    selection_core,
)

# ---- edits


def test_compose_keeps_edits_against_the_original_text():
    rng = random.Random(0)
    for _ in range(300):
        original = "".join(rng.choice("ab\n") for _ in range(rng.randrange(0, 30)))
        current, edits = original, []
        for _ in range(rng.randrange(1, 6)):
            start = rng.randrange(0, len(current) + 1)
            end = rng.randrange(start, len(current) + 1)
            text = "".join(rng.choice("XY\n") for _ in range(rng.randrange(0, 4)))
            edits = compose(edits, current, start, end, text)
            current = current[:start] + text + current[end:]
            assert apply(original, edits) == current
            assert all(a.end < b.start for a, b in zip(edits, edits[1:])), edits  # sorted, never meeting


def test_compose_merges_an_edit_touching_an_earlier_one():
    edits = compose([], "abcdef", 2, 4, "XY")  # abXYef
    assert edits == [Edit(2, 4, "XY")]
    assert compose(edits, "abXYef", 4, 5, "Z") == [Edit(2, 5, "XYZ")]  # touches its end: one edit
    assert compose(edits, "abXYef", 0, 1, "") == [Edit(0, 1, ""), Edit(2, 4, "XY")]


# ---- fill holes

MARKED = f"total = {HOLE}\n\ndef f(a):\n    {HOLE}\n\nprint(f({HOLE}))\n"


def fake_complete(seen: list[str], fills: dict[int, str]):
    """A completer that inserts fills[n] at the n-th call, or nothing when n is missing."""

    def complete(doc: infill.Document, offset: int) -> infill.Completion | None:
        seen.append(doc.text)
        text = fills.get(len(seen) - 1)
        return None if text is None else infill.Completion(offset, offset, text, "line", 1.0)

    return complete


def test_fill_holes_fills_each_hole_where_its_marker_was_seeing_the_earlier_ones():
    seen = []
    filled = fill_holes(MARKED, "python", fake_complete(seen, {0: "1 + 2", 1: "return a * 2", 2: "total"}))
    expected = "total = 1 + 2\n\ndef f(a):\n    return a * 2\n\nprint(f(total))\n"
    assert filled.text == expected and apply(MARKED, filled.edits) == expected
    assert [(MARKED[e.start : e.end], e.text) for e in filled.edits] == [
        (HOLE, "1 + 2"), (HOLE, "return a * 2"), (HOLE, "total")
    ]
    # the second hole saw the first filled, the third both; no call saw a marker
    assert seen[1].startswith("total = 1 + 2\n") and "return a * 2" in seen[2]
    assert not any(HOLE in text for text in seen)
    assert filled.empty == () and filled.note == ""


def test_a_hole_left_empty_loses_its_marker_and_later_offsets_still_hold():
    filled = fill_holes(MARKED, "python", fake_complete([], {0: "some_long_value", 2: "x"}))
    assert filled.text == "total = some_long_value\n\ndef f(a):\n    \n\nprint(f(x))\n"
    assert apply(MARKED, filled.edits) == filled.text
    assert filled.empty == (2,) and filled.note == "hole 2 of 3 left empty"


def test_a_completion_replacing_trailing_closers_moves_the_next_hole_with_it():
    marked = f"print(f({HOLE}), {HOLE})\n"

    def complete(doc, offset):  # the first replaces the rest of its line, the second hole's place included
        if offset == len("print(f("):
            return infill.Completion(offset, doc.text.index("\n"), "1), 2)", "rest_of_line", 1.0)
        return infill.Completion(offset, offset, "3", "rest_of_line", 1.0)

    filled = fill_holes(marked, "python", complete)
    assert filled.text == "print(f(1), 2)3\n"  # the second hole now sits at the end of what replaced it
    assert apply(marked, filled.edits) == filled.text


def test_adjacent_markers_and_a_custom_marker():
    filled = fill_holes("a = ????\n", "python", fake_complete([], {0: "1", 1: "2"}), marker="??")
    assert filled.text == "a = 12\n" and filled.edits == (Edit(4, 8, "12"),)


# ---- empty bodies

BODIES = [  # language, text, cursor marked by "|", the text once the body is opened ("|": the completion)
    ("python", "def f(a):|\n\nx = 1\n", "def f(a):\n    |\n\nx = 1\n"),
    ("python", "def f(a):\n|\nx = 1\n", "def f(a):\n    |\n\nx = 1\n"),  # on the blank line under it
    ("python", "class A:\n    def m(self): ..|.\n", "class A:\n    def m(self):\n        |\n"),
    ("python", "def |f():\n    pass\n", "def f():\n    |\n"),
    ("python", "if x:|\n\ty = 1\n    \n", None),  # not empty
    ("javascript", "function f() {|}\n", "function f() {\n  |\n}\n"),
    ("c", "int g(void)|\n{\n}\n", "int g(void)\n{\n    |\n}\n"),  # the brace on the line after its header
    ("go", "package m\n\nfunc f() {\n|\n}\n", "package m\n\nfunc f() {\n\t|\n}\n"),
    ("rust", "fn f() {\n    let x = 1;|\n}\n", None),
    ("java", "class A {\n    void m() {}\n|\n    int n;\n}\n", None),  # not on the empty body's lines
]


@pytest.mark.parametrize("language, marked, opened", BODIES)
def test_body_at_finds_only_empty_bodies_on_the_cursors_lines(language, marked, opened):
    at = marked.index("|")
    text = marked.replace("|", "")
    body = body_at(infill.Document(text, language), at, at)
    if opened is None:
        assert body is None
        return
    assert body is not None
    made = text[: body.start] + body.opened + text[body.end :]
    assert made[: body.cursor] + "|" + made[body.cursor :] == opened


def test_complete_body_fills_the_opened_line_as_one_edit():
    text = "function f() {}\nf();\n"

    def complete(doc, offset):  # a block completion replaces the blank line, indentation included
        line = doc.text.rfind("\n", 0, offset) + 1
        return infill.Completion(line, offset, "  return 1;", "block", 1.0)

    done = complete_body(text, "javascript", 3, 3, complete)
    assert apply(text, done.edits) == "function f() {\n  return 1;\n}\nf();\n"
    assert len(done.edits) == 1 and done.edits[0].start == len("function f() {")
    nothing = complete_body(text, "javascript", 3, 3, lambda doc, offset: None)
    assert nothing.edits == () and "empty" in nothing.note
    assert complete_body(text, "javascript", 17, 17, complete).note == "no empty body here"


# ---- rewrite a selection


def fake_fill(calls: list, answer: str):
    def fill(prefix, suffix, canvas, max_canvas, single_line):
        calls.append((prefix, suffix, canvas, max_canvas, single_line))
        return answer, 0.5

    return fill


def rewrite_with(text, start, end, answer, max_tokens=64):
    calls = []
    done = rewrite(text, "python", start, end, fake_fill(calls, answer), count_tokens=len,
                   context_tokens=lambda canvas: 200, max_tokens=max_tokens)
    return done, calls


def test_rewrite_masks_the_selection_less_its_whitespace():
    text = "def add(a, b):\n    return a + b\n\nprint(add(1, 2))\n"
    start, end = text.index("    return"), text.index("\n\nprint") + 1  # the whole line, newline included
    done, calls = rewrite_with(text, start, end, " a - b\nignored")
    (prefix, suffix, canvas, max_canvas, single_line), = calls
    assert prefix.endswith("def add(a, b):\n    ") and suffix.startswith("\n\nprint(add(1, 2))")
    assert canvas == rewrite_canvas(len("return a + b")) == 19 and max_canvas == 38 and single_line
    assert done.edits == (Edit(text.index("return"), text.index("\n\nprint"), "a - b"),)


def test_rewrite_declines_what_it_cannot_do():
    text = "x = compute(1)\n"
    assert rewrite_with(text, 0, 0, "y")[0].note == "nothing but whitespace is selected"
    assert selection_core(text, 1, 3) == (2, 3)  # " =" without its space
    long, calls = rewrite_with(text, 0, len(text), "y", max_tokens=10)
    assert long.edits == () and "too long" in long.note and calls == []
    assert rewrite_with(text, 4, 14, "compute(1)")[0].note == "the model wrote the selection back unchanged"
    first, second = [], []
    done = rewrite(text, "python", 4, 14, fake_fill(first, "compute(1)"), count_tokens=len,
                   context_tokens=lambda canvas: 200, max_tokens=64, again=fake_fill(second, "compute(2)"))
    assert done.edits == (Edit(4, 14, "compute(2)"),)  # asked again after the echo, with the same prompt
    assert len(first) == len(second) == 1 and first == second
    assert rewrite_with(text, 4, 14, "   ")[0].edits == ()


def test_rewrite_keeps_crlf_line_breaks():
    text = "if x:\r\n    a = 1\r\n    b = 2\r\nend()\r\n"
    start, end = text.index("a = 1"), text.index("end") - 2
    done, calls = rewrite_with(text, start, end, "a = 2\n    b = 3")
    assert calls[0][4] is False  # two lines selected: the middle may have several
    assert done.edits == (Edit(start, end, "a = 2\r\n    b = 3"),)
