"""complete(): ranking by syntax then confidence across canvas sizes, explicit invocation, budgets."""

import re

import pytest

from infill import Completion, Document, InfillOptions, complete
from infill.context import build_context
from infill.pipeline import canvas_sizes
from infill.span import plan_span
from infill.syntax import syntax_context


def count_tokens(text: str) -> int:
    return len(re.findall(r"\w+|[^\w\s]", text))


def doc_at(source: str, lang: str) -> tuple[Document, int]:
    return Document(source.replace("|", ""), lang), source.index("|")


def fixed(by_canvas: dict[int, tuple[str, float]]):
    calls = []

    def fill(prefix, suffix, canvas, max_canvas, single_line):
        calls.append(canvas)
        return by_canvas.get(canvas, ("", 0.0))

    return fill, calls


def test_syntax_beats_confidence():
    doc, off = doc_at("def f(x):\n    return g(x, |)\n", "python")
    fill, calls = fixed({16: ("1 +", 0.9), 32: ("2", 0.4)})
    got = complete(doc, off, fill, count_tokens=count_tokens, options=InfillOptions(candidates=2))
    assert calls == [16, 32]
    assert got == Completion(off, off + 1, "2)", "rest_of_line", 0.4)


def test_confidence_breaks_syntax_ties():
    doc, off = doc_at("def f(x):\n    return g(x, |)\n", "python")
    fill, _ = fixed({16: ("1", 0.3), 32: ("2", 0.8), 8: ("3", 0.5)})
    got = complete(doc, off, fill, count_tokens=count_tokens, options=InfillOptions(candidates=3))
    assert got.text == "2)" and got.confidence == 0.8


def test_a_repair_ranks_above_a_neutral_candidate():
    doc, off = doc_at("int f(int x) {\n    return g(x|\n}\n", "c")
    fill, _ = fixed({16: ("", 0.9), 32: (", 1);", 0.2)})
    got = complete(
        doc, off, fill, count_tokens=count_tokens, invoked=True, options=InfillOptions(candidates=2)
    )
    assert got.text == ", 1);"


def test_nothing_usable_gives_none():
    doc, off = doc_at("x = |\n", "python")
    fill, calls = fixed({16: ("   \n", 0.9)})
    assert complete(doc, off, fill, count_tokens=count_tokens) is None
    assert calls == [16]


def test_invoked_completes_inside_comments_and_identifiers():
    doc, off = doc_at("# sum of |\nx = 1\n", "python")
    fill, _ = fixed({16: ("the values", 0.5)})
    assert complete(doc, off, fill, count_tokens=count_tokens) is None
    assert complete(doc, off, fill, count_tokens=count_tokens, invoked=True).text == "the values"


def test_plain_text_is_not_completed():
    fill, calls = fixed({})
    assert complete(Document("hello ", None), 6, fill, count_tokens=count_tokens) is None and not calls


def test_fixed_canvas_budget_is_honoured():
    doc, off = doc_at("def f(x):\n|\n", "python")
    fill, calls = fixed({40: ("    return x", 0.5)})
    got = complete(doc, off, fill, count_tokens=count_tokens, options=InfillOptions(canvas=40, max_tokens=40))
    assert calls == [40] and got.text == "    return x" and got.kind == "block"


@pytest.mark.parametrize(
    "canvas, hard, n, expected", [(16, 32, 1, [16]), (16, 32, 3, [16, 32, 8]), (40, 40, 3, [40, 20, 10])]
)
def test_canvas_sizes(canvas, hard, n, expected):
    doc, off = doc_at("x = |\n", "python")
    span = plan_span(syntax_context(doc, off), options=InfillOptions(canvas=canvas, max_tokens=hard))
    assert canvas_sizes(span, n) == expected


def test_prompt_fits_budget_and_keeps_the_cursor_lines():
    body = "".join(f"def f{i}(a, b):\n    return a * {i} + b\n\n" for i in range(300))
    doc, off = doc_at(body + "def g(x):\n    y = f7(x, 1)\n    |\n" + body, "python")
    prompt = build_context(doc, off, count_tokens, 200)
    assert count_tokens(prompt.prefix) + count_tokens(prompt.suffix) <= 200
    assert prompt.prefix.endswith("def g(x):\n    y = f7(x, 1)\n    ")
    assert "# def f7(a, b):" in prompt.prefix  # the signature of a definition used at the cursor
    assert prompt.suffix.startswith("\n")


def test_signatures_come_from_other_documents():
    other = Document(
        "export function distance(a, b) {\n  return Math.hypot(a.x - b.x, a.y - b.y);\n}\n", "javascript"
    )
    doc, off = doc_at("const d = distance(p, q);\n|\n", "javascript")
    prompt = build_context(doc, off, count_tokens, 300, others=[other])
    assert prompt.prefix.startswith("// function distance(a, b)\n")


def test_options_are_validated():
    with pytest.raises(ValueError, match="InfillOptions.candidates"):
        InfillOptions(candidates=0)


def test_unmatched_closers_are_repaired():
    doc, off = doc_at("def f(ops):\n    total = sum(ops)\n|\n    return total\n", "python")
    fill, _ = fixed({24: ("    print(total))", 0.5)})
    got = complete(doc, off, fill, count_tokens=count_tokens)
    assert (got.kind, got.text) == ("line", "    print(total)")


def test_infill_imports_neither_torch_nor_lsprotocol_nor_engine():
    import subprocess
    import sys

    code = "import sys, infill; print(sorted({'torch', 'lsprotocol', 'engine'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_indentation_is_fitted_and_levels_are_tried():
    # the model lost the indentation of an `elif`: nearby block levels are tried, the one that parses wins
    src = "def f(c):\n    if c == 1:\n        x = 1\n|\n        x = 2\n    return x\n"
    doc, off = doc_at(src, "python")
    fill, _ = fixed({24: ("elif c == 2:", 0.5)})
    got = complete(doc, off, fill, count_tokens=count_tokens)
    assert got.text == "    elif c == 2:"


def test_the_syntax_check_sees_an_error_after_a_long_docstring():
    from infill.rank import SyntaxCheck

    # a region cut at a line 2,500 characters up started inside the docstring, read its examples as code,
    # and the colon's error vanished into theirs
    source = (
        'class Results:\n    """Examples:\n\n'
        + "        >>> parse('[1, 2') -> ([1, 2\n" * 150
        + '    """\n\n'
        "    def __init__(self, toklist):\n"
        "        if toklist is None:\n"
        "            self._toklist = []\n"
        "        elif isinstance(toklist, (list, tuple)):\n"
        "            self._toklist = (\n"
        "                [toklist[:]]\n"
        "                if isinstance(toklist, Resu|\n"
        "                else list(toklist)\n"
        "            )\n"
        "        else:\n"
        "            self._toklist = [toklist]\n"
    )
    doc, off = doc_at(source, "python")
    check = SyntaxCheck(doc, off, off)
    assert check.errors_added("lts.List)") < 0  # closes the call: repairs the line
    assert check.errors_added("lts):") > 0  # a colon inside the conditional expression: a new error
