"""DiffusionLM: a loaded checkpoint (weights, family, tokenizer) and its infill entry point."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from engine.expand import denoise_expand
from engine.families import Family
from engine.generate import CanvasLogits, denoise, middle_of
from engine.load import load_transformer
from engine.memory import MemoryConfig, MemoryPrior, RepositoryMemory, recall
from engine.model import Transformer
from engine.sample import SamplerConfig
from engine.tokenizer import Tokenizer

DEFAULT_MODEL = Path(__file__).parent / "default_model"
DEFAULT_CANVAS = 32
DEFAULT_REFRESH = 8  # full forwards (cache refreshes) every this many denoising steps


@dataclass(frozen=True)
class InfillStats:
    forward_passes: int
    tokens_per_forward: float  # canvas positions resolved per forward
    canvas: int
    ms: float


@dataclass(frozen=True)
class InfillResult:
    text: str
    confidence: float
    stats: InfillStats


class DiffusionLM:
    def __init__(self, model: Transformer, family: Family, tokenizer: Tokenizer, path: Path):
        self.model, self.family, self.tokenizer, self.path = model, family, tokenizer, path
        self.special = tokenizer.special
        self.device = model.embed.weight.device
        # texts the caller wants remembered (open documents, workspace files), by name; see engine/memory.py
        self.memory = RepositoryMemory()

    @torch.inference_mode()
    def __call__(self, input_ids: Tensor) -> Tensor:
        # [B, T] -> raw logits [B, T, V], no shift applied
        return self.model(input_ids.to(self.device))

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer.encode(text))

    def context_ids(self, prefix: str, suffix: str, canvas: int) -> tuple[list[int], list[int]]:
        """Token ids before and after the canvas, cut to fit the model's positions (prefix keeps its end)."""
        head = (
            [self.special.bos]
            if self.special.bos is not None and self.special.bos != self.special.eos
            else []
        )
        tail = [self.special.eos] if self.family.infill_eos else []
        pre, suf = self.tokenizer.encode(prefix), self.tokenizer.encode(suffix)
        room = self.model.cfg.max_position_embeddings - canvas - len(head) - len(tail)
        if room < 0:
            limit = self.model.cfg.max_position_embeddings
            raise ValueError(f"canvas {canvas} does not fit the model's {limit} positions")
        keep_suffix = min(len(suf), max(room // 4, room - len(pre)))
        suf = suf[:keep_suffix]
        pre = pre[max(len(pre) - (room - len(suf)), 0) :]
        return head + pre, suf + tail

    @torch.inference_mode()
    def infill(
        self,
        prefix: str,
        suffix: str,
        *,
        canvas: int | None = None,
        max_canvas: int | None = None,
        sampler: SamplerConfig | None = None,
        cache: bool = True,
        refresh: int = DEFAULT_REFRESH,
        seed: int = 0,
        cancel: Callable[[], bool] | None = None,
        single_line: bool = False,
        memory: MemoryConfig | None = MemoryConfig(),
    ) -> InfillResult:
        t0 = time.perf_counter()
        sampler = sampler or SamplerConfig()
        n = canvas or DEFAULT_CANVAS
        if n < 1 or (max_canvas is not None and max_canvas < 1) or refresh < 1:
            raise ValueError("canvas, max_canvas and refresh must be >= 1")
        generator = torch.Generator(self.device).manual_seed(seed)
        prefix, healed = heal(prefix)
        before, after = self.context_ids(prefix, suffix, max(n, max_canvas or 0))
        if self.special.expand is not None and (max_canvas or n) > n:
            ids, conf, forwards, n = denoise_expand(
                self.model, before, after, n, max_canvas, self.special, sampler, generator, cancel
            )
        else:
            seq = torch.tensor([before + [self.special.mask] * n + after], device=self.device)
            logits_fn = CanvasLogits(self.model, seq, len(before), len(before) + n, cache, refresh)
            # a single-line middle ends at its first newline token, which is kept: it may carry text before "\n"
            stops = self.special.stops | (self.tokenizer.newline_ids if single_line else frozenset())
            use = memory is not None and self.memory
            prior = self.memory_prior(prefix, suffix, memory, healed) if use else None
            tokens, confs, forwards = denoise(
                logits_fn, n, self.special, sampler, generator, cancel, self.device, stops, prior
            )
            ids, conf = middle_of(tokens, confs, self.special)
        text = unheal(self.tokenizer.decode(ids), healed)
        if single_line:
            text = text.split("\n", 1)[0]
        ms = (time.perf_counter() - t0) * 1000
        stats = InfillStats(forwards, n / max(forwards, 1), n, ms)
        return InfillResult(text, conf, stats)

    def memory_prior(self, prefix: str, suffix: str, memory: MemoryConfig, healed: str = "") -> MemoryPrior:
        skip = self.special.stops | {self.special.mask}
        return MemoryPrior(self.memory.index, memory, prefix, suffix, self.tokenizer.encode_batch,
                           self.tokenizer.decode, skip, healed)

    def recall(self, prefix: str, suffix: str = "", max_tokens: int = 32, single_line: bool = False,
               memory: MemoryConfig = MemoryConfig()) -> str:
        """The repository memory's own guess after `prefix`, without the network (see memory.recall)."""
        stops = self.special.stops | (self.tokenizer.newline_ids if single_line else frozenset())
        prefix, healed = heal(prefix)
        ids = recall(self.memory_prior(prefix, suffix, memory, healed), max_tokens, stops)
        text = unheal(self.tokenizer.decode([t for t in ids if t not in self.special.stops]), healed)
        return text.split("\n", 1)[0] if single_line else text


def heal(prefix: str) -> tuple[str, str]:
    """(prefix, blanks taken off its end). A prefix that ends in spaces after code on its line ("return ")
    ends in a token that real text almost never has there: in files the space belongs to the next word
    (" a"), so the canvas is asked for " a" instead. Blank lines' indentation is left: infill rows train
    it."""
    line = prefix[prefix.rfind("\n") + 1 :]
    kept = line.rstrip(" \t")
    if not kept or kept == line:
        return prefix, ""
    return prefix[: len(prefix) - (len(line) - len(kept))], line[len(kept) :]


def unheal(text: str, healed: str) -> str:
    # the typed blanks are in the document already
    if not healed:
        return text
    return text[len(healed) :] if text.startswith(healed) else text.lstrip(" \t")


def load_model(
    path: str | Path | None = None, device: str = "cpu", dtype: str | torch.dtype = "float32"
) -> DiffusionLM:
    """Load a checkpoint folder (or the embedded default model when path is None)."""
    folder = Path(path) if path is not None else DEFAULT_MODEL
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} requested but CUDA is not available")
    model, family, config = load_transformer(folder, device, dtype)
    tokenizer = Tokenizer(folder, config, family.mask_tokens)
    return DiffusionLM(model, family, tokenizer, folder)
