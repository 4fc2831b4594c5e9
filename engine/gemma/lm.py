"""DiffusionGemmaLM: a loaded DiffusionGemma checkpoint, its canvas logits, generation and code completion."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from engine.api import (
    Cancel,
    Capabilities,
    InfillResult,
    InfillStats,
    ModelInfo,
    Proposal,
    refuse_unsupported,
)
from engine.errors import Unsupported
from engine.formats import Checkpoint
from engine.gemma.cache import PromptCache
from engine.gemma.complete import cut_at_suffix, end_of_text
from engine.gemma.config import GemmaConfig
from engine.gemma.generate import Denoised, Generated, denoise, generate
from engine.gemma.load import load_network
from engine.gemma.model import DiffusionGemma
from engine.gemma.sampling import Sampling
from engine.gemma.tokens import GemmaTokenizer
from engine.heal import heal, unheal
from engine.lm import cut_context
from engine.memory import RepositoryMemory
from engine.params import InfillParams, SamplerConfig
from engine.quantize import quantization

FAMILY = "diffusion-gemma"
# no context cache to approximate (the prompt cache is exact), no memory prior, one request at a time; a
# canvas "grows" block by block after the prefix when there is no suffix (or left_to_right)
CAPABILITIES = Capabilities(cache=False, memory=False, grows=True, batching=False, score=False, sampler=False)


@dataclass(frozen=True)
class GemmaFamily:
    name: str = FAMILY


class DiffusionGemmaLM:
    family = GemmaFamily()

    def __init__(self, model: DiffusionGemma, tokenizer: GemmaTokenizer, path: Path, sampling: Sampling):
        self.model, self.tokenizer, self.path, self.sampling = model, tokenizer, path, sampling
        self.special = tokenizer.special
        self.device = model.embed_tokens.weight.device
        self.name = str(path)
        self.capabilities = CAPABILITIES
        # the contract's: a server feeds it as it feeds every model, but no request may ask to mix it in
        self.memory = RepositoryMemory()
        self._prompt: tuple[Tensor, PromptCache] | None = None  # the last canvas_logits prompt and its cache
        self._quantize = quantization(model) or "none"  # fixed at load; `info` is read on every completion

    @property
    def dtype(self) -> torch.dtype:
        return self.model.embed_tokens.weight.dtype

    @property
    def config(self) -> GemmaConfig:
        """The network's shape (engine/gemma/config.py)."""
        return self.model.cfg

    @property
    def max_positions(self) -> int:
        return self.model.cfg.max_position_embeddings

    @property
    def info(self) -> ModelInfo:
        return ModelInfo(self.name, FAMILY, str(self.device), str(self.dtype).removeprefix("torch."),
                         self._quantize, self.max_positions, str(self.path))

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer.encode(text))

    def _head(self) -> list[int]:
        return [] if self.special.bos is None else [self.special.bos]

    def context_room(self, canvas: int) -> int:
        """Tokens of prefix plus suffix that fit beside a canvas of `canvas` tokens, special tokens aside."""
        return self.max_positions - canvas - len(self._head())

    def context_ids(self, prefix: str, suffix: str, canvas: int) -> tuple[list[int], list[int]]:
        """BOS + prefix and the suffix, cut to fit the positions (as DiffusionLM.context_ids)."""
        return cut_context(self.tokenizer.encode(prefix), self.tokenizer.encode(suffix),
                           self.context_room(canvas), self.max_positions, canvas, self._head(), [])

    # ---- the model's own interface

    def prompt_cache(self, prompt_ids: Tensor) -> PromptCache:
        """The encoder's cache for prompt_ids [B, P], computed once per prompt (the last one is kept)."""
        ids = prompt_ids.to(self.device)
        kept = self._prompt
        if kept is None or kept[0].shape != ids.shape or not torch.equal(kept[0], ids):
            cache = PromptCache(self.model.cfg)
            self.model.encode(ids, cache)
            self._prompt = (ids.clone(), cache)
        return self._prompt[1]

    @torch.inference_mode()
    def canvas_logits(
        self, prompt_ids: Tensor, canvas_ids: Tensor, prev_logits: Tensor | None = None
    ) -> Tensor:
        """Decoder logits [B, C, V] (fp32, softcapped) for canvas_ids [B, C] right after prompt_ids [B, P],
        self-conditioned on prev_logits [B, C, V]: transformers' DiffusionGemmaForBlockDiffusion(
        input_ids=prompt, decoder_input_ids=canvas, self_conditioning_logits=prev).logits."""
        prev = None if prev_logits is None else prev_logits.to(self.device)
        return self.model.decode(canvas_ids.to(self.device), self.prompt_cache(prompt_ids), prev)

    def generate(self, prompt_ids: Tensor, *, sampling: Sampling | None = None,
                 generator: torch.Generator | None = None, cancel: Callable[[], bool] | None = None,
                 canvas: Tensor | None = None) -> Generated:
        """Continue prompt_ids [B, P] block by block with the checkpoint's settings (or `sampling`); cancel()
        is polled before every decoder forward and raises engine.Cancelled."""
        start = None if canvas is None else canvas.to(self.device)
        return generate(self.model, prompt_ids.to(self.device), sampling or self.sampling, self.special,
                        generator, cancel, start)

    # ---- code completion

    def sampling_for(self, sampler: SamplerConfig | None) -> Sampling:
        """The checkpoint's Sampling (self.sampling) with a SamplerConfig's `steps`; any other SamplerConfig
        field belongs to masked decoding and is refused."""
        if sampler is None:
            return self.sampling
        plain = SamplerConfig()
        for f in dataclasses.fields(SamplerConfig):
            if f.name != "steps" and getattr(sampler, f.name) != getattr(plain, f.name):
                raise Unsupported(f"InfillParams.sampler.{f.name}: {FAMILY} decodes with its own Sampling "
                                  "(model.sampling); only steps carries over")
        return dataclasses.replace(self.sampling, steps=sampler.steps) if sampler.steps else self.sampling

    @torch.inference_mode()
    def infill(self, prefix: str, suffix: str, params: InfillParams = InfillParams(),
               cancel: Cancel | None = None, *, left_to_right: bool = False) -> InfillResult:
        """The text between prefix and suffix (docs/engine.md, DiffusionGemma). With a suffix: the prefix
        through the encoder, the suffix encoded at the positions after a canvas of `canvas` tokens, one canvas
        denoised between them, cut at its first end token and where it runs into the suffix. Without a
        suffix, or with left_to_right: canvases of `canvas` tokens after the prefix until an end token or
        max_canvas tokens."""
        t0 = time.perf_counter()
        refuse_unsupported(FAMILY, self.capabilities, params)
        n = params.canvas
        s = self.sampling_for(params.sampler)
        generator = torch.Generator(self.device).manual_seed(params.seed)
        prefix, healed = heal(prefix)
        between = not left_to_right and bool(self.tokenizer.encode(suffix))
        limit = n if between else params.widest
        before, after = self.context_ids(prefix, suffix, limit)
        newline = self.tokenizer.newline_ids if params.single_line else frozenset()
        if between:
            ids, probs, forwards = self._between(before, after, n, s, generator, cancel)
            blocks = 1
        else:
            ids, probs, forwards, blocks = self._onward(before, n, limit, newline, s, generator, cancel)
        text = unheal(self.tokenizer.decode(ids), healed)
        if params.single_line:
            text = text.split("\n", 1)[0]
        conf = float(sum(probs) / len(probs)) if probs else 0.0
        stats = InfillStats(forwards, n * blocks / max(forwards, 1), n, (time.perf_counter() - t0) * 1000)
        return InfillResult(text, conf, stats)

    def propose(self, prefix: str, suffix: str, params: InfillParams = InfillParams(),
                limit: int = 4) -> list[Proposal]:
        return []  # no repository memory in its decoding (capabilities.memory is False)

    def score(self, prefix: str, suffix: str, candidates: Sequence[str],
              params: InfillParams = InfillParams()) -> list[float]:
        raise Unsupported(f"{FAMILY} does not score candidates (capabilities.score is False)")

    def _denoise(self, cache: PromptCache, start: int, n: int, s: Sampling, generator, cancel) -> Denoised:
        noise = torch.randint(0, self.model.cfg.vocab_size, (1, n), generator=generator, device=self.device)
        return denoise(lambda c, p: self.model.decode(c, cache, p, start=start), noise, s,
                       self.model.cfg.vocab_size, generator, cancel, dtype=self.dtype)

    def _between(self, before: list[int], after: list[int], n: int, s: Sampling, generator, cancel):
        # the suffix sits at positions len(before) + n.. and saw only the prefix; sliding layers keep the
        # window - 1 tokens on each side of the canvas
        left = PromptCache(self.model.cfg)
        self.model.encode(torch.tensor([before], device=self.device), left)
        both, after_start = left.fork(), len(before) + n
        self.model.encode(torch.tensor([after], device=self.device), both, start=after_start, truncate=False)
        both.keep_first_after(after_start)
        out = self._denoise(both, len(before), n, s, generator, cancel)
        ids, probs = self._kept(out)
        ids = cut_at_suffix(ids, after)
        return ids, probs[: len(ids)], int(out.forwards[0])

    def _onward(self, before: list[int], n: int, limit: int, newline: frozenset[int], s: Sampling, generator,
                cancel):
        cache, ids, probs, forwards, blocks = PromptCache(self.model.cfg), [], [], 0, 0
        self.model.encode(torch.tensor([before], device=self.device), cache)
        while len(ids) < limit:
            out = self._denoise(cache, cache.length, n, s, generator, cancel)
            forwards, blocks = forwards + int(out.forwards[0]), blocks + 1
            block, block_probs = self._kept(out)
            ids, probs = ids + block, probs + block_probs
            if len(block) < n or newline.intersection(block):
                break
            self.model.encode(out.argmax, cache)
        return ids[:limit], probs[:limit], forwards, blocks

    def _kept(self, out: Denoised) -> tuple[list[int], list[float]]:
        # the committed canvas up to its first end token, with each kept token's probability
        ids = out.argmax[0].tolist()
        end = end_of_text(ids, self.special.stops)
        probs = torch.softmax(out.logits[0].float(), -1).max(-1).values[:end].tolist()
        return ids[:end], probs


def load_gemma(folder: Path, config: dict, device: str, dtype: torch.dtype, quantize: str | None,
               name: str = "", checkpoint: Checkpoint | None = None) -> DiffusionGemmaLM:
    """quantize: None, "int8" or "int4" (engine/quantize.py); checkpoint: a quantized format's
    (engine/formats/), loaded as the file packs it."""
    model = load_network(folder, config, device, dtype, name, quantize, checkpoint)
    tokenizer = GemmaTokenizer(folder, config, ())
    lm = DiffusionGemmaLM(model, tokenizer, folder, Sampling.from_checkpoint(folder))
    lm.name = name or str(folder)
    return lm
