"""The encoder's keys and values, which the decoder reads for every denoising step and never writes."""

from __future__ import annotations

import torch
from torch import Tensor

from engine.gemma.config import GemmaConfig


class PromptCache:
    """Per layer: keys and values [B, KV, T, D] of the encoded tokens and their positions [T].

    Sliding layers keep only the last window - 1 tokens before the canvas (transformers'
    DynamicSlidingWindowLayer), so every canvas query sees the same window - 1 prompt keys; full layers keep
    all.
    Keys are stored after RoPE, so entries at any positions (a suffix after the canvas) sit side by side.
    """

    def __init__(self, cfg: GemmaConfig):
        self.cfg = cfg
        self.k: list[Tensor | None] = [None] * cfg.num_layers
        self.v: list[Tensor | None] = [None] * cfg.num_layers
        self.pos: list[Tensor | None] = [None] * cfg.num_layers
        # tokens encoded: the canvas starts at this position (transformers' cumulative length)
        self.length = 0

    def append(self, layer: int, k: Tensor, v: Tensor, pos: Tensor, truncate: bool = True):
        # k, v: [B, KV, T, D] at positions pos [T] -> every entry (old and new), for the encoder's own
        # attention
        if self.k[layer] is not None:
            k, v = torch.cat([self.k[layer], k], dim=2), torch.cat([self.v[layer], v], dim=2)
            pos = torch.cat([self.pos[layer], pos])
        first = 0
        if truncate and self.cfg.layers[layer].sliding:
            first = max(pos.shape[0] - (self.cfg.sliding_window - 1), 0)
        self.k[layer], self.v[layer], self.pos[layer] = k[:, :, first:], v[:, :, first:], pos[first:]
        return k, v, pos

    def read(self, layer: int, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        # the canvas's own k, v [B, KV, C, D] after the cached ones, without storing them
        if self.k[layer] is None:
            return k, v
        return torch.cat([self.k[layer], k], dim=2), torch.cat([self.v[layer], v], dim=2)

    def fork(self) -> PromptCache:
        # a cache that shares these tensors (they are replaced, never written in place)
        other = PromptCache(self.cfg)
        other.k, other.v, other.pos, other.length = list(self.k), list(self.v), list(self.pos), self.length
        return other

    def keep_first_after(self, start: int) -> None:
        # sliding layers: of the entries at positions >= start (a suffix), keep the first window - 1
        for i, spec in enumerate(self.cfg.layers):
            if spec.sliding and self.pos[i] is not None:
                keep = self.pos[i] < start + self.cfg.sliding_window - 1
                self.k[i], self.v[i] = self.k[i][:, :, keep], self.v[i][:, :, keep]
                self.pos[i] = self.pos[i][keep]
