"""engine/heal.py: blanks and extendable last tokens taken off the prefix, the canvas's first position kept to
tokens that start with what was taken, and the completion free of it."""

import pytest
import torch

import engine
import engine.lm
from engine.heal import FirstToken, heal, heal_token, unheal
from engine.memory import MemoryConfig
from engine.params import InfillParams
from engine.tokenizer import Vocabulary

TEXTS = ["<eos>", ".", ".add", ".parse", "par", "ser", " x", "(", "(a", "a", ":\n", "\ufffd"]
VOCAB = Vocabulary(TEXTS, skip=frozenset({0}))


def ids(*texts: str) -> list[int]:
    return [TEXTS.index(t) for t in texts]


def test_blanks_after_code_are_healed_but_not_indentation():
    assert heal("def f(a, b):\n    return ") == ("def f(a, b):\n    return", " ")
    assert heal("x = f(a,  ") == ("x = f(a,", "  ")
    assert heal("def f():\n    ") == ("def f():\n    ", "")
    assert heal("x = 1") == ("x = 1", "")


def test_the_vocabulary_finds_every_token_that_starts_with_a_text():
    assert sorted(VOCAB.starting_with(".")) == ids(".", ".add", ".parse")
    assert VOCAB.starting_with(".a") == ids(".add")
    assert VOCAB.starting_with("q") == []
    assert VOCAB.extended(TEXTS.index(".")) and VOCAB.extended(TEXTS.index("("))
    assert not VOCAB.extended(TEXTS.index(".add")) and not VOCAB.extended(TEXTS.index("ser"))
    assert not VOCAB.extended(0)  # specials never heal
    allowed = VOCAB.allowed("(")
    assert allowed.shape == (len(TEXTS),) and allowed.nonzero().flatten().tolist() == ids("(", "(a")


def test_an_extended_last_token_is_taken_off_the_prefix():
    assert heal_token("x = parser.", ids("par", "ser", "."), VOCAB) == ("x = parser", ".")
    assert heal_token("f(", ids("("), VOCAB) == ("f", "(")
    assert heal_token("x = parser", ids("par", "ser"), VOCAB) == ("x = parser", "")  # nothing extends "ser"
    assert heal_token("", [], VOCAB) == ("", "")
    # a token whose text is not the prefix's end (a decoder that changes text) is left alone
    assert heal_token("x = f.", ids("("), VOCAB) == ("x = f.", "")


def test_unheal_takes_the_healed_text_off_the_completion():
    assert unheal(".add_argument()", ".") == "add_argument()"
    assert unheal(" a + b", " ") == "a + b"
    assert unheal("a + b", " ") == "a + b"
    assert unheal("a + b", "") == "a + b"


def test_first_token_keeps_only_the_first_masked_position_to_the_allowed_tokens():
    calls = []

    def inner(logits, canvas, masked):
        calls.append(True)
        return logits + 1.0

    prior = FirstToken(VOCAB.allowed("."), inner)
    logits = torch.zeros(3, len(TEXTS))
    out = prior(logits, torch.zeros(3, dtype=torch.long), torch.tensor([True, True, True]))
    assert calls and torch.equal(logits, torch.zeros(3, len(TEXTS)))  # the caller's logits are not changed
    assert torch.isfinite(out[0]).nonzero().flatten().tolist() == ids(".", ".add", ".parse")
    assert torch.equal(out[1:], torch.ones(2, len(TEXTS)))
    # committed: the first position is no longer constrained
    done = prior(logits, torch.zeros(3, dtype=torch.long), torch.tensor([False, True, True]))
    assert torch.isfinite(done).all()


@pytest.fixture(scope="module")
def lm(tiny_checkpoint, device):
    return engine.load_model(tiny_checkpoint, device=device)


def test_the_embedded_tokenizers_texts_concatenate(lm):
    assert lm.tokenizer.vocabulary is not None


def test_a_healed_infill_starts_with_a_token_that_extends_the_cut(lm, monkeypatch):
    vocab = lm.tokenizer.vocabulary
    prefix = "import os\nx = sel"
    last = lm.tokenizer.encode(prefix)[-1]
    healed = lm.tokenizer.decode([last])
    assert vocab.extended(last), "the tiny tokenizer should have tokens longer than its last one"
    job = lm.prepare(prefix, "\n", InfillParams(canvas=8), None)
    assert job.healed == healed and job.before[-1] != last and job.first_alone
    committed = []  # the canvas tokens the real infill committed, seen where lm.py turns them into text
    middle_of = engine.lm.middle_of

    def spy(tokens, conf, special):
        committed.append(tokens.tolist())
        return middle_of(tokens, conf, special)

    monkeypatch.setattr(engine.lm, "middle_of", spy)
    result = lm.infill(prefix, "\n", InfillParams(canvas=8, cache=True))
    (tokens,) = committed
    assert lm.tokenizer.decode(tokens[:1]).startswith(healed)
    # the completion is what follows the typed text: the healed part is not repeated
    ids = tokens[: next((i for i, t in enumerate(tokens) if t in lm.special.stops), len(tokens))]
    assert healed + result.text == lm.tokenizer.decode(ids)
    # off: the prefix keeps its last token and nothing constrains the canvas
    lm.token_healing = False
    try:
        plain = lm.prepare(prefix, "\n", InfillParams(canvas=8), None)
        assert plain.healed == "" and plain.before[-1] == last
        assert plain.prior is None and not plain.first_alone
    finally:
        lm.token_healing = True


def test_the_memory_votes_only_for_continuations_of_the_healed_text(lm):
    lm.memory.update("project", "x = self.size\nz = 3\n")
    prefix = "y = sel"
    job = lm.prepare(prefix, "\n", InfillParams(canvas=6, memory=MemoryConfig(weight=0.99)), lm.memory)
    assert job.healed
    result = lm.infill(prefix, "\n",
            InfillParams(canvas=6, single_line=True, memory=MemoryConfig(weight=0.99)))
    assert result.text.startswith("f.size")  # not "3", which follows " = " too; "sel" is not repeated


def test_a_tokenizer_whose_texts_do_not_concatenate_is_never_healed_by_token(tmp_path):
    # SentencePiece-style: "▁" marks a space that a lone token's decoding drops
    from tokenizers import Tokenizer as HFTokenizer
    from tokenizers import decoders, models, pre_tokenizers

    from engine.tokenizer import Tokenizer

    words = ["<eos>", "<mask>", "<unk>", "▁the", "▁cat", "▁sat", "▁th", "▁ca"]
    hf = HFTokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    hf.pre_tokenizer = pre_tokenizers.Metaspace()
    hf.decoder = decoders.Metaspace()
    hf.save(str(tmp_path / "tokenizer.json"))
    tok = Tokenizer(tmp_path, {"mask_token_id": 1, "eos_token_id": 0}, ())
    assert tok.decode([3]) + tok.decode([4]) != tok.decode([3, 4])
    assert tok.vocabulary is None
