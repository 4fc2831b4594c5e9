"""DreamOn-style variable-length infilling: a committed <expand> becomes two masks, a committed EOS is deleted.

The canvas changes length between forwards, so every forward runs over the whole rebuilt sequence (no
context cache), as DreamOn's own generator does.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from engine.errors import Cancelled
from engine.generate import shifted_rows
from engine.model import Transformer
from engine.sample import SamplerConfig, block_eligible, propose, select
from engine.tokenizer import SpecialTokens


def denoise_expand(
    model: Transformer,
    before: list[int],
    after: list[int],
    canvas: int,
    max_canvas: int,
    special: SpecialTokens,
    sampler: SamplerConfig,
    generator: torch.Generator | None,
    cancel: Callable[[], bool] | None = None,
) -> tuple[list[int], float, int, int]:
    """Returns the middle ids, its mean confidence, the forward count and the largest canvas used."""
    assert special.expand is not None, "denoise_expand needs a checkpoint with an expand token"
    device = model.embed.weight.device
    window = [special.mask] * canvas
    confs: list[float] = [0.0] * canvas
    forwards, widest = 0, canvas
    budget = 2 * max_canvas + canvas  # expand/delete can oscillate; DreamOn also runs a fixed step count
    while special.mask in window and forwards < budget:
        if cancel is not None and cancel():
            raise Cancelled()
        ids = torch.tensor([before + window + after], device=device)
        start = len(before)
        logits = model(ids, rows=shifted_rows(start, start + len(window), model.cfg.shift))[
            0
        ].float()  # [L, V]
        forwards += 1
        if len(window) >= max_canvas:
            logits[:, special.expand] = float("-inf")
        masked = torch.tensor([t == special.mask for t in window], device=device)
        x0, conf = propose(logits, sampler, generator)
        commit = select(conf, block_eligible(masked, sampler.block_size), sampler).tolist()
        x0, conf = x0.tolist(), conf.tolist()
        new_window, new_confs = [], []
        for i, token in enumerate(window):
            if not commit[i]:
                new_window.append(token)
                new_confs.append(confs[i])
            elif x0[i] == special.expand and len(new_window) + (len(window) - i) < max_canvas:
                new_window += [special.mask, special.mask]
                new_confs += [0.0, 0.0]
            elif x0[i] in special.stops or x0[i] == special.expand:
                continue  # delete: the middle is one position shorter
            else:
                new_window.append(x0[i])
                new_confs.append(conf[i])
        window, confs = new_window, new_confs
        widest = max(widest, len(window))
    kept = [(t, c) for t, c in zip(window, confs) if t != special.mask]
    window, confs = [t for t, _ in kept], [c for _, c in kept]
    mean = sum(confs) / len(confs) if confs else 0.0
    return window, mean, forwards, widest
