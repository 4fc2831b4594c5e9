"""engine/model.py: fp32 inference takes fused paths (one rms_norm kernel, q and k rotated together without
casts); they must give exactly what the training path (autograd on) gives."""

import pytest
import torch

from engine.config import ModelConfig
from engine.kv_cache import KVCache
from engine.model import Transformer


def tiny(kv_heads: int) -> Transformer:
    cfg = ModelConfig(vocab_size=64, hidden_size=32, num_layers=2, num_heads=4, num_kv_heads=kv_heads,
                      intermediate_size=48, max_position_embeddings=64, qkv_bias=True, shift=True,
                      family="dream")
    torch.manual_seed(0)
    return Transformer(cfg)


@pytest.mark.parametrize("kv_heads", [1, 2, 4])
def test_inference_path_equals_training_path(kv_heads):
    model = tiny(kv_heads)
    ids = torch.randint(0, 64, (2, 19), generator=torch.Generator().manual_seed(1))
    positions = torch.arange(19).repeat(2, 1) + torch.tensor([[0], [5]])  # per-row positions (batching)
    with torch.enable_grad():
        train = [model(ids).detach(), model(ids, positions).detach(), model(ids, causal=True).detach()]
    with torch.no_grad():
        infer = [model(ids), model(ids, positions), model(ids, causal=True)]
    for a, b in zip(train, infer):
        assert torch.equal(a, b)


def test_cached_window_matches_full_forward_when_nothing_changed():
    model = tiny(2)
    cfg = model.cfg
    ids = torch.randint(0, 64, (1, 24), generator=torch.Generator().manual_seed(2))
    cache = KVCache(cfg.num_layers, 1, cfg.num_kv_heads, 24, cfg.head_dim, torch.float32, "cpu")
    with torch.no_grad():
        full = model(ids, 0, cache)
        window = model(ids[:, 16:], 16, cache)
    torch.testing.assert_close(window, full[:, 16:], rtol=1e-5, atol=1e-5)
