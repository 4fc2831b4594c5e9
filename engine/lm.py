"""DiffusionLM: a masked-diffusion checkpoint (weights, family, tokenizer) behind the model contract
(engine/api.py): Dream, DiffuCoder, DreamOn, LLaDA, Open-dCoder layouts."""

from __future__ import annotations

import time
from collections.abc import Sequence
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
from engine.config import ModelConfig
from engine.corpus_index import CorpusIndex
from engine.errors import Unsupported
from engine.expand import denoise_expand
from engine.families import Family
from engine.generate import CanvasLogits, Denoising, denoise, middle_of, shifted_rows
from engine.heal import FirstToken, heal, heal_token, unheal
from engine.job import InfillJob
from engine.memory import MemoryPrior, RepositoryMemory, TextIndex, proposals, recall
from engine.model import Transformer
from engine.params import InfillParams, MemoryConfig
from engine.quantize import quantization, rows_apart
from engine.tokenizer import Tokenizer

TAIL_CHARS = 64  # token healing tokenizes only the prefix's end: its last token comes out the same


class DiffusionLM:
    def __init__(self, model: Transformer, family: Family, tokenizer: Tokenizer, path: Path, name: str = ""):
        self.model, self.family, self.tokenizer, self.path = model, family, tokenizer, path
        self.name = name or str(path)
        self.special = tokenizer.special
        self.device = model.embed.weight.device
        self.capabilities = Capabilities(cache=True, memory=True, grows=self.special.expand is not None,
                                         batching=True, score=True, sampler=True)
        # texts the caller wants remembered (open documents, workspace files), by name; see engine/memory.py
        self.memory = RepositoryMemory()
        # the checkpoint's own corpus index, if it ships one (engine/corpus_index.py); None to leave it out
        self.corpus: CorpusIndex | None = None
        # back the prefix up over a last token that longer tokens extend (engine/heal.py)
        self.token_healing = True
        self._quantize = quantization(model) or "none"  # fixed at load; `info` is read on every completion

    @torch.inference_mode()
    def __call__(self, input_ids: Tensor) -> Tensor:
        # [B, T] -> raw logits [B, T, V], no shift applied
        return self.model(input_ids.to(self.device))

    @property
    def config(self) -> ModelConfig:
        """The network's shape (engine/config.py)."""
        return self.model.cfg

    @property
    def max_positions(self) -> int:
        return self.model.cfg.max_position_embeddings

    @property
    def dtype(self) -> torch.dtype:
        return self.model.embed.weight.dtype

    @property
    def info(self) -> ModelInfo:
        dtype = str(self.dtype).removeprefix("torch.")
        return ModelInfo(self.name, self.family.name, str(self.device), dtype, self._quantize,
                         self.max_positions, str(self.path))

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer.encode(text))

    def _ends(self) -> tuple[list[int], list[int]]:
        # special tokens around the text: a BOS that is not also the EOS; the family's EOS after the suffix
        bos, eos = self.special.bos, self.special.eos
        head = [bos] if bos is not None and bos != eos else []
        return head, [eos] if self.family.infill_eos else []

    def context_room(self, canvas: int) -> int:
        head, tail = self._ends()
        return self.max_positions - canvas - len(head) - len(tail)

    def context_ids(self, prefix: str, suffix: str, canvas: int) -> tuple[list[int], list[int]]:
        """Token ids before and after the canvas, cut to fit the model's positions (prefix keeps its end)."""
        head, tail = self._ends()
        return cut_context(self.tokenizer.encode(prefix), self.tokenizer.encode(suffix),
                           self.context_room(canvas), self.max_positions, canvas, head, tail)

    # ---- infill

    def infill(self, prefix: str, suffix: str, params: InfillParams = InfillParams(),
               cancel: Cancel | None = None) -> InfillResult:
        """The middle between prefix and suffix (engine.params.InfillParams), with this model's own memory
        where params.memory is set."""
        t0 = time.perf_counter()
        return self.run(self.prepare(prefix, suffix, params, self.memory), cancel, t0)

    def heal(self, prefix: str) -> tuple[str, str, bool]:
        """(prefix, text taken off its end, whether that text is one token the first position must extend):
        typed blanks first, else a last token that longer tokens extend (engine/heal.py)."""
        prefix, healed = heal(prefix)
        vocab = self.tokenizer.vocabulary if self.token_healing and not healed else None
        if vocab is None:
            return prefix, healed, False
        prefix, healed = heal_token(prefix, self.tokenizer.encode(prefix[-TAIL_CHARS:]), vocab)
        return prefix, healed, bool(healed)

    def prepare(self, prefix: str, suffix: str, params: InfillParams,
                memory: RepositoryMemory | None) -> InfillJob:
        """An infill request as tokens: the context cut to fit, the healed prefix, the seeded generator and
        the prior (`memory`'s texts and the corpus index, see prior_for)."""
        refuse_unsupported(self.family.name, self.capabilities, params)
        grows = self.capabilities.grows and params.widest > params.canvas
        if grows and params.cache:
            raise Unsupported("InfillParams.cache: a growing canvas (max_canvas > canvas on this checkpoint) "
                              "has no context cache; pass cache=None, or max_canvas=canvas")
        generator = torch.Generator(self.device).manual_seed(params.seed)
        prefix, healed, by_token = self.heal(prefix)
        before, after = self.context_ids(prefix, suffix, params.widest)
        # a single-line middle ends at its first newline token, which is kept: it may carry text before "\n"
        newline = self.tokenizer.newline_ids if params.single_line else frozenset()
        prior = self.prior_for(prefix, suffix, params.memory, healed, memory)
        if by_token:
            prior = FirstToken(self.tokenizer.vocabulary.allowed(healed), prior)
        stops = self.special.stops | newline
        return InfillJob(before, after, params, grows, generator, newline, stops, prior, healed, by_token)

    def prior_for(self, prefix: str, suffix: str, cfg: MemoryConfig | None, healed: str,
                  memory: RepositoryMemory | None) -> MemoryPrior | None:
        """The one rule for which memory a request uses: with cfg set, `memory`'s texts where it has any and
        the checkpoint's corpus index where cfg weighs it (alone it votes only then: otherwise every step
        would search an empty memory); None when neither applies."""
        corpus = self.corpus if cfg is not None and cfg.corpus_weight > 0 else None
        if cfg is None or not (memory or corpus is not None):
            return None
        index = memory.index if memory else TextIndex()
        skip = self.special.stops | {self.special.mask}
        tok = self.tokenizer
        return MemoryPrior(index, cfg, prefix, suffix, tok.encode_batch, tok.decode, skip, healed, corpus)

    def run(self, job: InfillJob, cancel: Cancel | None, t0: float) -> InfillResult:
        """Denoise a prepared job alone; `t0` (time.perf_counter) is when its request arrived."""
        with torch.inference_mode():
            if job.grows:
                ids, conf, forwards, n = denoise_expand(self.model, job, self.special, cancel)
            else:
                n = job.canvas
                state = denoise(Denoising.for_job(job, self.special, self.device),
                                CanvasLogits.for_job(self.model, job, self.special.mask), cancel)
                ids, conf = middle_of(state.tokens, state.conf, self.special)
                forwards = state.forwards
        stats = InfillStats(forwards, n / max(forwards, 1), n, 0.0)
        return job.result(self.tokenizer, ids, conf, stats, t0)

    def propose(self, prefix: str, suffix: str, params: InfillParams = InfillParams(),
                limit: int = 4) -> list[Proposal]:
        """The repository memory's own middles after `prefix` (engine.memory.proposals), no network."""
        if params.memory is None or not self.memory:
            return []
        return proposals(self.memory.index, prefix, params.memory, params.single_line, limit)

    def recall(self, prefix: str, suffix: str = "", max_tokens: int = 32, single_line: bool = False,
               memory: MemoryConfig = MemoryConfig()) -> str:
        """The repository memory's own guess after `prefix`, without the network (see memory.recall)."""
        stops = self.special.stops | (self.tokenizer.newline_ids if single_line else frozenset())
        prefix, healed = heal(prefix)
        prior = self.prior_for(prefix, suffix, memory, healed, self.memory)
        ids = [] if prior is None else recall(prior, max_tokens, stops)
        text = unheal(self.tokenizer.decode([t for t in ids if t not in self.special.stops]), healed)
        return text.split("\n", 1)[0] if single_line else text

    # ---- scoring

    @torch.inference_mode()
    def score(self, prefix: str, suffix: str, candidates: Sequence[str],
              params: InfillParams = InfillParams()) -> list[float]:
        """Per candidate middle, the mean log-probability of its tokens with all of them masked between the
        healed prefix and the suffix: one forward for all candidates (rows right-padded, keys masked per
        row). An empty candidate scores -inf. Memory and sampler settings do not apply."""
        if not candidates:
            return []
        prefix, healed, _ = self.heal(prefix)
        encoded = [self.tokenizer.encode(healed + c) if c else [] for c in candidates]
        widest = max(max(len(ids) for ids in encoded), 1)
        before, after = self.context_ids(prefix, suffix, widest)
        start, mask = len(before), self.special.mask
        rows = [before + [mask] * len(ids) + after for ids in encoded]
        width = max(len(r) for r in rows)
        batch = torch.full((len(rows), width), self.special.pad, dtype=torch.long, device=self.device)
        real = torch.zeros(len(rows), width, dtype=torch.bool, device=self.device)
        for b, row in enumerate(rows):
            batch[b, : len(row)] = torch.tensor(row, device=self.device)
            real[b, : len(row)] = True
        reads = shifted_rows(start, start + widest, self.model.cfg.shift).to(self.device)
        with rows_apart():
            logits = self.model(batch, rows=reads, mask=real)  # [B, widest, V]
        logp = torch.log_softmax(logits.float(), -1)
        out = []
        for b, ids in enumerate(encoded):
            if not ids:
                out.append(float("-inf"))
                continue
            picked = logp[b, torch.arange(len(ids)), torch.tensor(ids, device=self.device)]
            out.append(float(picked.mean()))
        return out


def cut_context(pre: list[int], suf: list[int], room: int, positions: int, canvas: int, head: list[int],
                tail: list[int]) -> tuple[list[int], list[int]]:
    """head + prefix and suffix + tail within `room` tokens of context: the suffix keeps at least a quarter of
    the room (or all of it, if shorter), the prefix keeps its end."""
    if room < 0:
        raise ValueError(f"canvas {canvas} does not fit the model's {positions} positions")
    suf = suf[: min(len(suf), max(room // 4, room - len(pre)))]
    pre = pre[max(len(pre) - (room - len(suf)), 0) :]
    return head + pre, suf + tail
