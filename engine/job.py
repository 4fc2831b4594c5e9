"""An infill request prepared for the denoiser: tokens, settings, prior, and how the canvas becomes text.

DiffusionLM.prepare makes one; the single-request path (DiffusionLM.run), the growing canvas
(engine/expand.py) and the batcher (engine/batch.py) all denoise it the same way (engine.generate.Denoising).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace

import torch

from engine.api import InfillResult, InfillStats
from engine.heal import unheal
from engine.params import InfillParams, SamplerConfig
from engine.prior import Prior
from engine.tokenizer import Tokenizer


@dataclass(frozen=True)
class InfillJob:
    """The generator is the job's own: it advances as the job is denoised."""

    before: list[int]  # ids left of the canvas (BOS included), cut to fit
    after: list[int]  # ids right of it (the family's EOS included)
    params: InfillParams
    grows: bool  # a checkpoint with an expand token and max_canvas > canvas: engine/expand.py
    generator: torch.Generator
    newline: frozenset[int]  # a single-line middle's newline ids (empty otherwise)
    stops: frozenset[int]  # the checkpoint's stops and newline
    prior: Prior | None  # the repository memory and the healed first token, or None
    healed: str  # text taken off the prefix, which the middle starts with (engine/heal.py)
    first_alone: bool = False  # a healed token at the first position, committed before the rest

    @property
    def canvas(self) -> int:
        return self.params.canvas

    @property
    def sampler(self) -> SamplerConfig:
        return self.params.sampler or SamplerConfig()

    @property
    def start(self) -> int:
        return len(self.before)

    def sequence(self, mask: int) -> list[int]:
        return self.before + [mask] * self.canvas + self.after

    def result(self, tokenizer: Tokenizer, ids: list[int], conf: float, stats: InfillStats,
               t0: float) -> InfillResult:
        # stats.ms is filled in here: from t0 (time.perf_counter) until the text is ready
        text = unheal(tokenizer.decode(ids), self.healed)
        if self.params.single_line:
            text = text.split("\n", 1)[0]
        return InfillResult(text, conf, replace(stats, ms=(time.perf_counter() - t0) * 1000))
