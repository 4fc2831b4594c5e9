"""DiffusionGemma's building blocks: Gemma 4 norms, RoPE, attention, MLP and the layer (dense MLP + MoE)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from engine.gemma.config import GemmaConfig, LayerSpec
from engine.gemma.moe import Experts, Router


class GemmaRMSNorm(nn.Module):
    # Gemma 4: fp32 x * (mean(x^2) + eps)^-0.5 * weight (the weight as stored, no 1 + w); weightless for V
    def __init__(self, dim: int, eps: float, scale: bool = True):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim)) if scale else None

    def forward(self, x: Tensor) -> Tensor:
        h = x.float()
        h = h * torch.pow(h.pow(2).mean(-1, keepdim=True) + self.eps, -0.5)
        return (h if self.weight is None else h * self.weight.float()).type_as(x)


def rope_tables(positions: Tensor, spec: LayerSpec, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
    # positions: [T] -> cos, sin [T, D] in dtype. Proportional RoPE: the first rope_pairs frequencies use the
    # exponent 2i / head_dim, the remaining pairs have frequency 0 (cos 1, sin 0: those dimensions do not
    # rotate)
    d = spec.head_dim
    pairs = torch.arange(spec.rope_pairs, device=positions.device).float()
    inv = 1.0 / spec.rope_theta ** (2 * pairs / d)
    inv = torch.cat([inv, inv.new_zeros(d // 2 - spec.rope_pairs)]) / spec.rope_factor
    freqs = positions.float()[:, None] * inv[None]
    emb = torch.cat([freqs, freqs], dim=-1)
    return emb.cos().to(dtype), emb.sin().to(dtype)


def rotate(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    # x: [B, T, H, D], cos/sin: [T, D]; half-split rotation (rotate_half), in x's dtype as transformers does
    x1, x2 = x.chunk(2, dim=-1)
    return x * cos[:, None] + torch.cat([-x2, x1], dim=-1) * sin[:, None]


def visible(q_pos: Tensor, k_pos: Tensor, sliding: bool, window: int) -> Tensor:
    # causal by absolute position; sliding layers see the last `window` positions, their own included
    mask = k_pos[None, :] <= q_pos[:, None]  # [Tq, Tk]
    return mask & (k_pos[None, :] > q_pos[:, None] - window) if sliding else mask


class GemmaAttention(nn.Module):
    def __init__(self, cfg: GemmaConfig, spec: LayerSpec):
        super().__init__()
        h, d, eps = cfg.hidden_size, spec.head_dim, cfg.rms_norm_eps
        self.head_dim = d
        self.q_proj = nn.Linear(h, cfg.num_heads * d, bias=False)
        self.k_proj = nn.Linear(h, spec.kv_heads * d, bias=False)
        self.v_proj = nn.Linear(h, spec.kv_heads * d, bias=False) if spec.sliding else None
        self.o_proj = nn.Linear(cfg.num_heads * d, h, bias=False)
        self.q_norm, self.k_norm = GemmaRMSNorm(d, eps), GemmaRMSNorm(d, eps)
        self.v_norm = GemmaRMSNorm(d, eps, scale=False)

    def project(self, x: Tensor, cos: Tensor, sin: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        # x: [B, T, hidden] -> q [B, H, T, D], k and v [B, KV, T, D]
        b, t, _ = x.shape
        q = self.q_norm(self.q_proj(x).view(b, t, -1, self.head_dim))
        k = self.k_proj(x).view(b, t, -1, self.head_dim)
        v = k if self.v_proj is None else self.v_proj(x).view(b, t, -1, self.head_dim)  # full layers: K = V
        q, k = rotate(q, cos, sin), rotate(self.k_norm(k), cos, sin)
        return q.transpose(1, 2), k.transpose(1, 2), self.v_norm(v).transpose(1, 2)

    def attend(
        self, q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None = None, causal: bool = False
    ) -> Tensor:
        # scaling 1.0: q_norm and k_norm already set the logits' scale
        y = F.scaled_dot_product_attention(
            q, k, v, attn_mask=mask, is_causal=causal, scale=1.0, enable_gqa=True
        )
        b, _, t, _ = q.shape
        return self.o_proj(y.transpose(1, 2).reshape(b, t, -1))


class GemmaMLP(nn.Module):
    def __init__(self, hidden: int, intermediate: int):
        super().__init__()
        self.gate_proj = nn.Linear(hidden, intermediate, bias=False)
        self.up_proj = nn.Linear(hidden, intermediate, bias=False)
        self.down_proj = nn.Linear(intermediate, hidden, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        return self.down_proj(F.gelu(self.gate_proj(x), approximate="tanh") * self.up_proj(x))


class Layer(nn.Module):
    """One Gemma 4 layer; the encoder and the decoder run the same weights, each with its own layer_scalar."""

    def __init__(self, cfg: GemmaConfig, spec: LayerSpec):
        super().__init__()
        h, eps = cfg.hidden_size, cfg.rms_norm_eps
        self.input_layernorm, self.post_attention_layernorm = GemmaRMSNorm(h, eps), GemmaRMSNorm(h, eps)
        self.pre_feedforward_layernorm = GemmaRMSNorm(h, eps)
        self.post_feedforward_layernorm = GemmaRMSNorm(h, eps)
        self.pre_feedforward_layernorm_2 = GemmaRMSNorm(h, eps)
        self.post_feedforward_layernorm_1 = GemmaRMSNorm(h, eps)
        self.post_feedforward_layernorm_2 = GemmaRMSNorm(h, eps)
        self.self_attn = GemmaAttention(cfg, spec)
        self.mlp = GemmaMLP(h, cfg.intermediate_size)
        self.router, self.experts = Router(cfg), Experts(cfg)
        self.register_buffer("layer_scalar", torch.ones(1))  # the decoder's
        self.register_buffer("encoder_scalar", torch.ones(1))

    def feed_forward(self, x: Tensor, attn: Tensor, scalar: Tensor) -> Tensor:
        # x: the layer's input [B, T, hidden], attn: its attention output -> the layer's output
        x = x + self.post_attention_layernorm(attn)
        flat = x.reshape(-1, x.shape[-1])  # [N, hidden]
        dense = self.post_feedforward_layernorm_1(self.mlp(self.pre_feedforward_layernorm(x)))
        weights, experts = self.router(flat)  # routed on the residual itself
        sparse = self.experts(self.pre_feedforward_layernorm_2(flat), weights, experts).view_as(x)
        mixed = dense + self.post_feedforward_layernorm_2(sparse)
        return (x + self.post_feedforward_layernorm(mixed)) * scalar


class SelfConditioning(nn.Module):
    # the previous step's soft embedding through a gated MLP, added to the canvas embedding, then a
    # weightless norm
    def __init__(self, cfg: GemmaConfig):
        super().__init__()
        self.pre_norm = GemmaRMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.post_norm = GemmaRMSNorm(cfg.hidden_size, cfg.rms_norm_eps, scale=False)
        self.mlp = GemmaMLP(cfg.hidden_size, cfg.intermediate_size)

    def forward(self, x: Tensor, soft: Tensor | None) -> Tensor:
        # x, soft: [B, C, hidden]; no soft embedding (the first step) adds exactly zero
        return self.post_norm(x if soft is None else x + self.mlp(self.pre_norm(soft)))
