"""Document: incremental re-parsing of its chunks gives the trees of fresh parses, offsets are code
points, and the definition index stays equal to a freshly built one across edits."""

import random
import re

import pytest
import tree_sitter

from infill import Document
from infill.definitions import DefinitionIndex
from infill.languages import ts_language
from infill.syntax import first_child_for_byte

PY = '''import os

class Área:
    """Größe"""

    def width(self, x):
        return x * 2

def height(y):
    return y + 1
'''

GO_BLOCK = """
// Shape_{i} is documented.
type Shape_{i} struct {
	width_{i}, height_{i} int
	name_{i}            string
}

func area_{i}(a_{i}, b_{i} int) int {
	total_{i} := a_{i} * b_{i}
	if total_{i} > 10 {
		return total_{i}
	}
	return total_{i} + 1
}

func (s *Shape_{i}) label_{i}(p_{i} string) string {
	return fmt.Sprintf("%s:%d", strings.ToUpper(p_{i}), s.width_{i})
}

var count_{i} = area_{i}(2, 3)
"""

PY_BLOCK = '''

@decorator_{i}
def area_{i}(a_{i}, b_{i}=2, *args_{i}):
    """Doc {i}."""
    total_{i} = a_{i} * b_{i}
    if total_{i} > 10:
        return total_{i}
    # comment {i}
    return [x_{i} for x_{i} in args_{i}]


class Shape_{i}(object):
    size_{i} = 3

    def label_{i}(self, p_{i}):
        return f"{p_{i}}:{self.size_{i}}"


count_{i} = area_{i}(2, 3)
'''

C_BLOCK = """
struct shape_{i} {
    int width_{i};
    int height_{i};
};

/* area {i} */
static int area_{i}(int a_{i}, int b_{i})
{
    int total_{i} = a_{i} * b_{i};
    if (total_{i} > 10) {
        return total_{i};
    }
    return total_{i} + 1;
}

int count_{i} = 3;
"""

HEADS = {
    "go": 'package demo\n\nimport (\n\t"fmt"\n\t"strings"\n)\n',
    "python": "import os\nfrom typing import List\n",
    "c": "#include <stdio.h>\n",
}
BLOCKS = {"go": GO_BLOCK, "python": PY_BLOCK, "c": C_BLOCK}
SMALL = 400  # chunk target in bytes: the texts below (200-250 lines) get 6 to 10 chunks
_IDENT = re.compile(r"[A-Za-z]+(?:_[a-z]+)*_\d+")  # never a keyword, whatever is inserted inside


def source(lang: str, blocks: int = 12) -> str:
    return HEADS[lang] + "".join(BLOCKS[lang].replace("{i}", str(i)) for i in range(blocks))


def shape(nodes) -> list[tuple]:
    return [(n.type, n.start_byte, n.end_byte, n.start_point, n.end_point, str(n)) for n in nodes]


def full_parse(doc: Document) -> tree_sitter.Tree:
    return tree_sitter.Parser(ts_language(doc.language)).parse(doc.data)


def chunk_nodes(doc: Document) -> list[tree_sitter.Node]:
    return [n for tree in doc.trees for n in tree.root_node.children]


def point(data: bytes, byte: int) -> tuple[int, int]:
    return data.count(b"\n", 0, byte), byte - (data.rfind(b"\n", 0, byte) + 1)


def fresh_chunk(doc: Document, lo: int, hi: int) -> tree_sitter.Tree:
    parser = tree_sitter.Parser(ts_language(doc.language))
    parser.included_ranges = [tree_sitter.Range(point(doc.data, lo), point(doc.data, hi), lo, hi)]
    return parser.parse(doc.data)


def assert_chunks_are_fresh_parses(doc: Document) -> None:
    """The chunks tile the document, start lines, and each tree equals a fresh parse of its range."""
    spans = doc.spans
    assert spans[0][0] == 0 and spans[-1][1] == len(doc.data)
    assert all(a[1] == b[0] for a, b in zip(spans, spans[1:]))
    assert all(doc.data[s - 1 : s] == b"\n" for s, _ in spans[1:])
    for (lo, hi), tree in zip(spans, doc.trees, strict=True):
        fresh = fresh_chunk(doc, lo, hi).root_node
        assert str(tree.root_node) == str(fresh)
        assert shape(tree.root_node.children) == shape(fresh.children)


def assert_matches_full_parse(doc: Document) -> None:
    assert doc.data == doc.text.encode()
    assert shape(chunk_nodes(doc)) == shape(full_parse(doc).root_node.children)


def error_free_edit(rng: random.Random, text: str) -> tuple[int, int, str]:
    """An edit inside an identifier or in whitespace, which keeps the code free of errors."""
    kind = rng.choice(["insert", "delete", "space", "blank", "unblank"])
    if kind in ("insert", "delete"):
        m = rng.choice(list(_IDENT.finditer(text)))
        at = rng.randrange(m.start() + 1, m.end() - 1)  # keeps its first letter and last digit
        return (at, at, rng.choice("xq_7é")) if kind == "insert" else (at, at + 1, "")
    if kind == "space":
        at = rng.choice([m.end() for m in re.finditer(r"(?m)^[ \t]*\S[^\n]*? ", text)])
        return at, at, rng.choice([" ", "  "])
    starts = [m.start() for m in re.finditer(r"(?m)^", text)]
    if kind == "blank":
        at = rng.choice(starts)
        return at, at, "\n"
    at = rng.choice([s for s in starts if text[s : s + 1] == "\n"])
    return at, at + 1, ""


@pytest.mark.parametrize("lang", ["go", "python", "c"])
def test_chunks_match_full_parse_on_error_free_edits(lang):
    rng = random.Random(7)
    doc = Document(source(lang), lang, chunk_bytes=SMALL)
    assert len(doc.trees) >= 6
    assert_matches_full_parse(doc)
    for _ in range(80):
        doc.apply_edit(*error_free_edit(rng, doc.text))
        assert_matches_full_parse(doc)
    assert not any(t.root_node.has_error for t in doc.trees)


def test_edit_matches_fresh_parse_on_random_edits():
    rng = random.Random(0)
    doc = Document(PY, "python", chunk_bytes=10)
    assert len(doc.trees) == 3
    for _ in range(60):
        start = rng.randrange(len(doc.text) + 1)
        end = min(len(doc.text), start + rng.choice([0, 0, 1, 3]))
        doc.apply_edit(start, end, rng.choice(["", "x", "é", "\n", "  ", "(", "ü\nz"]))
        assert doc.data == doc.text.encode()
        assert_chunks_are_fresh_parses(doc)


def test_small_document_is_one_chunk():
    doc = Document(PY, "python")
    assert doc.spans == ((0, len(doc.data)),)
    assert doc.tree_at(0) is doc.tree_at(len(doc.data)) is doc.trees[0]


def test_tree_at_boundaries():
    doc = Document(source("python"), "python", chunk_bytes=SMALL)
    (_, cut), (start, _) = doc.spans[:2]
    assert cut == start
    assert doc.tree_at(cut - 1) is doc.trees[0] and doc.tree_at(cut) is doc.trees[1]
    assert doc.tree_at(len(doc.data)) is doc.trees[-1]
    assert doc.chunk_span(cut) == doc.spans[1]
    assert doc.trees_in(cut - 1, cut + 1) == list(doc.trees[:2])


def test_insertion_at_a_boundary_belongs_to_the_chunk_starting_there():
    doc = Document(source("python"), "python", chunk_bytes=SMALL)
    cut = doc.spans[1][0]
    n = len(doc.trees)
    doc.apply_edit(cut, cut, "inserted = 1\n")
    assert doc.spans[1][0] == cut and len(doc.trees) == n
    node = doc.trees[1].root_node.children[0]
    assert doc.data[node.start_byte : node.end_byte] == b"inserted = 1"
    assert_matches_full_parse(doc)
    assert_chunks_are_fresh_parses(doc)


@pytest.mark.parametrize("lang", ["go", "python", "c"])
def test_edit_across_a_boundary_merges_chunks(lang):
    doc = Document(source(lang), lang, chunk_bytes=SMALL)
    cut = doc.spans[2][0]
    lo, hi = doc.text.rindex("\n", 0, cut - 1) + 1, doc.text.index("\n", cut) + 1
    removed = doc.text[lo:hi]
    doc.apply_edit(lo, hi, "")  # the last line of chunk 1 and the first of chunk 2
    assert_chunks_are_fresh_parses(doc)  # merged (then cut again: two chunks exceed twice the target)
    doc.apply_edit(lo, lo, removed)
    assert_matches_full_parse(doc)
    assert_chunks_are_fresh_parses(doc)


def test_joining_the_line_before_a_boundary_merges_chunks():
    doc = Document(source("go"), "go", chunk_bytes=SMALL)
    cut = doc.spans[1][0]
    end = len(doc.text[:cut].rstrip("\n"))
    doc.apply_edit(end, cut, " ")  # "}\n\nfunc f" -> "} func f": the next chunk no longer starts a line
    assert end + 1 not in [s for s, _ in doc.spans]
    assert_chunks_are_fresh_parses(doc)
    doc.apply_edit(end, end + 1, "\n\n")
    assert_matches_full_parse(doc)


def test_deleting_a_whole_chunk_drops_it():
    doc = Document(source("c"), "c", chunk_bytes=SMALL)
    n, (lo, hi) = len(doc.trees), doc.spans[2]
    doc.apply_edit(lo, hi, "")
    assert len(doc.trees) == n - 1
    assert_matches_full_parse(doc)
    assert_chunks_are_fresh_parses(doc)


@pytest.mark.parametrize("lang", ["go", "python", "c"])
def test_replace_all_chunks_like_a_new_document(lang):
    doc = Document(source(lang, 3), lang, chunk_bytes=SMALL)
    text = source(lang, 9).replace("_", "_v")
    doc.apply_edit(0, len(doc.text), text)
    assert doc.spans == Document(text, lang, chunk_bytes=SMALL).spans
    assert_matches_full_parse(doc)
    assert_chunks_are_fresh_parses(doc)


@pytest.mark.parametrize(
    "lang, opener, closer", [("go", "\tif true {\n", "\t}\n"), ("c", "    {\n", "    }\n")]
)
def test_unclosed_brace_stays_in_its_chunk_until_closed(lang, opener, closer):
    doc = Document(source(lang), lang, chunk_bytes=SMALL)
    text = doc.text
    at = text.index("\n", text.index("return total_5 + 1")) + 1  # before the function's closing "}"
    doc.apply_edit(at, at, opener)
    broken = doc.tree_at(doc.byte_offset(at))
    assert broken.root_node.has_error
    assert [t for t in doc.trees if t.root_node.has_error] == [broken]
    assert_chunks_are_fresh_parses(doc)
    doc.apply_edit(at + len(opener), at + len(opener), closer)
    assert_matches_full_parse(doc)
    assert_chunks_are_fresh_parses(doc)


def test_a_chunk_grown_past_twice_the_target_is_split():
    doc = Document(source("go"), "go", chunk_bytes=SMALL)
    n, lo = len(doc.trees), doc.spans[1][0]
    block = GO_BLOCK.replace("{i}", "90")
    at = doc.char_offset(lo)  # an insertion at a chunk's start grows that chunk
    for k in range(4):  # about 400 bytes each: the chunk passes 2 * SMALL on the third
        doc.apply_edit(at, at, block.replace("_90", f"_9{k}"))
        assert doc.spans[1][0] == lo
    assert len(doc.trees) > n
    assert all(e - s <= 2 * SMALL for s, e in doc.spans)
    assert_matches_full_parse(doc)
    assert_chunks_are_fresh_parses(doc)


def test_non_ascii_offsets_across_chunks():
    text = source("python").replace("size_", "größe_").replace("Doc ", "Dök ")
    doc = Document(text, "python", chunk_bytes=SMALL)
    rng = random.Random(3)
    for _ in range(40):
        doc.apply_edit(*error_free_edit(rng, doc.text))
        assert_matches_full_parse(doc)
    at = doc.text.rindex("größe_")
    b = doc.byte_offset(at)
    node = doc.tree_at(b).root_node.descendant_for_byte_range(b, b)
    assert doc.data[b : node.end_byte].decode().startswith("größe_") and doc.char_offset(b) == at


def test_offsets_are_code_points():
    doc = Document("s = 'é'\nt = 1\n", "python")
    doc.apply_edit(doc.text.index("1"), doc.text.index("1") + 1, "22")
    assert doc.text == "s = 'é'\nt = 22\n"
    b = doc.byte_offset(12)
    assert doc.tree_at(b).root_node.descendant_for_byte_range(b, b).text == b"22"
    assert doc.char_offset(doc.byte_offset(12)) == 12


def test_edit_outside_document_is_rejected():
    doc = Document("x = 1\n", "python")
    with pytest.raises(ValueError, match="outside document"):
        doc.apply_edit(3, 99, "")


def test_plain_text_document_has_no_tree():
    doc = Document("hello", None)
    doc.apply_edit(5, 5, " world")
    assert doc.text == "hello world" and doc.tree_at(0) is None and doc.trees == ()


def _index(doc: Document, index: DefinitionIndex | None = None) -> list[tuple[str, str, bytes]]:
    by_name = (index or doc.definitions).lookup(doc.trees, doc.data)
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

INDEX_CASES = [
    ("python", PY, ["", "q", "\ndef z():\n    pass\n", "é", '"', "    "]),
    ("javascript", JS, ["", "q", "\nfunction z() {}\n", "é", "`", "{", "}", "/*"]),
]


@pytest.mark.parametrize("lang, text, inserts", INDEX_CASES)
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
        assert _index(doc) == _index(fresh)


@pytest.mark.parametrize(
    "lang, text, inserts",
    [
        *[(lang, text * 4, inserts) for lang, text, inserts in INDEX_CASES],
        ("go", source("go", 4), ["", "q", "\nfunc z() {}\n", "é", '"', "{", "}", "/*", "\n"]),
    ],
)
def test_definition_index_follows_edits_across_chunks(lang, text, inserts):
    rng = random.Random(2)
    doc = Document(text, lang, chunk_bytes=120)
    assert len(doc.trees) >= 3
    _index(doc)
    for i in range(120):
        start = rng.randrange(len(doc.text) + 1)
        doc.apply_edit(start, min(len(doc.text), start + rng.choice([0, 1, 2, 40])), rng.choice(inserts))
        if i % 3 == 0:  # the same trees, indexed from scratch
            assert _index(doc) == _index(doc, DefinitionIndex(lang))


def test_first_child_for_byte_in_blank_lines_between_go_declarations():
    doc = Document(source("go", 2), "go")
    root = doc.tree_at(0).root_node
    for b in range(len(doc.data)):
        expected = next((c for c in root.children if c.end_byte > b), None)
        got = first_child_for_byte(root, b)
        assert (got and got.start_byte, got and got.end_byte) == (
            expected and expected.start_byte,
            expected and expected.end_byte,
        )
