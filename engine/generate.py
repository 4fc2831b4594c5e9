"""The denoising loop: fill a canvas of masks between fixed context, several positions per forward."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from engine.errors import Cancelled
from engine.job import InfillJob
from engine.kv_cache import KVCache
from engine.model import Transformer
from engine.prior import Prior
from engine.sample import SamplerConfig, block_eligible, num_transfer_tokens, propose, select
from engine.tokenizer import SpecialTokens

# (canvas tokens [L], forward index) -> logits for the canvas rows [L, V], already shifted
LogitsFn = Callable[[Tensor, int], Tensor]


def shifted_rows(start: int, end: int, shift: bool, offset: int = 0) -> Tensor:
    # Which output row predicts each canvas position: Dream-style models read position p from output p - 1
    # (position 0 reads its own output, as Dream's cat(logits[:, :1], logits[:, :-1]) does).
    rows = torch.arange(start, end)
    if shift:
        rows = (rows - 1).clamp(min=0)
    return rows - offset


def window_start(start: int, shift: bool) -> int:
    # the first position whose output a cached (window) forward reads: one before the canvas when shifted
    return max(start - 1, 0) if shift else start


@dataclass(frozen=True)
class CanvasLayout:
    """Where a canvas sits in its sequence and which output rows predict it, for a full forward (every
    position) and for a window forward (from `window` to the canvas's end, against cached context)."""

    start: int
    end: int
    window: int
    full_rows: Tensor  # [L] output rows of a full forward
    window_rows: Tensor  # [L] output rows of a window forward

    @classmethod
    def of(cls, start: int, end: int, shift: bool) -> CanvasLayout:
        window = window_start(start, shift)
        return cls(start, end, window, shifted_rows(start, end, shift),
                   shifted_rows(start, end, shift, offset=window))


def full_forward_due(step: int, refresh: int | None) -> bool:
    """Whether the forward for denoising step `step` runs over the whole sequence: always without a context
    cache (refresh None), else every `refresh` steps, which (re)fills the cache."""
    return refresh is None or step % refresh == 0


class CanvasLogits:
    """Logits for the canvas of one sequence [1, T], with an optional approximate cache of the fixed context.

    refresh None: every call is a full forward (exact). Otherwise a full forward every `refresh` calls fills
    the cache; in between only the canvas window is recomputed against the cached context keys.
    """

    def __init__(self, model: Transformer, ids: Tensor, start: int, end: int, refresh: int | None):
        self.model, self.ids, self.refresh = model, ids, refresh
        self.layout = CanvasLayout.of(start, end, model.cfg.shift)
        cfg, p = model.cfg, model.embed.weight
        self.cache = (
            KVCache(cfg.num_layers, 1, cfg.num_kv_heads, ids.shape[1], cfg.head_dim, p.dtype, p.device)
            if refresh is not None
            else None
        )

    @classmethod
    def for_job(cls, model: Transformer, job: InfillJob, mask: int) -> CanvasLogits:
        ids = torch.tensor([job.sequence(mask)], device=model.embed.weight.device)
        refresh = None if job.params.cache is False else job.params.refresh
        return cls(model, ids, job.start, job.start + job.canvas, refresh)

    def __call__(self, canvas: Tensor, step: int) -> Tensor:
        at = self.layout
        self.ids[0, at.start : at.end] = canvas
        if full_forward_due(step, self.refresh):
            return self.model(self.ids, 0, self.cache, rows=at.full_rows)[0].float()
        window = self.ids[:, at.window : at.end]
        return self.model(window, at.window, self.cache, rows=at.window_rows)[0].float()


def stop_rules(logits: Tensor, masked: Tensor, stops: Tensor) -> tuple[Tensor, Tensor]:
    # A stop token may only follow real tokens: not at the first canvas position, and not while any position
    # before it is still masked. Otherwise confident pads are committed first and empty the middle.
    # Positions whose best guess is a stop that is not yet allowed are deferred rather than filled with junk.
    wants_stop = torch.isin(logits.argmax(-1), stops)
    open_before = torch.cumsum(masked.int(), 0) - masked.int()  # masked positions strictly before j
    allowed = open_before == 0
    allowed[0] = False
    vals = logits[:, stops]
    vals[~allowed] = float("-inf")
    logits[:, stops] = vals
    return logits, wants_stop & ~allowed


def eligible_positions(masked: Tensor, deferred: Tensor, block_size: int | None) -> Tensor:
    eligible = block_eligible(masked, block_size)
    ready = eligible & ~deferred
    if bool(ready.any()):
        return ready
    first = torch.zeros_like(masked)  # everything left wants to stop early: fill the leftmost hole
    first[int(masked.int().argmax())] = True
    return first


def only_first(eligible: Tensor, masked: Tensor, alone: bool) -> Tensor:
    # a healed first position (engine/heal.py) is committed before any other: what follows depends on which
    # of the tokens that extend the typed text it is
    if not alone or not bool(masked[0]):
        return eligible
    only = torch.zeros_like(eligible)
    only[0] = True
    return only


def step_schedule(length: int, sampler: SamplerConfig) -> list[int] | None:
    # LLaDA: `steps` split evenly over the semi-autoregressive blocks, each block's count spread over its
    # steps
    if not sampler.steps:
        return None
    block = sampler.block_size or length
    sizes = [min(block, length - b) for b in range(0, length, block)]
    per_block = max(sampler.steps // len(sizes), 1)
    return [n for size in sizes for n in num_transfer_tokens(size, min(per_block, size))]


class Denoising:
    """One canvas between forwards: `step` commits from one forward's logits until `done`.

    The first committed stop token (default: the checkpoint's end-of-text/pad ids) ends the middle: every
    position after it becomes pad. The unbatched loop (`denoise`) and the batched one (engine/batch.py) both
    advance a canvas only through `step`, so they commit the same tokens from the same logits.
    """

    def __init__(
        self,
        length: int,
        special: SpecialTokens,
        sampler: SamplerConfig,
        generator: torch.Generator | None,
        device: torch.device | str = "cpu",
        stops: frozenset[int] | None = None,
        prior: Prior | None = None,
        first_alone: bool = False,
    ):
        self.special, self.sampler, self.generator, self.prior = special, sampler, generator, prior
        self.first_alone = first_alone  # see only_first()
        self.tokens = torch.full((length,), special.mask, dtype=torch.long, device=device)  # [L]
        self.conf = torch.zeros(length, device=device)  # [L] commit probabilities
        self.masked = torch.ones(length, dtype=torch.bool, device=device)  # [L]
        self.stops = torch.tensor(sorted(special.stops if stops is None else stops), dtype=torch.long,
                                  device=device)
        self.schedule = step_schedule(length, sampler)
        self.forwards = 0

    @classmethod
    def for_job(cls, job: InfillJob, special: SpecialTokens, device: torch.device | str) -> Denoising:
        return cls(job.canvas, special, job.sampler, job.generator, device, job.stops, job.prior,
                   job.first_alone)

    @property
    def done(self) -> bool:
        return not bool(self.masked.any())

    def step(self, logits: Tensor) -> None:
        # logits: [L, V] for the canvas, already shifted
        if self.prior is not None:
            logits = self.prior(logits, self.tokens, self.masked)
        logits, deferred = stop_rules(logits, self.masked, self.stops)
        x0, conf = propose(logits, self.sampler, self.generator)
        schedule = self.schedule
        n_fixed = schedule[min(self.forwards, len(schedule) - 1)] if schedule else None
        eligible = only_first(eligible_positions(self.masked, deferred, self.sampler.block_size),
                               self.masked, self.first_alone)
        commit = select(conf, eligible, self.sampler, n_fixed)
        self.forwards += 1
        self.tokens = torch.where(commit, x0, self.tokens)
        self.conf = torch.where(commit, conf.to(self.conf.dtype), self.conf)
        self.masked &= ~commit
        is_stop = torch.isin(self.tokens, self.stops) & ~self.masked
        if bool(is_stop.any()):
            first = int(is_stop.nonzero()[0])
            self.tokens[first + 1 :] = self.special.pad
            self.masked[first + 1 :] = False


def denoise(state: Denoising, logits_fn: LogitsFn, cancel: Callable[[], bool] | None = None) -> Denoising:
    """Step `state` with `logits_fn` until every position is committed; cancel() is polled before each
    forward and raises engine.errors.Cancelled."""
    while not state.done:
        if cancel is not None and cancel():
            raise Cancelled()
        state.step(logits_fn(state.tokens, state.forwards))
    return state


def middle_of(tokens: Tensor, conf: Tensor, special: SpecialTokens) -> tuple[list[int], float]:
    """The middle ends at the first stop token in the canvas; its confidence is the mean commit
    probability."""
    ids = tokens.tolist()
    end = next((i for i, t in enumerate(ids) if t in special.stops), len(ids))
    mean = float(conf[:end].mean()) if end else 0.0
    return ids[:end], mean
