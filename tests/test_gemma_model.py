"""Canvas logits against transformers' DiffusionGemmaForBlockDiffusion: fp32, within 1e-4."""

import pytest
import torch

import engine
from engine.gemma import DiffusionGemmaLM
from engine.gemma.cache import PromptCache
from engine.gemma.moe import uses_grouped_mm
from tests.test_load import assert_close

pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def model(gemma_checkpoint, device):
    return engine.load_model(gemma_checkpoint[0], device=device)


def inputs(vocab: int, batch: int, prompt: int, canvas: int = 8, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, vocab, (batch, prompt), generator=g)
    return ids, torch.randint(0, vocab, (batch, canvas), generator=g), 3 * torch.randn(batch, canvas, vocab,
                                                                                       generator=g)


def reference_logits(ref, prompt, canvas, prev=None) -> torch.Tensor:
    with torch.no_grad():
        return ref(input_ids=prompt, decoder_input_ids=canvas, self_conditioning_logits=prev).logits


def test_the_family_loads_with_its_shape(model, gemma_checkpoint):
    cfg = model.config
    assert isinstance(model, DiffusionGemmaLM) and model.family.name == "diffusion-gemma"
    assert [s.sliding for s in cfg.layers] == [True, False, True, False]
    assert {(s.kv_heads, s.head_dim, s.rope_pairs) for s in cfg.layers} == {(2, 8, 4), (1, 16, 2)}
    assert cfg.num_experts == 4 and cfg.top_k == 2 and cfg.sliding_window == 4
    assert model.special.eos == (1,) and model.special.pad == 0 and model.special.bos == 2


@pytest.mark.parametrize("batch, prompt", [(1, 3), (2, 10), (3, 17)])  # 10 and 17 run past the window of 4
def test_canvas_logits_match_the_reference(model, gemma_checkpoint, batch, prompt):
    ref = gemma_checkpoint[1]
    ids, canvas, prev = inputs(model.config.vocab_size, batch, prompt)
    plain = model.canvas_logits(ids, canvas)
    assert plain.shape == (batch, 8, model.config.vocab_size) and plain.dtype == torch.float32
    assert_close(plain, reference_logits(ref, ids, canvas))
    conditioned = model.canvas_logits(ids, canvas, prev)
    assert_close(conditioned, reference_logits(ref, ids, canvas, prev))
    assert (conditioned.cpu() - plain.cpu()).abs().max() > 0.1  # self-conditioning is not a no-op here


def test_several_experts_per_token_both_dispatch_paths(model, gemma_checkpoint, monkeypatch, device):
    # every token goes to 2 of the 4 experts; grouped_mm and the per-expert loop agree with the reference
    # (CUDA's grouped_mm is used for bf16 only)
    ids, canvas, prev = inputs(model.config.vocab_size, 2, 9, seed=1)
    want = reference_logits(gemma_checkpoint[1], ids, canvas, prev)
    for grouped in (True, False) if device == "cpu" else (False,):
        monkeypatch.setattr("engine.gemma.moe.uses_grouped_mm", lambda rows, w, g=grouped: g)
        model._prompt = None
        assert_close(model.canvas_logits(ids, canvas, prev), want)


def test_grouped_mm_needs_aligned_shapes():
    rows = torch.zeros(5, 16)
    assert uses_grouped_mm(rows, torch.zeros(4, 8, 16)) == hasattr(torch.nn.functional, "grouped_mm")
    assert not uses_grouped_mm(rows, torch.zeros(4, 3, 16))  # 12-byte rows


def test_the_encoder_runs_once_per_prompt(model, monkeypatch):
    calls = []
    encode = model.model.encode
    monkeypatch.setattr(model.model, "encode", lambda *a, **k: calls.append(a[0].shape) or encode(*a, **k))
    ids, canvas, prev = inputs(model.config.vocab_size, 1, 12, seed=2)
    model._prompt = None
    first = model.canvas_logits(ids, canvas)
    again = model.canvas_logits(ids, canvas, prev)  # the next denoising step reuses the cache
    assert len(calls) == 1 and not torch.equal(first, again)
    model.canvas_logits(ids[:, :-1], canvas)
    assert len(calls) == 2


def test_sliding_layers_keep_the_last_window_minus_one_tokens(model):
    cache = PromptCache(model.config)
    model.model.encode(torch.arange(3, 13)[None].to(model.device), cache)
    assert [c.shape[2] for c in cache.k] == [3, 10, 3, 10] and cache.length == 10
    assert cache.pos[0].tolist() == [7, 8, 9]


def test_bf16_is_close_to_fp32(gemma_checkpoint, model, device):
    half = engine.load_model(gemma_checkpoint[0], device=device, dtype="bfloat16")
    ids, canvas, prev = inputs(model.config.vocab_size, 2, 10, seed=3)
    full = model.canvas_logits(ids, canvas, prev)
    low = half.canvas_logits(ids, canvas, prev)
    # bf16 rounding flips some of this random tiny MoE's expert choices, and by how much depends on the CPU's
    # bf16 kernels: mean error 4.7% of the mean |logit| with AVX512-BF16, 6.9% on an AVX2-only CPU (emulated
    # bf16); cosine 0.995 there.
    assert low.dtype == torch.float32
    assert (low - full).abs().mean() < 0.15 * full.abs().mean()
    assert torch.nn.functional.cosine_similarity(low.flatten(), full.flatten(), dim=0) > 0.98
