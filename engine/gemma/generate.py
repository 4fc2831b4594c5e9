"""Block diffusion as transformers' DiffusionGemma `generate` runs it, with an explicit generator.

Per canvas: start from uniform noise over the whole vocabulary, then for n = N..1 run the decoder
(self-conditioned on the previous step's scaled logits), accept the lowest-entropy samples and renoise the
rest; stop early once the argmax canvas is stable and confident; commit the argmax canvas. Then the encoder
appends the committed canvas to the cache and the next canvas starts after it, until every row has ended.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from engine.errors import Cancelled
from engine.gemma.cache import PromptCache
from engine.gemma.model import DiffusionGemma
from engine.gemma.sampling import Sampling, StableStop, canvases, entropy, step
from engine.gemma.tokens import GemmaSpecial

# (canvas [B, C], previous step's scaled logits [B, C, V] or None) -> decoder logits [B, C, V]
DecodeFn = Callable[[Tensor, Tensor | None], Tensor]


@dataclass(frozen=True)
class Denoised:
    argmax: Tensor  # [B, C] the canvas to commit
    logits: Tensor  # [B, C, V] the last step's temperature-scaled logits
    forwards: Tensor  # [B] decoder forwards, not counting steps after a row stopped


def denoise(decode: DecodeFn, canvas: Tensor, s: Sampling, vocab: int, generator: torch.Generator | None,
            cancel: Callable[[], bool] | None = None, counted: Tensor | None = None,
            dtype: torch.dtype = torch.float32) -> Denoised:
    """Denoise one canvas [B, C] of tokens (uniform noise to start). counted: [B] rows whose forwards count
    (rows that ended in an earlier canvas are still run, as in transformers, but not counted). dtype: the
    self-conditioning logits' dtype (the embedding's)."""
    b = canvas.shape[0]
    done = torch.zeros(b, dtype=torch.bool, device=canvas.device)
    counted = torch.ones_like(done) if counted is None else counted
    forwards = torch.zeros(b, dtype=torch.long, device=canvas.device)
    stop = StableStop(s) if s.stops_early else None
    argmax, prev = canvas, None
    for remaining in range(s.steps, 0, -1):
        if cancel is not None and cancel():
            raise Cancelled()
        forwards += (~done & counted).long()
        out = step(decode(canvas, prev), canvas, remaining, s, vocab, generator)
        new_argmax, new_canvas, logits, h = out.argmax, out.canvas, out.logits, out.entropy
        if stop is not None:
            if bool(done.any()):  # rows that stopped keep what they had
                new_argmax = torch.where(done[:, None], argmax, new_argmax)
                new_canvas = torch.where(done[:, None], canvas, new_canvas)
                logits = torch.where(done[:, None, None], prev, logits)
                h = entropy(logits)
            done |= stop(new_argmax, h)
        canvas, argmax, prev = new_canvas, new_argmax, logits.to(dtype)
        if bool(done.all()):
            break
    return Denoised(argmax, prev, forwards)


@dataclass(frozen=True)
class Generated:
    ids: Tensor  # [B, canvases * C] new tokens; after a row's first end token, pad
    forwards: Tensor  # [B] decoder forwards per row
    pad: int | None

    @property
    def tokens_per_forward(self) -> Tensor:
        # transformers' measure: tokens that are not pad, per counted decoder forward
        valid = self.ids.shape[1] if self.pad is None else (self.ids != self.pad).sum(-1)
        return valid / self.forwards.clamp(min=1)


def end_rows(block: Tensor, finished: Tensor, special: GemmaSpecial) -> tuple[Tensor, Tensor]:
    # block: [B, C] committed argmax -> (block with pad after each row's first end token, rows now finished)
    eos = torch.tensor(special.eos, dtype=block.dtype, device=block.device)
    is_eos = torch.isin(block, eos)
    ended = finished | is_eos.any(-1)
    if special.pad is not None:
        seen = is_eos.cumsum(-1)
        block = block.masked_fill((seen > 0) & ~((seen == 1) & is_eos), special.pad)
        block = block.masked_fill(finished[:, None], special.pad)
    return block, ended


@torch.inference_mode()
def generate(model: DiffusionGemma, prompt: Tensor, s: Sampling, special: GemmaSpecial,
             generator: torch.Generator | None, cancel: Callable[[], bool] | None = None,
             canvas: Tensor | None = None, length: int | None = None) -> Generated:
    """Continue prompt [B, P] (rows of one length) block by block, as transformers' generate does with a
    DynamicCache and no attention mask. canvas [B, C] replaces the first block's noise; length: tokens per
    canvas (default: C, else the checkpoint's canvas_length)."""
    b = prompt.shape[0]
    length = length or (canvas.shape[1] if canvas is not None else model.cfg.canvas_length)
    vocab, dtype = model.cfg.vocab_size, model.embed_tokens.weight.dtype
    cache = PromptCache(model.cfg)
    model.encode(prompt, cache)
    finished = torch.zeros(b, dtype=torch.bool, device=prompt.device)
    forwards, blocks = torch.zeros(b, dtype=torch.long, device=prompt.device), []
    for n in range(canvases(s.max_new_tokens, length)):
        # always drawn
        noise = torch.randint(0, vocab, (b, length), generator=generator, device=prompt.device)
        start = canvas if n == 0 and canvas is not None else noise
        out = denoise(lambda c, p: model.decode(c, cache, p), start, s, vocab, generator, cancel, ~finished,
                      dtype)
        forwards += out.forwards
        block, finished = end_rows(out.argmax, finished, special)
        blocks.append(block)
        if bool(finished.all()):
            break
        model.encode(block, cache)  # the committed canvas, at the positions it was denoised at
    return Generated(torch.cat(blocks, dim=1), forwards, special.pad)
