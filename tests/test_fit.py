import pytest
import torch

import engine
import engine.registry
from engine import fit, quantize
from engine.model import Transformer
from engine.quantize import quantized_names
from tests.checkpoints import tiny_config

SHAPES = {
    "dream": tiny_config(300),
    "tied": tiny_config(300, tie_word_embeddings=True),
    "llada": tiny_config(300, qkv_bias=False, shift=False, family="llada", head_dim=16),
}


@pytest.mark.parametrize("name", SHAPES)
def test_parameters_count_what_the_transformer_allocates(name):
    cfg = SHAPES[name]
    with torch.device("meta"):
        model = Transformer(cfg)
    linear, rows, other = fit.parameters(cfg)
    assert linear + other == sum(p.numel() for p in model.parameters())
    modules = dict(model.named_modules())
    replaced = [modules[n].weight for n in quantized_names(model)]  # what engine/quantize.py makes int8
    assert (linear, rows) == (sum(w.numel() for w in replaced), sum(w.shape[0] for w in replaced))


def test_need_in_bytes():
    cfg = SHAPES["dream"]
    linear, rows, other = fit.parameters(cfg)
    bf16 = fit.need(cfg, torch.bfloat16)
    assert bf16.weights == 2 * (linear + other)
    assert fit.need(cfg, torch.float32).weights == 2 * bf16.weights
    assert fit.need(cfg, torch.bfloat16, "int8").weights == linear + 2 * rows + 2 * other
    # fp32 on an x86 CPU: fbgemm holds a packed copy of each int8 weight beside it
    packed = linear if quantize.FBGEMM else 0
    assert fit.need(cfg, torch.float32, "int8").weights == linear + 4 * rows + 4 * other + packed
    assert fit.need(cfg, torch.float32, "int8", device="cuda").weights == linear + 4 * rows + 4 * other
    # keys and values: 2 layers x 2 kv heads x 8 dims x 512 positions (the model's, below KV_POSITIONS)
    assert bf16.positions == 512 and bf16.kv_cache == 2 * 2 * 2 * 8 * 512 * 2
    long = tiny_config(300, max_position_embeddings=32768)
    assert fit.need(long, torch.bfloat16).positions == fit.KV_POSITIONS


def test_available_memory():
    free = fit.available_bytes("cpu")
    assert free is None or free > 0
    assert fit.available_bytes("mps") is None


def test_a_model_that_fits_loads(tiny_checkpoint, monkeypatch):
    cfg = engine.load_model(tiny_checkpoint).config
    monkeypatch.setattr(fit, "available_bytes", lambda device: fit.need(cfg, torch.float32).total)
    assert engine.load_model(tiny_checkpoint, dtype="float32").config == cfg


def test_a_model_that_cannot_fit_is_refused_before_loading(tiny_checkpoint, monkeypatch):
    monkeypatch.setattr(fit, "available_bytes", lambda device: 1000)

    def never(*args, **kwargs):
        raise AssertionError("weights were read")

    monkeypatch.setattr(engine.registry, "load_transformer", never)
    with pytest.raises(engine.DoesNotFit) as e:
        engine.load_model(tiny_checkpoint, dtype="float32")
    message = str(e.value)
    assert "\n" not in message and repr(str(tiny_checkpoint)) in message
    assert " on cpu in float32 (weights " in message and "but 0.0 GB is available" in message
    assert "nothing smaller fits (least: --quantize int8 --dtype bfloat16" in message


def test_the_refusal_names_what_would_fit(tiny_checkpoint, monkeypatch):
    cfg = engine.load_model(tiny_checkpoint).config
    int8 = fit.need(cfg, torch.bfloat16, "int8").total
    assert int8 < fit.need(cfg, torch.bfloat16).total
    monkeypatch.setattr(fit, "available_bytes", lambda device: int8)
    with pytest.raises(engine.DoesNotFit, match=r"it fits with --quantize int8 \(0\.0 GB\)$"):
        engine.load_model(tiny_checkpoint, dtype="bfloat16")
    with pytest.raises(engine.DoesNotFit, match=r"fits with --quantize int8 --dtype bfloat16 \(0\.0 GB\)$"):
        engine.load_model(tiny_checkpoint, dtype="float32")
