"""Every grammars/<lang>/<purpose>.scm compiles against its grammar and uses only allowed capture names."""

import pytest

from grammars import GRAMMARS_DIR
from infill import language_for
from infill.languages import languages, ts_language
from infill.queries import ALLOWED_CAPTURES, PURPOSES, query, query_source

LANGS = sorted(languages())
SCM_FILES = sorted(GRAMMARS_DIR.glob("*/*.scm"))


def test_table_covers_the_required_languages():
    assert {"python", "javascript", "typescript", "tsx", "go", "rust", "java", "c", "cpp"} <= set(LANGS)


def test_every_scm_file_belongs_to_a_language_and_a_purpose():
    folders = {s.queries for s in languages().values()}
    for path in SCM_FILES:
        assert path.parent.name in folders, path
        assert path.stem in PURPOSES, path


@pytest.mark.parametrize("lang", LANGS)
@pytest.mark.parametrize("purpose", PURPOSES)
def test_query_compiles_with_allowed_captures(lang, purpose):
    q = query(lang, purpose)
    names = {q.capture_name(i) for i in range(q.capture_count)}
    assert names, f"{lang}/{purpose}.scm captures nothing"
    assert {n for n in names if not n.startswith("_")} <= ALLOWED_CAPTURES


@pytest.mark.parametrize("lang", LANGS)
def test_grammar_loads(lang):
    assert ts_language(lang).abi_version >= 14


def test_inherits_pulls_in_the_parent_queries():
    js = query_source("javascript", "tags")
    assert js in query_source("typescript", "tags")
    assert js in query_source("tsx", "tags")  # tsx -> typescript -> javascript
    assert query_source("c", "textobjects") in query_source("cpp", "textobjects")


def test_inherits_cycle_is_reported(tmp_path, monkeypatch):
    import infill.queries as q

    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "a" / "tags.scm").write_text("; inherits: b\n")
    (tmp_path / "b" / "tags.scm").write_text("; inherits: a\n")
    monkeypatch.setattr(q, "query_path", lambda lang, purpose: tmp_path / lang / f"{purpose}.scm")
    with pytest.raises(ValueError, match="inheritance cycle"):
        q.query_source("a", "tags")


@pytest.mark.parametrize(
    "language_id, path, expected",
    [
        ("python", None, "python"),
        ("typescriptreact", None, "tsx"),
        ("javascriptreact", None, "javascript"),
        (None, "src/lib.rs", "rust"),
        (None, "a/b/Main.java", "java"),
        (None, "x.hpp", "cpp"),
        (None, "x.h", "c"),
        ("cobol", "x.cbl", None),
        (None, None, None),
    ],
)
def test_language_for(language_id, path, expected):
    assert language_for(language_id, path) == expected
