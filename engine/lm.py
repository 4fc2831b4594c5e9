"""DiffusionLM: a loaded checkpoint (weights, family, tokenizer) and its infill entry point."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from engine import fit, hub
from engine.corpus_index import CorpusIndex, load_index
from engine.errors import DeviceUnavailable
from engine.expand import denoise_expand
from engine.families import Family
from engine.generate import CanvasLogits, denoise, middle_of
from engine.heal import FirstToken, heal, heal_token, unheal
from engine.load import load_transformer, parse_dtype, read_config
from engine.memory import MemoryConfig, MemoryPrior, RepositoryMemory, TextIndex, recall
from engine.model import Transformer
from engine.quantize import auto_quantize, parse_quantize
from engine.sample import SamplerConfig
from engine.tokenizer import Tokenizer

if TYPE_CHECKING:
    from engine.gemma import DiffusionGemmaLM

DEFAULT_MODEL = Path(__file__).parent / "default_model"
DEFAULT_CANVAS = 32
DEFAULT_REFRESH = 8  # full forwards (cache refreshes) every this many denoising steps
TAIL_CHARS = 64  # token healing tokenizes only the prefix's end: its last token comes out the same


@dataclass(frozen=True)
class InfillStats:
    forward_passes: int
    tokens_per_forward: float  # canvas positions resolved per forward
    canvas: int
    ms: float
    queue_ms: float = 0.0  # engine.batch: waiting before the first forward (included in ms)
    batch: float = 1.0  # engine.batch: mean rows per forward this request took part in


@dataclass(frozen=True)
class InfillResult:
    text: str
    confidence: float
    stats: InfillStats


@dataclass(frozen=True)
class InfillJob:
    """An infill request prepared for the denoiser (DiffusionLM.prepare): tokens, sampler and how the
    canvas becomes text. The generator is the job's own: it advances as the job is denoised."""

    before: list[int]  # ids left of the canvas (BOS included), cut to fit
    after: list[int]  # ids right of it (the family's EOS included)
    canvas: int
    max_canvas: int | None
    grows: bool  # a checkpoint with an expand token and max_canvas > canvas: engine/expand.py
    sampler: SamplerConfig
    generator: torch.Generator
    newline: frozenset[int]  # a single-line middle's newline ids (empty otherwise)
    stops: frozenset[int]  # the checkpoint's stops and newline
    prior: MemoryPrior | None
    healed: str  # text taken off the prefix, which the middle starts with (engine/heal.py)
    single_line: bool
    first_alone: bool = False  # a healed token at the first position, committed before the rest

    def sequence(self, mask: int) -> list[int]:
        return self.before + [mask] * self.canvas + self.after

    def result(self, tokenizer: Tokenizer, ids: list[int], conf: float, stats: InfillStats,
               t0: float) -> InfillResult:
        # stats.ms is filled in here: from t0 (time.perf_counter) until the text is ready
        text = unheal(tokenizer.decode(ids), self.healed)
        if self.single_line:
            text = text.split("\n", 1)[0]
        return InfillResult(text, conf, replace(stats, ms=(time.perf_counter() - t0) * 1000))


def check_count(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")


class DiffusionLM:
    def __init__(self, model: Transformer, family: Family, tokenizer: Tokenizer, path: Path):
        self.model, self.family, self.tokenizer, self.path = model, family, tokenizer, path
        self.special = tokenizer.special
        self.device = model.embed.weight.device
        # texts the caller wants remembered (open documents, workspace files), by name; see engine/memory.py
        self.memory = RepositoryMemory()
        # the checkpoint's own corpus index, if it ships one (engine/corpus_index.py); None to leave it out
        self.corpus: CorpusIndex | None = None
        # back the prefix up over a last token that longer tokens extend (engine/heal.py)
        self.token_healing = True

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
        check_count("refresh", refresh)
        index = self.memory.index if memory is not None and self.memory else None
        job = self.prepare(prefix, suffix, canvas=canvas, max_canvas=max_canvas, sampler=sampler, seed=seed,
                           single_line=single_line, memory=memory, index=index)
        if job.grows and cache:
            raise ValueError("cache=True needs a fixed canvas: this checkpoint grows it up to max_canvas "
                             "(pass cache=None, or max_canvas=canvas)")
        return self.run(job, cache, refresh, cancel, t0)

    def prepare(
        self,
        prefix: str,
        suffix: str,
        *,
        canvas: int | None = None,
        max_canvas: int | None = None,
        sampler: SamplerConfig | None = None,
        seed: int = 0,
        single_line: bool = False,
        memory: MemoryConfig | None = MemoryConfig(),
        index: TextIndex | None = None,
    ) -> InfillJob:
        """An infill request as tokens (see infill): the context cut to fit, the healed prefix, the seeded
        generator and the memory prior over `index` (None, or memory None: no prior)."""
        n = DEFAULT_CANVAS if canvas is None else canvas
        check_count("canvas", n)
        if max_canvas is not None:
            check_count("max_canvas", max_canvas)
        grows = self.special.expand is not None and (max_canvas or n) > n
        generator = torch.Generator(self.device).manual_seed(seed)
        prefix, healed = heal(prefix)
        vocab = self.tokenizer.vocabulary if self.token_healing and not healed else None
        if vocab is not None:
            prefix, healed = heal_token(prefix, self.tokenizer.encode(prefix[-TAIL_CHARS:]), vocab)
        before, after = self.context_ids(prefix, suffix, max(n, max_canvas or 0))
        # a single-line middle ends at its first newline token, which is kept: it may carry text before "\n"
        newline = self.tokenizer.newline_ids if single_line else frozenset()
        # a shipped corpus index alone builds a prior only when it is weighted: otherwise every step would
        # search an empty memory
        corpus = self.corpus is not None and memory is not None and memory.corpus_weight > 0
        use = memory is not None and (index is not None or corpus)
        prior = self.memory_prior(prefix, suffix, memory, healed, index=index) if use else None
        if vocab is not None and healed:
            prior = FirstToken(vocab.allowed(healed), prior)
        return InfillJob(before, after, n, max_canvas, grows, sampler or SamplerConfig(), generator, newline,
                         self.special.stops | newline, prior, healed, single_line,
                         first_alone=vocab is not None and bool(healed))

    def run(self, job: InfillJob, cache: bool | None, refresh: int, cancel: Callable[[], bool] | None,
            t0: float) -> InfillResult:
        """Denoise a prepared job alone; `t0` (time.perf_counter) is when its request arrived."""
        with torch.inference_mode():
            if job.grows:
                ids, conf, forwards, n = denoise_expand(
                    self.model, job.before, job.after, job.canvas, job.max_canvas, self.special, job.sampler,
                    job.generator, cancel, ends=job.newline, prior=job.prior,
                )
            else:
                n = job.canvas
                seq = torch.tensor([job.sequence(self.special.mask)], device=self.device)
                start = len(job.before)
                logits_fn = CanvasLogits(self.model, seq, start, start + n, cache is not False, refresh)
                tokens, confs, forwards = denoise(logits_fn, n, self.special, job.sampler, job.generator,
                                                  cancel, self.device, job.stops, job.prior, job.first_alone)
                ids, conf = middle_of(tokens, confs, self.special)
        stats = InfillStats(forwards, n / max(forwards, 1), n, 0.0)
        return job.result(self.tokenizer, ids, conf, stats, t0)

    def memory_prior(self, prefix: str, suffix: str, memory: MemoryConfig, healed: str = "",
                     index: TextIndex | None = None) -> MemoryPrior:
        """The denoiser's hook over `index` (default: this model's own memory)."""
        skip = self.special.stops | {self.special.mask}
        return MemoryPrior(self.memory.index if index is None else index, memory, prefix, suffix,
                           self.tokenizer.encode_batch, self.tokenizer.decode, skip, healed, self.corpus)

    def recall(self, prefix: str, suffix: str = "", max_tokens: int = 32, single_line: bool = False,
               memory: MemoryConfig = MemoryConfig()) -> str:
        """The repository memory's own guess after `prefix`, without the network (see memory.recall)."""
        stops = self.special.stops | (self.tokenizer.newline_ids if single_line else frozenset())
        prefix, healed = heal(prefix)
        ids = recall(self.memory_prior(prefix, suffix, memory, healed), max_tokens, stops)
        text = unheal(self.tokenizer.decode([t for t in ids if t not in self.special.stops]), healed)
        return text.split("\n", 1)[0] if single_line else text


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
    quantize: None (or "none"), "int8" for int8 linear-layer weights, or "auto": int8 on a CPU without
    native bf16 for models up to a billion weights, else none (engine/quantize.py)."""
    quantize = parse_quantize(quantize)
    check_device(device)
    folder = hub.resolve(path, progress) if path is not None else DEFAULT_MODEL
    name = hub.repo_id_of(folder) or str(path or folder)
    config = read_config(folder)
    from engine.gemma import is_diffusion_gemma, load_gemma  # here: engine.gemma imports this module

    if is_diffusion_gemma(config):  # its own network, cache and decoding (engine/gemma/)
        # "auto" leaves it in full precision: its size is far past AUTO_INT8_MAX_PARAMS
        quantize = None if quantize == "auto" else quantize
        return load_gemma(folder, config, device, parse_dtype(dtype, device), quantize, name)
    if quantize == "auto":
        quantize = auto_quantize(device, parse_dtype(dtype, device), fit.parameter_count(config))
    fit.check(folder, device, parse_dtype(dtype, device), quantize, name)
    model, family, config = load_transformer(folder, device, dtype, quantize)
    tokenizer = Tokenizer(folder, config, family.mask_tokens)
    lm = DiffusionLM(model, family, tokenizer, folder)
    lm.corpus = load_index(folder)
    return lm
