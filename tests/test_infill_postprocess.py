"""Post-processing and span planning on small cases: stops, overlap trimming, drops."""

import pytest

from infill import Document, InfillOptions
from infill.postprocess import is_repetitive, postprocess, trim_unmatched_closers
from infill.span import plan_span
from infill.syntax import syntax_context


def plan(source: str, lang: str, invoked: bool = False, **options):
    doc = Document(source.replace("|", ""), lang)
    syn = syntax_context(doc, source.index("|"))
    return syn, plan_span(syn, invoked, InfillOptions(**options))


@pytest.mark.parametrize(
    "source, lang, kind",
    [
        ("x = foo(|)\n", "python", "rest_of_line"),
        ("def f():\n    a = 1\n|\n    return a\n", "python", "line"),
        ("def f():|\n    return 1\n", "python", "lines"),
        ("def f():\n    |\n\nx = 1\n", "python", "block"),
        ("def f():|\n\nx = 1\n", "python", "block"),
        ("int f() {|}\n", "c", "block"),
        ("int f() {\n|\n}\n", "c", "block"),
        ("int f() {|\n    return 1;\n}\n", "c", "lines"),
        ("func f() {\n\tx := 1\n|\n}\n", "go", "line"),
    ],
)
def test_span_kinds(source, lang, kind):
    assert plan(source, lang)[1].kind == kind


@pytest.mark.parametrize(
    "source, lang",
    [
        ("x = 1  # note |\n", "python"),
        ("s = 'abc|'\n", "python"),
        ("total = cou|nt + 1\n", "python"),
        ("x = f(|a, b)\n", "python"),  # code after the cursor
        ("/* a | */\n", "c"),
    ],
)
def test_declines_unless_invoked(source, lang):
    assert plan(source, lang)[1] is None
    assert plan(source, lang, invoked=True)[1] is not None


def test_rest_of_line_replaces_trailing_closers():
    syn, span = plan("print(foo(|))\n", "python")
    assert (span.start, span.end, span.keep) == (10, 12, "))")
    assert postprocess("x))", span, syn)[0] == "x))"  # the overlap is trimmed first
    assert "x))))" in postprocess("x))", span, syn)


def test_multiline_stops_at_dedent_block_end_and_max_lines():
    syn, span = plan("def f(x):\n    |\n\ny = 2\n", "python", max_lines=2)
    assert postprocess("a = 1\n    b = 2\n    c = 3\n", span, syn) == ["    a = 1\n    b = 2"]
    assert postprocess("a = 1\nz = 0\n", span, syn) == ["    a = 1"]
    syn, span = plan("int f() {\n    |\n}\n", "c")
    assert postprocess("return 1;\n}\nint g() { return 2; }\n", span, syn) == ["    return 1;"]


def test_block_between_braces_on_one_line():
    syn, span = plan("int f() {|}\n", "c")
    assert postprocess("return 1;", span, syn)[0] == "\n    return 1;\n}"


def test_lines_duplicating_the_suffix_are_dropped():
    syn, span = plan("def f(x):|\n    y = x + 1\n    return y\n", "python")
    assert postprocess("\n    x = abs(x)\n    y = x + 1\n    return y", span, syn) == ["\n    x = abs(x)"]
    syn, span = plan("def f(x):\n    y = 1\n|\n    return y\n", "python")
    assert postprocess("    return y", span, syn) == []  # only repeats the next line


@pytest.mark.parametrize("middle", ["", "   \n\t", "\n\n"])
def test_empty_output_is_dropped(middle):
    syn, span = plan("x = |\n", "python")
    assert postprocess(middle, span, syn) == []


def test_repetition():
    assert is_repetitive("a = 1\na = 1\na = 1\n")
    assert is_repetitive("x = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0]".replace("0, ", "ab, "))
    assert not is_repetitive("}\n}\n}\n")
    assert not is_repetitive("for i in range(10):\n    total += i\nreturn total")


def test_trim_unmatched_closers():
    assert trim_unmatched_closers("x))", "()[]{}", "print(") == "x)"
    assert trim_unmatched_closers("f(x)]", "()[]{}", "") == "f(x)"
    assert trim_unmatched_closers("f(x)", "()[]{}", "") == "f(x)"
