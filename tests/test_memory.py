"""The repository memory: longest matches over remembered texts, the cut at a cursor, the size bound, and its
mixture with a (random) network in the denoiser."""

import pytest
import torch

import engine
from engine.memory import CONTINUATION_BYTES, MemoryConfig, RepositoryMemory, TextIndex
from engine.params import InfillParams

CFG = MemoryConfig()
PROJECT = (
    "def area(rect):\n    return rect.width * rect.height\n\n"
    "def perimeter(rect):\n    return 2 * (rect.width + rect.height)\n"
)


def test_left_match_is_the_longest_suffix_and_lists_what_followed():
    index = TextIndex()
    index.set("a", b"x = compute(alpha)\ny = compute(beta)\n")
    m = index.match_left(b"zzz = compute(", CFG)
    assert m.length == len(b" = compute(")
    assert sorted(m.following()) == [b"alpha)\ny = compute(beta)"[:CONTINUATION_BYTES], b"beta)\n"]
    assert index.match_left(b"qqqq", CFG).count == 0


def test_right_match_lists_what_preceded():
    index = TextIndex()
    index.set("a", b"total = price * count\n")
    m = index.match_right(b" * count\nreturn", CFG)
    assert m.length == len(b" * count\n")
    assert m.preceding() == [b"total = price"]


def test_a_match_never_crosses_sources_or_continues_into_a_separator():
    index = TextIndex()
    index.set("a", b"first part")
    index.set("b", b"second")
    # "part" ends source a, so nothing follows it there; only "t" of "firs|t" has a continuation
    assert index.match_left(b"part", CFG).length == 1
    assert index.match_left(b"partsecond", CFG).length < len(b"partsecond")


def test_the_document_cut_at_the_cursor_does_not_complete_itself():
    memory = RepositoryMemory()
    text = "value = load()\nother = 1\nvalue = "
    memory.update("doc", text + "\nprint(value)\n", cursor=len(text))
    m = memory.index.match_left(text.encode(), CFG)
    # the whole prefix occurs only right before the cut; the longest useful match is the earlier line
    assert m.length == len(b"value = ")
    assert m.following() == [b"load()\nother = 1\nvalue = "[:CONTINUATION_BYTES]]


def test_an_edit_replaces_the_source_so_deleted_code_is_forgotten():
    memory = RepositoryMemory()
    memory.update("doc", "secret_token = 42\n")
    assert memory.index.match_left(b"secret_", CFG).count == 1
    memory.update("doc", "nothing here\n")
    assert memory.index.match_left(b"secret_", CFG).count == 0


def test_the_size_bound_evicts_the_least_recently_updated_source():
    memory = RepositoryMemory(max_bytes=25)
    memory.update("old", "a" * 10)
    memory.update("new", "b" * 10)
    memory.update("old", "c" * 10)  # updated again: now the newest
    memory.update("third", "d" * 10)
    assert set(memory.index.keys()) == {"old", "third"}
    assert memory.report()["bytes"] <= 25


def test_mix_weight_grows_with_length_and_count():
    cfg = MemoryConfig(weight=0.9, half_length=8, min_length=4)
    assert cfg.mix_weight(3, 10) == 0  # below min_length
    assert cfg.mix_weight(8, 1) < cfg.mix_weight(32, 1) < 0.9
    assert cfg.mix_weight(16, 1) < cfg.mix_weight(16, 5)
    with pytest.raises(ValueError, match="weight"):
        MemoryConfig(weight=1.0)


@pytest.fixture()
def lm(tiny_checkpoint, device):
    return engine.load_model(tiny_checkpoint, device=device)


def test_the_prior_votes_for_the_remembered_continuation(lm):
    lm.memory.update("project", PROJECT)
    prefix = "def volume(rect, depth):\n    return rect.width * "
    prior = lm.prior_for(prefix, "\n", MemoryConfig(weight=0.99), "", lm.memory)
    canvas = torch.full((4,), lm.special.mask, device=lm.device)
    masked = torch.ones(4, dtype=torch.bool, device=lm.device)
    logits = torch.zeros(4, lm.tokenizer.vocab_size, device=lm.device)
    out = prior(logits, canvas, masked)
    first = lm.tokenizer.encode("rect.height")[0]
    assert int(out[0].argmax()) == first


def test_fused_infill_completes_a_line_the_project_holds_and_the_network_alone_does_not(lm):
    prefix = "def volume(rect, depth):\n    return rect.width * "
    lm.memory.update("project", PROJECT)
    fused = lm.infill(prefix, "\n",
            InfillParams(canvas=20, single_line=True, memory=MemoryConfig(weight=0.99)))
    alone = lm.infill(prefix, "\n", InfillParams(canvas=20, single_line=True, memory=None))
    assert fused.text == "rect.height"
    assert alone.text != "rect.height"
    assert lm.recall(prefix, "\n", single_line=True) == "rect.height"


def test_without_texts_the_memory_changes_nothing(lm):
    prefix = "def volume(rect, depth):\n    return "
    a = lm.infill(prefix, "\n", InfillParams(canvas=6, memory=MemoryConfig()))
    b = lm.infill(prefix, "\n", InfillParams(canvas=6, memory=None))
    assert (a.text, a.stats.forward_passes) == (b.text, b.stats.forward_passes)


def test_no_continuation_comes_from_the_lines_next_to_the_cursor():
    memory = RepositoryMemory()
    text = "def f():\n    x = 1\n    \n    return x\n\ndef g():\n    y = 2\n"
    cursor = text.index("    \n    return") + 4
    memory.update("doc", text, cursor=cursor)
    # after "\n    " the previous line ("x = 1") and the next ("return x") are skipped; g's body is not
    assert memory.index.match_left(text[:cursor].encode(), CFG).following() == [b"y = 2\n"]


def test_a_prefix_ending_in_a_typed_space_is_healed():
    from engine.heal import heal

    assert heal("def f(a, b):\n    return ") == ("def f(a, b):\n    return", " ")
    assert heal("x = f(a,  ") == ("x = f(a,", "  ")
    assert heal("def f():\n    ") == ("def f():\n    ", "")  # indentation only: as trained
    assert heal("x = 1") == ("x = 1", "")


def test_healed_completions_do_not_repeat_the_typed_space(lm):
    lm.memory.update("project", "def add(a, b):\n    return a + b\n")
    result = lm.infill("def plus(a, b):\n    return ", "\n",
            InfillParams(canvas=20, single_line=True, memory=MemoryConfig(weight=0.99)))
    assert result.text == "a + b"


def test_the_corpus_index_votes_where_the_project_has_nothing(lm):
    from engine.corpus_index import CorpusIndex

    prefix = "def volume(rect, depth):\n    return rect.width * "
    lm.corpus = CorpusIndex(PROJECT.encode())
    cfg = MemoryConfig(corpus_weight=0.9, corpus_min_length=4)
    prior = lm.prior_for(prefix, "\n", cfg, "", lm.memory)
    canvas = torch.full((4,), lm.special.mask, device=lm.device)
    masked = torch.ones(4, dtype=torch.bool, device=lm.device)
    out = prior(torch.zeros(4, lm.tokenizer.vocab_size, device=lm.device), canvas, masked)
    assert int(out[0].argmax()) == lm.tokenizer.encode("rect.height")[0]
    # off: corpus_weight 0 leaves the logits as they are
    assert lm.prior_for(prefix, "\n", MemoryConfig(corpus_weight=0.0), "", RepositoryMemory()) is None


def test_a_strong_project_match_leaves_the_corpus_little_weight(lm):
    from engine.corpus_index import CorpusIndex

    prefix = "def volume(rect, depth):\n    return rect.width * "
    lm.corpus = CorpusIndex(b"def volume(rect, depth):\n    return rect.width * depth\n")
    lm.memory.update("project", PROJECT + "\ndef volume(rect, depth):\n    return rect.width * rect.height\n")
    cfg = MemoryConfig(weight=0.97, corpus_weight=0.9, corpus_min_length=4)
    prior = lm.prior_for(prefix, "\n", cfg, "", lm.memory)
    canvas = torch.full((4,), lm.special.mask, device=lm.device)
    masked = torch.ones(4, dtype=torch.bool, device=lm.device)
    out = prior(torch.zeros(4, lm.tokenizer.vocab_size, device=lm.device), canvas, masked).softmax(-1)
    project, corpus = lm.tokenizer.encode("rect.height")[0], lm.tokenizer.encode(" depth")[0]
    assert project != corpus
    assert out[0, project] > 10 * out[0, corpus] > 0


def test_the_memory_proposes_what_followed_its_longest_matches(lm):
    lm.memory.clear()
    lm.memory.update("a.py", "def f(rect):\n    return rect.width * rect.height\n\n\ndef g(rect):\n"
                             "    return rect.width * rect.height\n\n\ndef h(rect):\n"
                             "    return rect.width + 1\n")
    params = InfillParams(single_line=True, memory=MemoryConfig())
    got = lm.propose("def k(rect):\n    return rect.", "\n", params)
    assert [(p.text, p.count, p.total) for p in got] == [("width * rect.height", 2, 3),
                                                          ("width + 1", 1, 3)]
    assert got[0].length == len("(rect):\n    return rect.")  # the longest context the three repeat
    no_memory = InfillParams(single_line=True)
    assert lm.propose("def k(rect):\n    return rect.", "\n", no_memory) == []
    whole = lm.propose("def k(rect):\n    return rect.", "\n", InfillParams(memory=MemoryConfig()), limit=1)
    assert whole[0].text.startswith("width * rect.height\n\n\ndef ")  # not cut at the line's end
    lm.memory.clear()


def test_contains_knows_the_identifiers_of_every_source():
    memory = RepositoryMemory()
    memory.update("a.py", "import os\nvalue = os.path.join(base, name)\n")
    assert memory.contains("join") and memory.contains("base") and not memory.contains("bas")
    memory.update("a.py", "x = 1\n")  # replaced: its old words are gone
    assert not memory.contains("join") and memory.contains("x")
    memory.remove("a.py")
    assert not memory.contains("x")
