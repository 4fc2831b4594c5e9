"""DiffusionGemma: one weight set run twice, a causal encoder that writes the cache and a bidirectional
decoder.

The encoder reads a prompt (or a committed canvas) and stores every layer's keys and values; the decoder reads
a canvas, attends over [cached keys | canvas keys] with no mask, and never writes (transformers'
DiffusionGemmaForBlockDiffusion with its DynamicCache). Logits are softcapped in fp32.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from engine.gemma.cache import PromptCache
from engine.gemma.config import GemmaConfig, LayerSpec
from engine.gemma.layers import GemmaRMSNorm, Layer, SelfConditioning, rope_tables, visible


class DiffusionGemma(nn.Module):
    # linear layers quantization leaves in the compute dtype (engine/quantize.py): a router's few outputs
    # pick the experts, and a small error there swaps one expert for another
    wide = ("router.proj",)

    def __init__(self, cfg: GemmaConfig):
        super().__init__()
        self.cfg = cfg
        self.embed_tokens = nn.Embedding(cfg.vocab_size, cfg.hidden_size)
        self.layers = nn.ModuleList(Layer(cfg, spec) for spec in cfg.layers)
        self.norm = GemmaRMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.self_conditioning = SelfConditioning(cfg)
        self.lm_head = (
            None if cfg.tie_word_embeddings else nn.Linear(cfg.hidden_size, cfg.vocab_size, bias=False)
        )

    def scale(self, dtype: torch.dtype) -> Tensor:
        # sqrt(hidden), rounded to the weights' dtype first (55.43 becomes 55.5 in bf16), as transformers does
        return torch.tensor(self.cfg.hidden_size**0.5).to(dtype)

    def embed(self, ids: Tensor) -> Tensor:
        return self.embed_tokens(ids) * self.scale(self.embed_tokens.weight.dtype)

    def tables(self, positions: Tensor, dtype: torch.dtype) -> dict[LayerSpec, tuple[Tensor, Tensor]]:
        return {spec: rope_tables(positions, spec, dtype) for spec in set(self.cfg.layers)}

    def encode(
        self, ids: Tensor, cache: PromptCache, start: int | None = None, truncate: bool = True
    ) -> None:
        """Run the causal encoder over ids [B, T] at positions start.. (default: after the cached tokens) and
        append every layer's keys and values to the cache. truncate=False keeps all of a sliding layer's
        entries (a suffix, trimmed by the caller)."""
        t = ids.shape[1]
        start = cache.length if start is None else start
        pos = torch.arange(start, start + t, device=ids.device)
        x = self.embed(ids)
        tables, window, last = self.tables(pos, x.dtype), self.cfg.sliding_window, len(self.layers) - 1
        for i, (layer, spec) in enumerate(zip(self.layers, self.cfg.layers)):
            q, k, v = layer.self_attn.project(layer.input_layernorm(x), *tables[spec])
            k, v, k_pos = cache.append(i, k, v, pos, truncate)
            if i == last:
                break  # the last layer's output feeds nothing the decoder reads
            plain = k.shape[2] == t and (not spec.sliding or t <= window)  # only this call's tokens: causal
            mask = None if plain else visible(pos, k_pos, spec.sliding, window)
            attended = layer.self_attn.attend(q, k, v, mask, causal=plain)
            x = layer.feed_forward(x, attended, layer.encoder_scalar)
        cache.length = start + t

    def soft_embedding(self, prev_logits: Tensor) -> Tensor:
        # the previous step's distribution over the vocabulary as an expected embedding:
        # [B, C, V] -> [B, C, H]
        w = self.embed_tokens.weight
        return torch.softmax(prev_logits, dim=-1, dtype=torch.float32).to(w.dtype) @ w * self.scale(w.dtype)

    def decode(self, canvas: Tensor, cache: PromptCache, prev_logits: Tensor | None = None,
               start: int | None = None) -> Tensor:
        """Logits [B, C, V] (fp32, softcapped) for canvas [B, C] at positions start.. (default: right after
        the cached tokens), attending bidirectionally over the cache and the canvas; self-conditioned on
        prev_logits [B, C, V] when given."""
        start = cache.length if start is None else start
        pos = torch.arange(start, start + canvas.shape[1], device=canvas.device)
        soft = None if prev_logits is None else self.soft_embedding(prev_logits)
        x = self.self_conditioning(self.embed(canvas), soft)
        tables = self.tables(pos, x.dtype)
        for i, (layer, spec) in enumerate(zip(self.layers, self.cfg.layers)):
            q, k, v = layer.self_attn.project(layer.input_layernorm(x), *tables[spec])
            k, v = cache.read(i, k, v)
            x = layer.feed_forward(x, layer.self_attn.attend(q, k, v), layer.layer_scalar)
        return self.logits(self.norm(x))

    def logits(self, x: Tensor) -> Tensor:
        head = self.embed_tokens.weight if self.lm_head is None else self.lm_head.weight
        logits = F.linear(x, head).float()
        cap = self.cfg.final_logit_softcap
        return logits if cap is None else torch.tanh(logits / cap) * cap
