"""Keys and values of the fixed context around the canvas, reused across denoising steps."""

from __future__ import annotations

import torch
from torch import Tensor


class KVCache:
    """Per-layer K/V for every position of one sequence; a forward over a window writes its own slice.

    A full forward (start=0, the whole sequence) fills it; later window forwards attend to the stored
    context, which is stale by however many steps have passed since the last full forward. That is the
    Fast-dLLM approximation; `refresh` schedules how often the caller pays for a full forward.
    """

    def __init__(self, num_layers: int, batch: int, kv_heads: int, length: int, head_dim: int, dtype, device):
        shape = (batch, kv_heads, length, head_dim)  # [B, KV, T, D]
        self.k = [torch.zeros(shape, dtype=dtype, device=device) for _ in range(num_layers)]
        self.v = [torch.zeros(shape, dtype=dtype, device=device) for _ in range(num_layers)]
        self.length = length

    def update(self, layer: int, start: int, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        # k, v: [B, KV, W, D] for positions start..start+W-1
        end = start + k.shape[2]
        assert end <= self.length, f"window ends at {end}, past the cache length {self.length}"
        self.k[layer][:, :, start:end] = k
        self.v[layer][:, :, start:end] = v
        return self.k[layer], self.v[layer]
