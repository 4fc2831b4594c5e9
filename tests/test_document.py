"""Document: incremental re-parsing gives the same tree as a fresh parse, offsets are code points,
and the definition index stays equal to a freshly built one across edits."""

import random

import pytest

from infill import Document
from infill.definitions import DefinitionIndex

PY = '''import os

class Área:
    """Größe"""

    def width(self, x):
        return x * 2

def height(y):
    return y + 1
'''


def fresh_sexp(doc: Document) -> str:
    return str(Document(doc.text, doc.language).tree.root_node)


def test_edit_matches_fresh_parse_on_random_edits():
    rng = random.Random(0)
    doc = Document(PY, "python")
    for _ in range(60):
        start = rng.randrange(len(doc.text) + 1)
        end = min(len(doc.text), start + rng.choice([0, 0, 1, 3]))
        doc.apply_edit(start, end, rng.choice(["", "x", "é", "\n", "  ", "(", "ü\nz"]))
        assert str(doc.tree.root_node) == fresh_sexp(doc)
        assert doc.data == doc.text.encode()


def test_offsets_are_code_points():
    doc = Document("s = 'é'\nt = 1\n", "python")
    doc.apply_edit(doc.text.index("1"), doc.text.index("1") + 1, "22")
    assert doc.text == "s = 'é'\nt = 22\n"
    node = doc.tree.root_node.descendant_for_byte_range(doc.byte_offset(12), doc.byte_offset(12))
    assert node.text == b"22"
    assert doc.char_offset(doc.byte_offset(12)) == 12


def test_edit_outside_document_is_rejected():
    doc = Document("x = 1\n", "python")
    with pytest.raises(ValueError, match="outside document"):
        doc.apply_edit(3, 99, "")


def test_plain_text_document_has_no_tree():
    doc = Document("hello", None)
    doc.apply_edit(5, 5, " world")
    assert doc.text == "hello world" and doc.tree is None


def _index(doc: Document) -> list[tuple[str, str, bytes]]:
    by_name = doc.definitions.lookup(doc.tree, doc.data)
    return sorted((d.name, d.kind, doc.data[d.start : d.end]) for ds in by_name.values() for d in ds)


JS = """class Área {
  width(x) { return x * 2; }
}
// "comment"
function height(y) {
  return `${y}`;
}
const f = (a) => a + 1;
"""


@pytest.mark.parametrize(
    "lang, text, inserts",
    [
        ("python", PY, ["", "q", "\ndef z():\n    pass\n", "é", '"', "    "]),
        ("javascript", JS, ["", "q", "\nfunction z() {}\n", "é", "`", "{", "}", "/*"]),
    ],
)
def test_definition_index_follows_edits(lang, text, inserts):
    rng = random.Random(1)
    doc = Document(text, lang)
    _index(doc)  # built in full, then maintained
    for i in range(90):
        start = rng.randrange(len(doc.text) + 1)
        doc.apply_edit(start, min(len(doc.text), start + rng.choice([0, 1, 2])), rng.choice(inserts))
        if i % 3:
            continue  # edits queue up between lookups
        fresh = Document(doc.text, lang)
        fresh.definitions = DefinitionIndex(lang)
        assert _index(doc) == _index(fresh)
