"""DiffusionLM: a loaded checkpoint (weights, family, tokenizer) and its infill entry point."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from engine import fit, hub
from engine.errors import DeviceUnavailable
from engine.expand import denoise_expand
from engine.families import Family
from engine.generate import CanvasLogits, denoise, middle_of
from engine.load import load_transformer, parse_dtype, read_config
from engine.memory import MemoryConfig, MemoryPrior, RepositoryMemory, recall
from engine.model import Transformer
from engine.quantize import parse_quantize
from engine.sample import SamplerConfig
from engine.tokenizer import Tokenizer

if TYPE_CHECKING:
    from engine.gemma import DiffusionGemmaLM

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

    @property
    def max_positions(self) -> int:
        """Tokens the model can see at once: context before and after plus the canvas."""
        return self.model.cfg.max_position_embeddings

    @property
    def dtype(self) -> torch.dtype:
        return self.model.embed.weight.dtype

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer.encode(text))

    def _ends(self) -> tuple[list[int], list[int]]:
        # special tokens around the text: a BOS that is not also the EOS; the family's EOS after the suffix
        bos, eos = self.special.bos, self.special.eos
        head = [bos] if bos is not None and bos != eos else []
        return head, [eos] if self.family.infill_eos else []

    def context_room(self, canvas: int) -> int:
        """Tokens of prefix plus suffix that fit beside a canvas of `canvas` tokens, special tokens aside."""
        head, tail = self._ends()
        return self.max_positions - canvas - len(head) - len(tail)

    def context_ids(self, prefix: str, suffix: str, canvas: int) -> tuple[list[int], list[int]]:
        """Token ids before and after the canvas, cut to fit the model's positions (prefix keeps its end)."""
        head, tail = self._ends()
        pre, suf = self.tokenizer.encode(prefix), self.tokenizer.encode(suffix)
        room = self.context_room(canvas)
        if room < 0:
            raise ValueError(f"canvas {canvas} does not fit the model's {self.max_positions} positions")
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
        cache: bool | None = None,
        refresh: int = DEFAULT_REFRESH,
        seed: int = 0,
        cancel: Callable[[], bool] | None = None,
        single_line: bool = False,
        memory: MemoryConfig | None = MemoryConfig(),
    ) -> InfillResult:
        """Denoise a middle between `prefix` and `suffix`.

        canvas: masks to fill (default 32); the middle ends at the first stop token, so it may come out
        shorter. max_canvas: how far the canvas may grow on checkpoints that can grow it (DreamOn's expand
        token); other checkpoints fill exactly `canvas`. cache: the approximate context cache, with a full
        forward every `refresh` steps; None uses it where the canvas has a fixed length, and a growing canvas
        (which shifts the suffix's positions every step) rejects True. single_line: the middle ends at its
        first newline. memory: mix in the repository memory (`self.memory`), None to leave it out.
        """
        t0 = time.perf_counter()
        sampler = sampler or SamplerConfig()
        n = DEFAULT_CANVAS if canvas is None else canvas
        for name, value in (("canvas", n), ("max_canvas", max_canvas), ("refresh", refresh)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        grows = self.special.expand is not None and (max_canvas or n) > n
        if grows and cache:
            raise ValueError("cache=True needs a fixed canvas: this checkpoint grows it up to max_canvas "
                             "(pass cache=None, or max_canvas=canvas)")
        generator = torch.Generator(self.device).manual_seed(seed)
        prefix, healed = heal(prefix)
        before, after = self.context_ids(prefix, suffix, max(n, max_canvas or 0))
        # a single-line middle ends at its first newline token, which is kept: it may carry text before "\n"
        newline = self.tokenizer.newline_ids if single_line else frozenset()
        use = memory is not None and self.memory
        prior = self.memory_prior(prefix, suffix, memory, healed) if use else None
        if grows:
            ids, conf, forwards, n = denoise_expand(
                self.model, before, after, n, max_canvas, self.special, sampler, generator, cancel,
                ends=newline, prior=prior,
            )
        else:
            seq = torch.tensor([before + [self.special.mask] * n + after], device=self.device)
            use_cache = cache is not False
            logits_fn = CanvasLogits(self.model, seq, len(before), len(before) + n, use_cache, refresh)
            stops = self.special.stops | newline
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


def check_device(device: str) -> None:
    """One line for a device this machine does not have: cpu, cuda[:n] (NVIDIA or ROCm) or mps (Apple)."""
    kind, _, index = device.partition(":")
    if kind == "cuda" and not torch.cuda.is_available():
        raise DeviceUnavailable(f"device {device!r} requested but CUDA is not available")
    if kind == "cuda" and index.isdigit() and int(index) >= torch.cuda.device_count():
        raise DeviceUnavailable(f"device {device!r} requested but there are {torch.cuda.device_count()} GPUs")
    if kind == "mps" and not torch.backends.mps.is_available():
        raise DeviceUnavailable(f"device {device!r} requested but Apple MPS is not available on this machine")
    if kind not in ("cpu", "cuda", "mps"):
        raise DeviceUnavailable(f"device {device!r} is not one of cpu, cuda, cuda:N, mps")


def load_model(
    path: str | Path | None = None,
    device: str = "cpu",
    dtype: str | torch.dtype = "float32",
    quantize: str | None = None,
    progress: hub.Progress | None = None,
) -> DiffusionLM | DiffusionGemmaLM:
    """Load a checkpoint folder, a Hugging Face id `org/name[@revision]` (downloaded into the Hub's cache
    first; engine/hub.py), or the embedded default model when path is None. Refuses, before loading, a model
    that cannot fit on the device (engine/fit.py).
    quantize: None (or "none"), or "int8" for int8 linear-layer weights (engine/quantize.py)."""
    quantize = parse_quantize(quantize)
    check_device(device)
    folder = hub.resolve(path, progress) if path is not None else DEFAULT_MODEL
    name = hub.repo_id_of(folder) or str(path or folder)
    config = read_config(folder)
    from engine.gemma import is_diffusion_gemma, load_gemma  # here: engine.gemma imports this module

    if is_diffusion_gemma(config):  # its own network, cache and decoding (engine/gemma/)
        return load_gemma(folder, config, device, parse_dtype(dtype, device), quantize, name)
    fit.check(folder, device, parse_dtype(dtype, device), quantize, name)
    model, family, config = load_transformer(folder, device, dtype, quantize)
    tokenizer = Tokenizer(folder, config, family.mask_tokens)
    return DiffusionLM(model, family, tokenizer, folder)
