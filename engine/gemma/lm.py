"""DiffusionGemmaLM: a loaded DiffusionGemma checkpoint, its canvas logits, generation and code completion."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from engine.gemma.cache import PromptCache
from engine.gemma.complete import cut_at_suffix, end_of_text
from engine.gemma.generate import Denoised, Generated, denoise, generate
from engine.gemma.load import load_network
from engine.gemma.model import DiffusionGemma
from engine.gemma.sampling import Sampling
from engine.gemma.tokens import GemmaTokenizer
from engine.heal import heal, unheal
from engine.lm import DEFAULT_CANVAS, InfillResult, InfillStats
from engine.memory import MemoryConfig, RepositoryMemory
from engine.sample import SamplerConfig


@dataclass(frozen=True)
class GemmaFamily:
    name: str = "diffusion-gemma"


class DiffusionGemmaLM:
    family = GemmaFamily()

    def __init__(self, model: DiffusionGemma, tokenizer: GemmaTokenizer, path: Path, sampling: Sampling):
        self.model, self.tokenizer, self.path, self.sampling = model, tokenizer, path, sampling
        self.special = tokenizer.special
        self.device = model.embed_tokens.weight.device
        # kept so the server can feed it as it feeds every model; infill does not mix it in (README)
        self.memory = RepositoryMemory()
        self._prompt: tuple[Tensor, PromptCache] | None = None  # the last canvas_logits prompt and its cache

    @property
    def dtype(self) -> torch.dtype:
        return self.model.embed_tokens.weight.dtype

    @property
    def max_positions(self) -> int:
        return self.model.cfg.max_position_embeddings

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer.encode(text))

    def _head(self) -> list[int]:
        return [] if self.special.bos is None else [self.special.bos]

    def context_room(self, canvas: int) -> int:
        """Tokens of prefix plus suffix that fit beside a canvas of `canvas` tokens, special tokens aside."""
        return self.max_positions - canvas - len(self._head())

    def context_ids(self, prefix: str, suffix: str, canvas: int) -> tuple[list[int], list[int]]:
        """BOS + prefix and the suffix, cut to fit the positions (as DiffusionLM.context_ids)."""
        pre, suf = self.tokenizer.encode(prefix), self.tokenizer.encode(suffix)
        room = self.context_room(canvas)
        if room < 0:
            raise ValueError(f"canvas {canvas} does not fit the model's {self.max_positions} positions")
        suf = suf[: min(len(suf), max(room // 4, room - len(pre)))]
        return self._head() + pre[max(len(pre) - (room - len(suf)), 0) :], suf

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

    def sampling_for(self, sampler: Sampling | SamplerConfig | None) -> Sampling:
        # SamplerConfig belongs to masked decoding: only its step count carries over (max_denoising_steps)
        if isinstance(sampler, Sampling):
            return sampler
        if sampler is not None and sampler.steps:
            return dataclasses.replace(self.sampling, steps=sampler.steps)
        return self.sampling

    @torch.inference_mode()
    def infill(
        self,
        prefix: str,
        suffix: str,
        *,
        canvas: int | None = None,
        max_canvas: int | None = None,
        sampler: Sampling | SamplerConfig | None = None,
        cache: bool | None = None,
        refresh: int = 8,
        seed: int = 0,
        cancel: Callable[[], bool] | None = None,
        single_line: bool = False,
        memory: MemoryConfig | None = None,
        left_to_right: bool = False,
    ) -> InfillResult:
        """The text between prefix and suffix (README, DiffusionGemma). With a suffix: the prefix through the
        encoder, the suffix encoded at the positions after a canvas of `canvas` tokens, one canvas denoised
        between them, cut at its first end token and where it runs into the suffix. Without a suffix, or with
        left_to_right: canvases of `canvas` tokens after the prefix until an end token or max_canvas tokens.
        cache and refresh have no effect (the prompt cache is exact) and memory is not mixed in."""
        t0 = time.perf_counter()
        n = DEFAULT_CANVAS if canvas is None else canvas
        for name, value in (("canvas", n), ("max_canvas", max_canvas), ("refresh", refresh)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        s, generator = self.sampling_for(sampler), torch.Generator(self.device).manual_seed(seed)
        prefix, healed = heal(prefix)
        between = not left_to_right and bool(self.tokenizer.encode(suffix))
        limit = n if between else max(n, max_canvas or n)
        before, after = self.context_ids(prefix, suffix, limit)
        newline = self.tokenizer.newline_ids if single_line else frozenset()
        if between:
            ids, probs, forwards = self._between(before, after, n, s, generator, cancel)
        else:
            ids, probs, forwards = self._onward(before, n, limit, newline, s, generator, cancel)
        text = unheal(self.tokenizer.decode(ids), healed)
        if single_line:
            text = text.split("\n", 1)[0]
        conf = float(sum(probs) / len(probs)) if probs else 0.0
        stats = InfillStats(forwards, limit / max(forwards, 1), limit, (time.perf_counter() - t0) * 1000)
        return InfillResult(text, conf, stats)

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
        cache, ids, probs, forwards = PromptCache(self.model.cfg), [], [], 0
        self.model.encode(torch.tensor([before], device=self.device), cache)
        while len(ids) < limit:
            out = self._denoise(cache, cache.length, n, s, generator, cancel)
            forwards += int(out.forwards[0])
            block, block_probs = self._kept(out)
            ids, probs = ids + block, probs + block_probs
            if len(block) < n or newline.intersection(block):
                break
            self.model.encode(out.argmax, cache)
        return ids[:limit], probs[:limit], forwards

    def _kept(self, out: Denoised) -> tuple[list[int], list[float]]:
        # the committed canvas up to its first end token, with each kept token's probability
        ids = out.argmax[0].tolist()
        end = end_of_text(ids, self.special.stops)
        probs = torch.softmax(out.logits[0].float(), -1).max(-1).values[:end].tolist()
        return ids[:end], probs


def load_gemma(folder: Path, config: dict, device: str, dtype: torch.dtype, quantize: str | None,
               name: str = "") -> DiffusionGemmaLM:
    if quantize is not None:
        raise ValueError(f"quantize {quantize!r} is not supported for diffusion-gemma checkpoints yet")
    model = load_network(folder, config, device, dtype, name)
    tokenizer = GemmaTokenizer(folder, config, ())
    return DiffusionGemmaLM(model, tokenizer, folder, Sampling.from_checkpoint(folder))
