"""DiffusionGemma's denoising step as pure functions: temperature schedule, entropy-bound acceptance,
renoising.

The step follows transformers' `DiffusionGemmaGenerationMixin._denoising_step` and draws its randomness in the
same order (one multinomial sample per position, then the fresh noise), from an explicit torch.Generator.
Settings come from the checkpoint's generation_config.json, else transformers' defaults.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from engine.errors import CheckpointError


@dataclass(frozen=True)
class Sampling:
    steps: int = 48  # max_denoising_steps per canvas
    entropy_bound: float = 0.1  # accept the lowest-entropy positions while sum(H) - max(H) <= bound
    t_min: float | None = 0.4  # temperature at the last step; t_min or t_max None: no temperature
    t_max: float | None = 0.8  # temperature at the first step
    stability: int | None = 1  # stop once the argmax canvas held this many steps ...
    confidence: float | None = 0.005  # ... and mean entropy < this; either None: always `steps` forwards
    max_new_tokens: int = 256

    def __post_init__(self) -> None:
        for name in ("steps", "max_new_tokens"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                _bad(name, value, "an integer >= 1")
        if not (isinstance(self.entropy_bound, (int, float)) and self.entropy_bound > 0):
            _bad("entropy_bound", self.entropy_bound, "a number > 0")
        if self.temperatures and not 0 <= self.t_min < self.t_max:
            _bad("t_max", self.t_max, f"above t_min ({self.t_min}) >= 0")
        if self.stability is not None and (not isinstance(self.stability, int) or self.stability < 0):
            _bad("stability", self.stability, "an integer >= 0 or None")
        if self.confidence is not None and not self.confidence > 0:
            _bad("confidence", self.confidence, "a number > 0 or None")

    @property
    def temperatures(self) -> bool:
        return self.t_min is not None and self.t_max is not None

    @property
    def stops_early(self) -> bool:
        return self.stability is not None and self.confidence is not None

    @classmethod
    def from_checkpoint(cls, folder: Path) -> Sampling:
        """generation_config.json's settings; absent or null fields keep transformers' defaults."""
        path = folder / "generation_config.json"
        if not path.exists():
            return cls()
        try:
            d = json.loads(path.read_text(encoding="utf-8"))
        except ValueError as e:
            raise CheckpointError(f"{path}: not valid JSON ({e})") from None
        names = {"max_denoising_steps": "steps", "stability_threshold": "stability",
                 "confidence_threshold": "confidence", "t_min": "t_min", "t_max": "t_max",
                 "max_new_tokens": "max_new_tokens"}
        given = {ours: d[theirs] for theirs, ours in names.items() if d.get(theirs) is not None}
        bound = (d.get("sampler_config") or {}).get("entropy_bound")
        if bound is not None:
            given["entropy_bound"] = bound
        try:
            return cls(**given)
        except ValueError as e:
            raise CheckpointError(f"{path}: {e}") from None


def _bad(field: str, value: object, expected: str) -> None:
    raise ValueError(f"Sampling.{field} must be {expected}, got {value!r}")


def temperature(s: Sampling, remaining: int) -> float:
    # transformers counts steps down, N..1: t_max at the first step, t_min + (t_max - t_min) / N at the last
    if not s.temperatures:
        return 1.0
    return s.t_min + (s.t_max - s.t_min) * (remaining / s.steps)


def entropy(logits: Tensor) -> Tensor:
    # logits: [..., V], finite (softcapped) -> nats [...]: Categorical(logits=...).entropy()
    logp = torch.log_softmax(logits.float(), dim=-1)
    return -(logp.exp() * logp).sum(-1)


def accept(h: Tensor, bound: float) -> Tensor:
    # h: [B, C] -> accepted [B, C] bool: the k lowest-entropy positions with sum(H_1..k) - H_k <= bound
    # (arXiv 2505.24857); the lowest one is always accepted
    sorted_h, order = torch.sort(h, dim=-1)
    keep = torch.cumsum(sorted_h, dim=-1) - sorted_h <= bound
    return torch.zeros_like(keep).scatter(-1, order, keep)


@dataclass(frozen=True)
class Step:
    canvas: Tensor  # [B, C] the next canvas: accepted samples, fresh uniform noise elsewhere
    argmax: Tensor  # [B, C] the denoiser's first choices (what a finished canvas commits)
    logits: Tensor  # [B, C, V] fp32, temperature-scaled: the next step's self-conditioning
    accepted: Tensor  # [B, C] bool
    entropy: Tensor  # [B, C]


def step(logits: Tensor, canvas: Tensor, remaining: int, s: Sampling, vocab: int,
         generator: torch.Generator | None) -> Step:
    """One denoising step from the decoder's logits [B, C, V] for canvas [B, C]; `remaining` counts N..1."""
    b, c = canvas.shape
    scaled = logits.float() / temperature(s, remaining)
    probs = torch.softmax(scaled, dim=-1)
    sample = torch.multinomial(probs.view(-1, probs.shape[-1]), 1, generator=generator).view(b, c)
    h = entropy(scaled)
    accepted = accept(h, s.entropy_bound)
    noise = torch.randint(0, vocab, (b, c), generator=generator, device=canvas.device)
    return Step(torch.where(accepted, sample, noise), scaled.argmax(-1), scaled, accepted, h)


class StableStop:
    """transformers' StableAndConfidentStoppingCriteria: a row is done when its argmax canvas equals the last
    `stability` ones and its mean entropy is below `confidence`."""

    def __init__(self, s: Sampling):
        self.s = s
        self.history: Tensor | None = None  # [stability, B, C]

    def __call__(self, argmax: Tensor, h: Tensor) -> Tensor:
        # argmax: [B, C], h: [B, C] entropies of the scaled logits -> done [B] bool
        if self.s.stability == 0:
            stable = torch.ones(argmax.shape[0], dtype=torch.bool, device=argmax.device)
        else:
            if self.history is None:
                self.history = torch.full((self.s.stability, *argmax.shape), -1, device=argmax.device)
            stable = (self.history == argmax[None]).all(-1).all(0)
            self.history = torch.cat([self.history[1:], argmax[None]])
        return stable & (h.mean(-1) < self.s.confidence)


def canvases(max_new_tokens: int, canvas_length: int) -> int:
    return math.ceil(max_new_tokens / canvas_length)
