"""Masked-diffusion objective (the MDLM/LLaDA ELBO), on Dream's shifted logits.

Per row: loss = (1/t) * sum(CE over masked positions) / L, with L the row's length (T for a plain row, the
canvas length for an infill row) and t ~ U(t_min, 1). Dividing by the number of masked tokens instead of L,
while keeping 1/t, over-weights low-t rows by up to 1/t_min and stalls training.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

T_MIN = 0.01  # below this a canvas of a few tokens is almost never masked: no signal, only variance


def sample_t(batch: int, generator: torch.Generator, t_min: float = T_MIN) -> Tensor:
    # stratified over the batch: one draw per 1/B slice of [0, 1), in a random order
    u = (torch.rand(1, generator=generator) + torch.arange(batch) / batch) % 1.0
    u = u[torch.randperm(batch, generator=generator)]
    return t_min + (1.0 - t_min) * u  # [B]


def add_noise(ids: Tensor, maskable: Tensor, t: Tensor, mask_id: int, generator: torch.Generator):
    """noisy ids [B, T] and masked [B, T] bool: each maskable position masked with probability t of its
    row."""
    u = torch.rand(ids.shape, generator=generator).to(ids.device)  # CPU generator: same noise on any device
    masked = (u < t.to(ids.device)[:, None]) & maskable
    return torch.where(masked, torch.full_like(ids, mask_id), ids), masked


def add_noise_count(ids: Tensor, maskable: Tensor, length: Tensor, mask_id: int, generator: torch.Generator):
    """The same ELBO with far less variance: per row draw k ~ U{1..L} (stratified over the batch) and mask
    exactly k maskable positions. Integrating Bernoulli(t) masks against 1/t dt gives each k the weight 1/k,
    so (1/t) * sum / L with t = k / L (returned) is unbiased for the same bound, and never weights one masked
    token of a short canvas by 1/(t * L) >> 1 as a small t does. noisy [B, T], masked [B, T], t [B]."""
    k = (sample_t(ids.shape[0], generator, t_min=0.0) * length).floor().clamp(max=length - 1) + 1  # [B]
    u = torch.rand(ids.shape, generator=generator).to(ids.device)
    u = torch.where(maskable, u, torch.full_like(u, 2.0))  # never chosen before a maskable position
    ranks = u.argsort(dim=1).argsort(dim=1)
    masked = (ranks < k.to(ids.device)[:, None]) & maskable
    return torch.where(masked, torch.full_like(ids, mask_id), ids), masked, k / length


def shift(logits: Tensor) -> Tensor:
    # Dream: the prediction for position i is output i - 1 (position 0 reads its own output)
    return torch.cat([logits[:, :1], logits[:, :-1]], dim=1)


def row_losses(ce: Tensor, masked: Tensor, t: Tensor, length: Tensor) -> Tensor:
    """ce, masked: [B, T]; t, length: [B] -> [B]."""
    return (ce * masked).sum(dim=1) / length / t


def diffusion_loss(logits: Tensor, ids: Tensor, masked: Tensor, t: Tensor, length: Tensor) -> Tensor:
    """Mean over rows of the ELBO term. logits: raw (unshifted) model output [B, T, V]."""
    ce = F.cross_entropy(shift(logits).flatten(0, 1).float(), ids.flatten(), reduction="none")
    return row_losses(ce.view_as(ids), masked, t, length).mean()
