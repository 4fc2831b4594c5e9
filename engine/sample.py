"""Per-step sampler math for masked-diffusion decoding, as pure functions.

The denoising loop (engine/generate.py) calls, once per forward:
`block_eligible` over the canvas, `propose` on the masked positions' logits, then `select` to choose
which proposals to commit. Randomness comes only from the explicit `torch.Generator` (on the logits'
device; None falls back to torch's global RNG).
"""

from __future__ import annotations

import torch
from torch import Tensor

from engine.params import SamplerConfig

# ---- proposal: one candidate token and one confidence per masked position


def propose(logits: Tensor, cfg: SamplerConfig, generator: torch.Generator | None) -> tuple[Tensor, Tensor]:
    # logits: [M, V] for the masked positions -> x0 [M] long, conf [M] float32
    if cfg.gumbel:
        scores = logits.to(wide(logits.device))
        if cfg.temperature > 0:
            scores = filter_logits(scores, cfg.top_p, cfg.top_k)
        x0 = add_gumbel_noise(scores, cfg.temperature, generator).argmax(-1)
        probs = torch.softmax(logits.to(wide(logits.device)), dim=-1)  # LLaDA: confidence without temperature
    elif cfg.temperature > 0:
        # Dream order: logits / T -> top-p -> top-k -> softmax -> sample
        probs = torch.softmax(filter_logits(logits.float() / cfg.temperature, cfg.top_p, cfg.top_k), dim=-1)
        x0 = torch.multinomial(probs, 1, generator=generator).squeeze(-1)
    else:
        probs = torch.softmax(logits.float(), dim=-1)  # filters cannot change the argmax; keep true p
        x0 = probs.argmax(-1)
    return x0, confidence(probs, x0, cfg.confidence, generator).float()


def confidence(probs: Tensor, x0: Tensor, kind: str, generator: torch.Generator | None) -> Tensor:
    # probs: [M, V], x0: [M] -> [M], higher = commit sooner
    if kind == "confidence":
        return probs.gather(-1, x0[:, None]).squeeze(-1)
    if kind == "margin":
        top2 = probs.topk(2, dim=-1).values  # [M, 2]
        return top2[:, 0] - top2[:, 1]
    if kind == "entropy":
        # exp(-H): same order as negative entropy, but in (0, 1] so a threshold applies too
        return torch.special.xlogy(probs, probs).sum(-1).exp()
    if kind == "random":
        return torch.rand(probs.shape[0], generator=generator, device=probs.device, dtype=probs.dtype)
    raise ValueError(f"unknown confidence kind {kind!r}")


def wide(device: torch.device) -> torch.dtype:
    # Apple's MPS has no float64; everywhere else the Gumbel proposal runs in float64
    return torch.float32 if device.type == "mps" else torch.float64


def filter_logits(logits: Tensor, top_p: float, top_k: int) -> Tensor:
    # logits: [M, V] -> [M, V] with tokens outside the nucleus / top-k set to -inf
    if top_p < 1:
        sorted_logits, order = logits.sort(dim=-1, descending=True)
        sorted_p = sorted_logits.softmax(-1)
        drop_sorted = sorted_p.cumsum(-1) - sorted_p >= top_p  # mass before this token already reaches top_p
        drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
        logits = logits.masked_fill(drop, float("-inf"))
    if top_k > 0:
        kth = logits.topk(min(top_k, logits.shape[-1]), dim=-1).values[:, -1:]  # [M, 1]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    return logits


def add_gumbel_noise(logits: Tensor, temperature: float, generator: torch.Generator | None) -> Tensor:
    # logits: [..., V] -> float64 [..., V]; argmax samples softmax(logits / T) (Gumbel-max, LLaDA)
    # float64 because low-precision Gumbel noise measurably hurts quality (LLaDA generate.py).
    dtype = wide(logits.device)
    logits = logits.to(dtype)
    if temperature == 0:
        return logits
    u = torch.rand(logits.shape, generator=generator, device=logits.device, dtype=dtype)
    gumbel = -torch.log(-torch.log(u.clamp_min(torch.finfo(dtype).tiny)))
    return logits + temperature * gumbel


# ---- selection: which proposals to commit this forward


def select(conf: Tensor, eligible: Tensor, cfg: SamplerConfig, n_fixed: int | None = None) -> Tensor:
    # conf: [M], eligible: [M] bool -> commit [M] bool
    # Commits the top-n eligible positions (n = n_fixed, else tokens_per_step; at least 1), plus, with a
    # threshold, every eligible position whose conf exceeds it. Equal confidences commit leftmost first:
    # topk's order among ties differs between CPU kernels (AVX2 / AVX-512) and devices.
    n = n_fixed if n_fixed is not None else cfg.tokens_per_step
    n = min(max(n, 1), conf.shape[0])
    score = conf.masked_fill(~eligible, float("-inf"))
    commit = torch.zeros_like(eligible)
    commit[score.sort(descending=True, stable=True).indices[:n]] = True
    if cfg.threshold is not None:
        commit |= conf > cfg.threshold
    return commit & eligible


def num_transfer_tokens(n_masked: int, steps: int) -> list[int]:
    # LLaDA schedule: n_masked split over steps, the remainder going to the first steps
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    if n_masked < 0:
        raise ValueError(f"n_masked must be >= 0, got {n_masked}")
    base, extra = divmod(n_masked, steps)
    return [base + 1] * extra + [base] * (steps - extra)


def block_eligible(masked: Tensor, block_size: int | None) -> Tensor:
    # masked: [L] bool over the canvas (blocks start at canvas position 0) -> eligible [L] bool:
    # the masked positions of the leftmost block that still has a mask
    if block_size is None:
        return masked
    first = masked.int().argmax()  # first masked position (0 when none, then masked is all False)
    pos = torch.arange(masked.shape[0], device=masked.device)
    return masked & (pos // block_size == first // block_size)
