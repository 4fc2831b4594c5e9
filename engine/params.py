"""What a caller sets for one infill: the sampler, the repository memory's mixing and the request itself.

Plain frozen dataclasses with no torch, so that code that only builds requests (the language server in remote
mode, the team server's request parsing) can import them without loading the engine.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

CONFIDENCE_KINDS = ("confidence", "margin", "entropy", "random")
DEFAULT_CANVAS = 32
DEFAULT_REFRESH = 8  # full forwards (cache refreshes) every this many denoising steps


def _bad(owner: str, field: str, value: object, expected: str) -> None:
    shown = repr(value) if len(repr(value)) <= 80 else f"{type(value).__name__} {repr(value)[:60]}..."
    raise ValueError(f"{owner}.{field} must be {expected}, got {shown}")


def _count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


@dataclass(frozen=True)
class SamplerConfig:
    """How a masked-diffusion canvas is committed, step by step (engine/sample.py)."""

    confidence: str = "confidence"  # "confidence" (top-1 p) | "margin" (p1 - p2) | "entropy" | "random"
    temperature: float = 0.0  # 0 = argmax
    top_p: float = 1.0  # nucleus mass kept when sampling (T > 0)
    top_k: int = 0  # 0 = off; only when sampling (T > 0)
    gumbel: bool = False  # LLaDA proposal: argmax(logits + T * Gumbel) in float64, conf from softmax(logits)
    threshold: float | None = 0.9  # Fast-dLLM: commit every eligible conf > threshold (at least the top one)
    tokens_per_step: int = 1  # committed per forward (with a threshold: at least this many)
    block_size: int | None = None  # semi-autoregressive blocks over the canvas; None = whole canvas
    steps: int | None = None  # LLaDA schedule: per-step counts from num_transfer_tokens (per block)

    def __post_init__(self) -> None:
        if self.confidence not in CONFIDENCE_KINDS:
            _bad("SamplerConfig", "confidence", self.confidence, f"one of {', '.join(CONFIDENCE_KINDS)}")
        if not (math.isfinite(self.temperature) and self.temperature >= 0):
            _bad("SamplerConfig", "temperature", self.temperature, "a finite number >= 0")
        if not 0 < self.top_p <= 1:
            _bad("SamplerConfig", "top_p", self.top_p, "in (0, 1]")
        if self.top_k < 0:
            _bad("SamplerConfig", "top_k", self.top_k, ">= 0 (0 = off)")
        if self.threshold is not None and not 0 < self.threshold <= 1:
            _bad("SamplerConfig", "threshold", self.threshold, "in (0, 1] or None")
        for name in ("tokens_per_step", "block_size", "steps"):
            value = getattr(self, name)
            if not (_count(value) or (value is None and name != "tokens_per_step")):
                _bad("SamplerConfig", name, value,
                     "an integer >= 1" + ("" if name == "tokens_per_step" else " or None"))


def mix_weight(top: float, half_length: float, count_prior: float, min_length: int, length: int,
               count: int) -> float:
    """top * n^2 / (n^2 + half_length^2) * c / (c + count_prior) for a match of n >= min_length bytes seen c
    times; 0 below min_length or without occurrences."""
    if length < min_length or count == 0:
        return 0.0
    return top * length**2 / (length**2 + half_length**2) * count / (count + count_prior)


@dataclass(frozen=True)
class MemoryConfig:
    """How the memory's counts are mixed into the model's probabilities at a masked position:
    p = (1 - w) * p_model + w * p_memory, with w = mix_weight(weight, half_length, count_prior, min_length, n,
    c) for a match of n bytes seen c times; a left and a right match each get their own w, summing to at most
    `weight`."""

    # defaults from bench/eval_memory.py on two held-out projects (bench/RESULTS.md): with this small network
    # the memory should decide wherever it has a match
    weight: float = 0.97
    half_length: float = 8.0  # match length (bytes) at which w reaches half of `weight`
    min_length: int = 4  # shorter matches say little about code
    count_prior: float = 0.2  # k: how much a match seen once is trusted less than one seen often
    max_length: int = 256
    max_occurrences: int = 32  # counted per match: the most recently remembered first
    right: bool = True  # also match the known canvas tokens right of a masked position
    # the checkpoint's corpus index (engine/corpus_index.py), where the project's memory has less to say:
    # w = mix_weight(corpus_weight, corpus_half_length, corpus_count_prior, corpus_min_length, n, c), times
    # what the project's own match leaves (1 - w_project / weight); 0 turns it off. Off by default: 0.5 did
    # not help on three development projects (bench/RESULTS.md, "Corpus index")
    corpus_weight: float = 0.0
    corpus_half_length: float = 16.0
    corpus_min_length: int = 8
    corpus_count_prior: float = 1.0

    def __post_init__(self) -> None:
        if not 0 <= self.weight < 1:
            _bad("MemoryConfig", "weight", self.weight, "in [0, 1)")
        if self.half_length <= 0:
            _bad("MemoryConfig", "half_length", self.half_length, "> 0")
        if not 1 <= self.min_length <= self.max_length:
            _bad("MemoryConfig", "min_length", self.min_length, f"in [1, max_length={self.max_length}]")
        if not 0 <= self.corpus_weight < 1:
            _bad("MemoryConfig", "corpus_weight", self.corpus_weight, "in [0, 1)")
        if self.corpus_half_length <= 0 or self.corpus_min_length < 1 or self.corpus_count_prior < 0:
            raise ValueError("MemoryConfig needs corpus_half_length > 0, corpus_min_length >= 1 and "
                             "corpus_count_prior >= 0")
        if self.max_occurrences < 1:
            _bad("MemoryConfig", "max_occurrences", self.max_occurrences, ">= 1")

    def mix_weight(self, length: int, count: int) -> float:
        return mix_weight(self.weight, self.half_length, self.count_prior, self.min_length, length, count)

    def corpus_mix_weight(self, length: int, count: int) -> float:
        return mix_weight(self.corpus_weight, self.corpus_half_length, self.corpus_count_prior,
                          self.corpus_min_length, length, count)


@dataclass(frozen=True)
class InfillParams:
    """One infill's settings, the same for every model (engine/api.py CompletionModel.infill).

    canvas: masks to fill; the middle ends at the first stop token, so it may come out shorter. max_canvas:
    how far the canvas may grow on checkpoints that grow it (DreamOn's expand token); None: it does not grow.
    single_line: the middle ends at its first newline. sampler: None for the model's defaults. cache: the
    approximate context cache with a full forward every `refresh` steps; None: on where the canvas has a fixed
    length. memory: mix in the model's repository memory (and its corpus index, if weighted); None: the
    network alone. A family that cannot honour a field refuses it (engine.errors.Unsupported)."""

    canvas: int = DEFAULT_CANVAS
    max_canvas: int | None = None
    single_line: bool = False
    sampler: SamplerConfig | None = None
    seed: int = 0
    cache: bool | None = None
    refresh: int = DEFAULT_REFRESH
    memory: MemoryConfig | None = None

    def __post_init__(self) -> None:
        for name in ("canvas", "refresh"):
            if not _count(getattr(self, name)):
                _bad("InfillParams", name, getattr(self, name), "an integer >= 1")
        if self.max_canvas is not None and not _count(self.max_canvas):
            _bad("InfillParams", "max_canvas", self.max_canvas, "an integer >= 1 or None")
        if not isinstance(self.single_line, bool):
            _bad("InfillParams", "single_line", self.single_line, "a bool")
        if self.cache is not None and not isinstance(self.cache, bool):
            _bad("InfillParams", "cache", self.cache, "a bool or None")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            _bad("InfillParams", "seed", self.seed, "an integer")
        if self.sampler is not None and not isinstance(self.sampler, SamplerConfig):
            _bad("InfillParams", "sampler", self.sampler, "a SamplerConfig or None")
        if self.memory is not None and not isinstance(self.memory, MemoryConfig):
            _bad("InfillParams", "memory", self.memory, "a MemoryConfig or None")

    @property
    def widest(self) -> int:
        """The most canvas positions the request may take: what the context must leave room for."""
        return max(self.canvas, self.max_canvas or 0)
