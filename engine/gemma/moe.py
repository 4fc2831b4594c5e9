"""The mixture-of-experts branch: a router picks top-k experts per token; tokens are grouped by expert.

Each (token, expert) assignment is sorted by expert, so every expert multiplies one contiguous slice of rows:
one grouped matmul (torch.nn.functional.grouped_mm) where torch offers it for these shapes, else one matmul
per expert that received tokens. No Python loop ever runs over tokens. Quantized (engine/quantize.py), each
stack is an Int8Linear or Int4Linear holding all experts, multiplied one expert at a time.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from engine.gemma.config import GemmaConfig


class Router(nn.Module):
    def __init__(self, cfg: GemmaConfig):
        super().__init__()
        self.eps, self.top_k = cfg.rms_norm_eps, cfg.top_k
        self.root = cfg.hidden_size**-0.5
        self.proj = nn.Linear(cfg.hidden_size, cfg.num_experts, bias=False)
        self.scale = nn.Parameter(torch.ones(cfg.hidden_size))
        self.per_expert_scale = nn.Parameter(torch.ones(cfg.num_experts))

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        # x: [N, H] (the residual stream, not normed by a layer norm) -> weights [N, K] fp32, experts [N, K]
        h = x.float()
        h = (h * torch.pow(h.pow(2).mean(-1, keepdim=True) + self.eps, -0.5)).type_as(x)  # weightless RMSNorm
        probs = torch.softmax(self.proj(h * self.scale * self.root), dim=-1, dtype=torch.float32)
        weights, experts = torch.topk(probs, self.top_k, dim=-1)
        weights = weights / weights.sum(-1, keepdim=True)
        return weights * self.per_expert_scale[experts], experts


class Experts(nn.Module):
    stacked = ("gate_up_proj", "down_proj")  # [E, out, in] each: engine/quantize.py packs them as stacks

    def __init__(self, cfg: GemmaConfig):
        super().__init__()
        e, h, i = cfg.num_experts, cfg.hidden_size, cfg.moe_intermediate_size
        self.num_experts = e
        self.gate_up_proj = nn.Parameter(torch.empty(e, 2 * i, h))  # gate rows first, then up
        self.down_proj = nn.Parameter(torch.empty(e, h, i))

    def forward(self, x: Tensor, weights: Tensor, experts: Tensor) -> Tensor:
        # x: [N, H] (normed for the experts), weights/experts: [N, K] -> [N, H]
        n, k = experts.shape
        flat = experts.reshape(-1)  # [N*K] assignment j belongs to token j // K
        order = flat.argsort(stable=True)
        rows = x[order // k]  # [N*K, H], grouped by expert
        counts = torch.bincount(flat, minlength=self.num_experts)  # [E]
        gate, up = grouped_linear(rows, self.gate_up_proj, counts).chunk(2, dim=-1)
        y = grouped_linear(F.gelu(gate, approximate="tanh") * up, self.down_proj, counts)  # [N*K, H]
        y = torch.empty_like(y).index_copy_(0, order, y).view(n, k, -1)  # back to assignment order
        return (y * weights[..., None]).sum(1).to(x.dtype)


def grouped_linear(rows: Tensor, w: Tensor | nn.Module, counts: Tensor) -> Tensor:
    # rows: [M, in] sorted by expert, w: [E, out, in] (or a quantized stack), counts: [E] rows per expert
    # -> [M, out]
    if isinstance(w, Tensor) and uses_grouped_mm(rows, w):
        offsets = torch.cumsum(counts, dim=0, dtype=torch.int32)
        return F.grouped_mm(rows, w.transpose(-2, -1), offs=offsets)
    parts = rows.split(counts.tolist())
    if isinstance(w, Tensor):
        return torch.cat([p @ w[e].T for e, p in enumerate(parts) if p.shape[0]])
    return torch.cat([w.matmul(p, e) for e, p in enumerate(parts) if p.shape[0]])


def uses_grouped_mm(rows: Tensor, w: Tensor) -> bool:
    # torch's grouped matmul needs 16-byte aligned rows and strides; on CUDA, bf16 and compute capability 8.0+
    if not hasattr(F, "grouped_mm"):
        return False
    aligned = all(d * w.element_size() % 16 == 0 for d in w.shape[1:]) and rows.data_ptr() % 16 == 0
    aligned = aligned and w.data_ptr() % 16 == 0
    if w.device.type == "cuda":
        return aligned and w.dtype == torch.bfloat16 and torch.cuda.get_device_capability(w.device) >= (8, 0)
    return aligned and w.device.type == "cpu"
