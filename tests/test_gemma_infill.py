"""Completion on DiffusionGemma: the canvas between prefix and suffix, the left-to-right mode, the server's
filler, `unmask complete` and the language server on the tiny checkpoint."""

import pytest
import torch
from lsprotocol import types

import engine
from engine import Cancelled, InfillResult, MemoryConfig, SamplerConfig, Unsupported
from engine.gemma import Sampling
from engine.gemma.cache import PromptCache
from engine.gemma.complete import cut_at_suffix, end_of_text
from engine.params import InfillParams
from lsp_server.completion.filler import make_filler
from tests.test_lsp_cli import unmask
from tests.test_lsp_server import FAST, PY, RETURN, inline, open_doc, serving, status

pytest.importorskip("transformers")
PREFIX, SUFFIX = "def add(a, b):\n    return ", "\n\nprint(add(1, 2))\n"


@pytest.fixture(scope="module")
def model(gemma_checkpoint, device):
    return engine.load_model(gemma_checkpoint[0], device=device)


def test_cut_where_the_canvas_meets_the_suffix():
    assert cut_at_suffix([5, 6, 7, 8, 9, 1], [8, 9, 1, 4]) == [5, 6, 7]  # repeats the suffix's first three
    assert cut_at_suffix([5, 6, 7, 8, 9], [8, 9, 1, 4]) == [5, 6, 7]  # ends on the suffix's start
    assert cut_at_suffix([5, 8, 9, 7], [8, 9, 1]) == [5, 8, 9, 7]  # two tokens in the middle are not enough
    assert cut_at_suffix([5, 6], []) == [5, 6]
    assert end_of_text([4, 1, 5], frozenset({0, 1})) == 1 and end_of_text([4], frozenset({0})) == 1


def test_infill_returns_the_engines_result(model):
    r = model.infill(PREFIX, SUFFIX, InfillParams(canvas=8, seed=1))
    assert isinstance(r, InfillResult) and isinstance(r.text, str) and 0 <= r.confidence <= 1
    assert r.stats.canvas == 8 and r.stats.forward_passes == model.sampling.steps and r.stats.ms > 0
    assert model.infill(PREFIX, SUFFIX, InfillParams(canvas=8, seed=1)).text == r.text


def test_the_canvas_sees_the_suffix_and_left_to_right_does_not(model, monkeypatch):
    seen = []
    decode = model.model.decode
    monkeypatch.setattr(model.model, "decode", lambda *a, **k: seen.append(decode(*a, **k)) or seen[-1])
    model.infill(PREFIX, SUFFIX, InfillParams(canvas=8, seed=1))
    model.infill(PREFIX, "\n\nx = [add(i, i) for i in range(9)]\n", InfillParams(canvas=8, seed=1))
    steps = model.sampling.steps
    assert not torch.allclose(seen[0], seen[steps])  # same prefix, same noise, another suffix
    ltr = [model.infill(PREFIX, s,
            InfillParams(canvas=8, seed=1), left_to_right=True).text for s in (SUFFIX, "\n")]
    assert ltr[0] == ltr[1]


def test_sliding_layers_keep_window_minus_one_tokens_each_side(model):
    # prefix at 0..9, canvas at 10..17, suffix at 18..27: sliding layers keep 7..9 and 18..20
    cache = PromptCache(model.config)
    model.model.encode(torch.arange(3, 13)[None].to(model.device), cache)
    both = cache.fork()
    model.model.encode(torch.arange(3, 13)[None].to(model.device), both, start=18, truncate=False)
    both.keep_first_after(18)
    assert both.pos[0].tolist() == [7, 8, 9, 18, 19, 20] and both.pos[1].shape[0] == 20
    assert cache.pos[0].tolist() == [7, 8, 9]  # the prefix's cache is untouched


def test_left_to_right_continues_in_canvases_up_to_max_canvas(model, monkeypatch):
    decoded = []
    decode = model.tokenizer.decode
    monkeypatch.setattr(model.tokenizer, "decode", lambda ids: decoded.append(ids) or decode(ids))
    r = model.infill(PREFIX, "", InfillParams(canvas=4, max_canvas=10, seed=0))
    # three canvases of 4 (no end token in them with this seed), the last one cut at 10 tokens
    assert r.stats.canvas == 4 and r.stats.forward_passes == 3 * model.sampling.steps
    assert r.stats.tokens_per_forward == 12 / r.stats.forward_passes
    assert len(decoded[0]) == 10 and not model.special.stops.intersection(decoded[0])


def test_single_line_sampler_steps_and_cancel(model):
    r = model.infill(PREFIX, SUFFIX,
            InfillParams(canvas=12, single_line=True, sampler=SamplerConfig(steps=3)))
    assert "\n" not in r.text and r.stats.forward_passes == 3
    model.sampling, kept = Sampling(steps=2), model.sampling  # the checkpoint's own settings, replaced
    try:
        assert model.infill(PREFIX, SUFFIX, InfillParams(canvas=4)).stats.forward_passes == 2
    finally:
        model.sampling = kept
    with pytest.raises(Cancelled):
        model.infill(PREFIX, SUFFIX, cancel=lambda: True)
    with pytest.raises(ValueError, match="InfillParams.canvas must be an integer >= 1"):
        model.infill(PREFIX, SUFFIX, InfillParams(canvas=0))


@pytest.mark.parametrize("params, field", [
    (InfillParams(memory=MemoryConfig()), "memory"),
    (InfillParams(cache=True), "cache"),
    (InfillParams(refresh=2), "refresh"),
    (InfillParams(sampler=SamplerConfig(temperature=0.5)), "sampler.temperature"),
])
def test_what_the_family_cannot_do_is_refused_in_one_line(model, params, field):
    assert not model.capabilities.memory and not model.capabilities.cache and not model.capabilities.batching
    with pytest.raises(Unsupported, match=rf"^InfillParams\.{field}: diffusion-gemma "):
        model.infill(PREFIX, SUFFIX, params)
    with pytest.raises(Unsupported, match="does not score"):
        model.score(PREFIX, SUFFIX, ["a + b"])
    with pytest.raises(Unsupported, match="diffusion-gemma is not batched"):
        engine.Batcher(model)


def test_the_servers_filler_runs_it(model):
    fill = make_filler(model, SamplerConfig(steps=3), cancel=None, memory=None)
    text, confidence = fill("def f(", "):\n", 4, 16, True)
    assert isinstance(text, str) and "\n" not in text and 0 <= confidence <= 1
    assert model.context_room(16) == model.max_positions - 17  # BOS and the canvas aside


def test_unmask_complete_runs_on_the_checkpoint(gemma_checkpoint, tmp_path):
    source = tmp_path / "a.py"
    source.write_text(PY)
    done = unmask("complete", str(source), "--line", "4", "--col", "12", "--model", str(gemma_checkpoint[0]),
                  "--threads", "1", "--json", env={})
    assert done.returncode == 0, done.stderr
    assert '"kind": "rest_of_line"' in done.stdout


@pytest.mark.asyncio
async def test_the_language_server_runs_on_the_checkpoint(gemma_checkpoint):
    async with serving(gemma_checkpoint[0], "neovim", FAST) as client:
        s = await status(client)
        assert s["family"] == "diffusion-gemma" and s["state"] == "ready" and s["quantize"] == "none"
        uri = open_doc(client, "gemma.py", PY)
        result = await inline(client, uri, RETURN)
        (item,) = result.items  # a completion on this checkpoint, not just no error
        assert item.range.start == item.range.end == RETURN and item.insert_text.strip()
        assert sum((await status(client))["requests"].values()) >= 1
        assert isinstance(result, types.InlineCompletionList)
