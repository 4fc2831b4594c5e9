"""DreamOn-style variable-length infilling: a committed <expand> becomes two masks, a committed EOS is
deleted.

The canvas changes length between forwards, so every forward runs over the whole rebuilt sequence (no
context cache), as DreamOn's own generator does. Otherwise it means what `denoise` means: the same sampler,
the same prior (the repository memory) mixed in, and a committed stop from `stops` beyond the model's own
(the newline of a single-line middle) ends the middle once nothing before it is masked.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from engine.errors import Cancelled
from engine.generate import only_first, shifted_rows
from engine.job import InfillJob
from engine.model import Transformer
from engine.sample import block_eligible, propose, select
from engine.tokenizer import SpecialTokens


def denoise_expand(
    model: Transformer,
    job: InfillJob,
    special: SpecialTokens,
    cancel: Callable[[], bool] | None = None,
) -> tuple[list[int], float, int, int]:
    """Returns the middle ids, its mean confidence, the forward count and the largest canvas used.

    The job's newline ids (a single line's) end the middle, kept, once no mask is left before them; the
    model's own stop tokens keep DreamOn's meaning here: delete this position."""
    assert special.expand is not None, "denoise_expand needs a checkpoint with an expand token"
    device = model.embed.weight.device
    canvas, max_canvas = job.canvas, job.params.widest
    sampler, generator, prior, ends = job.sampler, job.generator, job.prior, job.newline
    before, after = job.before, job.after
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
        if prior is not None:
            logits = prior(logits, torch.tensor(window, device=device), masked)
        x0, conf = propose(logits, sampler, generator)
        eligible = only_first(block_eligible(masked, sampler.block_size), masked, job.first_alone)
        commit = select(conf, eligible, sampler).tolist()
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
        window, confs = _cut_at_end(new_window, new_confs, ends, special.mask)
        widest = max(widest, len(window))
    kept = [(t, c) for t, c in zip(window, confs) if t != special.mask]
    window, confs = [t for t, _ in kept], [c for _, c in kept]
    mean = sum(confs) / len(confs) if confs else 0.0
    return window, mean, forwards, widest


def _cut_at_end(window: list[int], confs: list[float], ends: frozenset[int], mask: int):
    # the first committed end token with only committed tokens before it closes the middle
    for i, token in enumerate(window):
        if token == mask:
            break
        if token in ends:
            return window[: i + 1], confs[: i + 1]
    return window, confs
