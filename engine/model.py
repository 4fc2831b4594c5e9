"""A Qwen2/LLaMA-shaped transformer run bidirectionally, as the diffusion checkpoints expect."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from engine.config import ModelConfig
from engine.kv_cache import KVCache, SlotView


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: Tensor) -> Tensor:
        if x.dtype == torch.float32 and not torch.is_grad_enabled():
            return F.rms_norm(x, self.weight.shape, self.weight, self.eps)  # the same, in one kernel
        # fp32 statistics, cast back before the weight (Qwen2 and LLaDA agree on this order)
        h = x.float()
        h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * h.to(x.dtype)


def rope_tables(positions: Tensor, head_dim: int, theta: float) -> tuple[Tensor, Tensor]:
    # positions: [T] -> cos, sin: [T, head_dim] in fp32; per-row positions [B, T] -> [B, 1, T, head_dim]
    inv_freq = 1.0 / theta ** (torch.arange(0, head_dim, 2, device=positions.device).float() / head_dim)
    if positions.dim() == 2:
        freqs = (positions.float()[..., None] * inv_freq)[:, None]  # the same products as outer's
    else:
        freqs = torch.outer(positions.float(), inv_freq)
    emb = torch.cat([freqs, freqs], dim=-1)
    return emb.cos(), emb.sin()


def apply_rope(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    # x: [B, H, T, D]; half-split rotation (HF rotate_half), computed in fp32
    if x.dtype == torch.float32 and not torch.is_grad_enabled():
        half = x.shape[-1] // 2  # both halves of the tables are equal: one half serves both
        x1, x2, c, s = x[..., :half], x[..., half:], cos[..., :half], sin[..., :half]
        return torch.cat([x1 * c - x2 * s, x2 * c + x1 * s], dim=-1)
    h = x.float()
    x1, x2 = h.chunk(2, dim=-1)
    rotated = torch.cat([-x2, x1], dim=-1)
    return (h * cos + rotated * sin).to(x.dtype)


class Attention(nn.Module):
    def __init__(self, cfg: ModelConfig, layer: int):
        super().__init__()
        self.cfg, self.layer = cfg, layer
        self.wqkv = nn.Linear(cfg.hidden_size, sum(cfg.qkv_sizes), bias=cfg.qkv_bias)
        self.wo = nn.Linear(cfg.num_heads * cfg.head_dim, cfg.hidden_size, bias=False)

    def forward(self, x: Tensor, cos: Tensor, sin: Tensor, start: int | Tensor,
                cache: KVCache | SlotView | None, causal: bool, mask: Tensor | None = None):
        b, t, _ = x.shape
        c = self.cfg
        qkv = self.wqkv(x).view(b, t, -1, c.head_dim).transpose(1, 2)  # [B, H + 2 KV, T, D]
        qk = c.num_heads + c.num_kv_heads
        # one rotation for q's and k's heads together: per-op overhead dominates a few canvas rows
        q, k = apply_rope(qkv[:, :qk], cos, sin).split([c.num_heads, c.num_kv_heads], 1)  # [B, H|KV, T, D]
        v = qkv[:, qk:]  # [B, KV, T, D]
        if cache is not None:
            k, v = cache.update(self.layer, start, k, v)
            if causal:
                k, v = k[:, :, : start + t], v[:, :, : start + t]
        gqa = c.num_heads != c.num_kv_heads
        # mask: None, or [B, 1, 1, S] bool (True = a real key)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=causal and t > 1,
                                           enable_gqa=gqa)
        return self.wo(y.transpose(1, 2).reshape(b, t, -1))


class MLP(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.gate = nn.Linear(cfg.hidden_size, cfg.intermediate_size, bias=False)
        self.up = nn.Linear(cfg.hidden_size, cfg.intermediate_size, bias=False)
        self.down = nn.Linear(cfg.intermediate_size, cfg.hidden_size, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        return self.down(F.silu(self.gate(x)) * self.up(x))


class Block(nn.Module):
    def __init__(self, cfg: ModelConfig, layer: int):
        super().__init__()
        self.attn_norm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.attn = Attention(cfg, layer)
        self.mlp_norm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.mlp = MLP(cfg)

    def forward(self, x, cos, sin, start, cache, causal, mask=None):
        x = x + self.attn(self.attn_norm(x), cos, sin, start, cache, causal, mask)
        return x + self.mlp(self.mlp_norm(x))


class Transformer(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.embed = nn.Embedding(cfg.vocab_size, cfg.hidden_size)
        self.layers = nn.ModuleList(Block(cfg, i) for i in range(cfg.num_layers))
        self.norm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.head = nn.Linear(cfg.hidden_size, cfg.vocab_size, bias=False)
        if cfg.tie_word_embeddings:
            self.head.weight = self.embed.weight

    def forward(
        self,
        input_ids: Tensor,
        start: int | Tensor = 0,
        cache: KVCache | SlotView | None = None,
        causal: bool = False,
        rows: Tensor | None = None,
        mask: Tensor | None = None,
    ) -> Tensor:
        # input_ids: [B, W] at absolute positions start..start+W-1 -> logits [B, W, V], raw (no shift);
        # with rows [R] (indices into W), only those rows reach the head: [B, R, V]; rows [B, R]: per row.
        # With a cache, keys/values of the other positions come from the cache (filled by an earlier
        # forward over the whole sequence); this window's keys/values overwrite their slice of it.
        # Padded batches (engine/batch.py): start may be per-token positions [B, W] (each row's own window;
        # a SlotView cache writes each token's keys there), and mask [B, S] marks the real keys (S = W, or
        # the keys the cache returns): a row sees neither another row's tokens nor padding.
        if isinstance(start, Tensor):
            positions = start
        else:
            positions = torch.arange(start, start + input_ids.shape[1], device=input_ids.device)
        cos, sin = rope_tables(positions, self.cfg.head_dim, self.cfg.rope_theta)
        attn_mask = None if mask is None else mask[:, None, None, :]  # [B, 1, 1, S]
        x = self.embed(input_ids)
        for block in self.layers:
            x = block(x, cos, sin, start, cache, causal, attn_mask)
        if rows is not None:
            x = x[torch.arange(x.shape[0], device=x.device)[:, None], rows] if rows.dim() == 2 else x[:, rows]
        return self.head(self.norm(x))
