"""Golden cases in tests/data/infill/<lang>/: a source file with a cursor marker per case, and
expected.toml holding the span kind, prompt checks, the fake model's middles and the final text."""

import re
from pathlib import Path

import pytest
import tomllib

from infill import Document, InfillOptions, complete, language_for

DATA = Path(__file__).parent / "data" / "infill"
MARKER = "<CURSOR>"
LANGS = ("python", "javascript", "typescript", "tsx", "go", "rust", "java", "c", "cpp")
SPAN_KINDS = ("rest_of_line", "line", "lines", "block")


def count_tokens(text: str) -> int:
    return len(re.findall(r"\w+|[^\w\s]", text))


def cases():
    out = []
    for lang in LANGS:
        if not (DATA / lang / "expected.toml").exists():
            continue
        expected = tomllib.loads((DATA / lang / "expected.toml").read_text())
        for path in sorted((DATA / lang).glob("*")):
            if path.stem in expected and path.suffix != ".toml":
                out.append(pytest.param(lang, path, expected[path.stem], id=f"{lang}/{path.name}"))
    return out


@pytest.mark.parametrize("lang", LANGS)
def test_every_language_has_every_span_kind_and_a_refusal(lang):
    expected = tomllib.loads((DATA / lang / "expected.toml").read_text())
    kinds = {case["kind"] for case in expected.values()}
    assert set(SPAN_KINDS) | {"none"} <= kinds
    stems = {p.stem for p in (DATA / lang).glob("*") if p.suffix != ".toml"}
    assert set(expected) == stems


@pytest.mark.parametrize("lang, path, case", cases())
def test_golden(lang, path, case):
    source = path.read_text()
    assert source.count(MARKER) == 1, f"{path}: exactly one {MARKER}"
    offset = source.index(MARKER)
    text = source.replace(MARKER, "")
    assert language_for(path=str(path)) == lang
    doc = Document(text, lang)
    fills = {int(k): v for k, v in case.get("fill", {}).items()}
    prompts = []

    def fill(prefix, suffix, canvas, max_canvas, single_line):
        prompts.append((prefix, suffix))
        assert canvas <= max_canvas
        return fills.get(canvas, ""), 0.5

    options = InfillOptions(context_tokens=case.get("context_tokens", 1536), candidates=max(1, len(fills)))
    result = complete(
        doc, offset, fill, count_tokens=count_tokens, invoked=case.get("invoked", False), options=options
    )
    if case["kind"] == "none":
        assert result is None and not prompts
        return
    assert prompts, "the model was never asked"
    prefix, suffix = prompts[0]
    assert prefix.endswith(text[text.rfind("\n", 0, offset) + 1 : offset])
    for s in case.get("prefix_has", []):
        assert s in prefix, f"prefix lacks {s!r}:\n{prefix}"
    for s in case.get("prefix_lacks", []):
        assert s not in prefix, f"prefix has {s!r}:\n{prefix}"
    for s in case.get("suffix_has", []):
        assert s in suffix, f"suffix lacks {s!r}:\n{suffix}"
    assert result is not None
    assert result.kind == case["kind"]
    assert result.text == case["text"]
    assert result.start <= offset <= result.end
    line_start, line_end = text.rfind("\n", 0, offset) + 1, (text + "\n").find("\n", offset)
    assert line_start <= result.start and result.end <= line_end
