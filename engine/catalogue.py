"""Public checkpoints whose layout this engine loads, with the sampler settings their authors recommend.

Ids, shapes and settings come from ../shared/reference/dllm-checkpoints-and-samplers.md and the model cards
and READMEs it cites. None has been loaded from a real download here (`checked=False`): the shapes are
second-hand, and a checkpoint's own config.json and tokenizer decide its shape, mask id and shift when it
loads. Choosing one by its Hub id makes its `sampler` the defaults under the user's own sampler options.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from engine.config import ModelConfig
from engine.hub import repo_id_of


@dataclass(frozen=True)
class Recommended:
    """engine.SamplerConfig fields as the authors run the model; the rest keep the caller's defaults."""

    confidence: str  # Dream's alg="entropy" is "entropy"; LLaDA's low-confidence remasking is "confidence"
    temperature: float
    top_p: float = 1.0
    gumbel: bool = False
    block_size: int | None = None

    def settings(self) -> dict:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class Entry:
    id: str
    family: str  # engine/families.py
    shape: ModelConfig  # second-hand: see `source`
    context: int | None  # tokens (prompt + output) the authors document; None: not documented
    mask_id: int | None  # None: the tokenizer's mask token
    eos: str  # how an answer ends
    sampler: Recommended
    source: str
    checked: bool = False  # loaded from a real download and compared with its config.json

    @property
    def parameters(self) -> int:
        from engine.fit import parameters  # torch: only for the memory figures, not for find()

        return sum(parameters(self.shape)[::2])


# Qwen2.5-7B's shape, which Dream-v0, Dream-Coder-v0, DreamOn and DiffuCoder keep (reference, 1.1)
DREAM_7B = ModelConfig(
    152064, 3584, 28, 28, 4, 18944, head_dim=128, rope_theta=1e6, max_position_embeddings=2048
)
LLADA_8B = ModelConfig(  # reference, 1.2
    126464, 4096, 32, 32, 32, 12288, rms_norm_eps=1e-5, rope_theta=5e5, max_position_embeddings=4096,
    qkv_bias=False, shift=False, family="llada",
)
# Qwen2.5-Coder-0.5B's config (not in the reference; from Qwen's model card)
OPEN_DCODER = ModelConfig(
    151936, 896, 24, 14, 2, 4864, head_dim=64, rope_theta=1e6, max_position_embeddings=32768,
    tie_word_embeddings=True, family="open-dcoder",
)
DREAM_EOS = "ends at <|endoftext|> (151643)"
DREAM = "reference 3.1; DreamLM/Dream README (context 2048)"
DIFFUCODER_EOS = "ends at <|endoftext|> (151643) or <|dlm_pad|> (151667, second-hand), which pads the tail"
DIFFUCODER = "reference 3.1; apple/ml-diffucoder README (Base T 0.2, Instruct T 0.4)"
LLADA_EOS = "ends at EOS (126081) or EoT (126348)"
LLADA = "reference 1.2, 3.2; ML-GSAI/LLaDA generate.py, README"
ENTROPY_02 = Recommended("entropy", 0.2, 0.95)
ENTROPY_04 = Recommended("entropy", 0.4, 0.95)
LOW_CONFIDENCE = Recommended("confidence", 0.0, gumbel=True)
# Instruct models were tuned on answers padded with EOS; blocks of 32 stop them from ending early
LOW_CONFIDENCE_BLOCKS = Recommended("confidence", 0.0, gumbel=True, block_size=32)

CATALOGUE = (
    Entry("Dream-org/Dream-Coder-v0-Instruct-7B", "dream", DREAM_7B, 2048, 151666,
          DREAM_EOS + "; the authors' demos add eos_penalty 3.0, not implemented here",
          Recommended("entropy", 0.1, 0.95), "reference 3.1; DreamLM/Dream-Coder README"),
    Entry("Dream-org/Dream-Coder-v0-Base-7B", "dream", DREAM_7B, 2048, 151666, DREAM_EOS,
          Recommended("entropy", 0.1, 0.95), "reference 3.1; DreamLM/Dream-Coder README"),
    Entry("Dream-org/DreamOn-v0-7B", "dream", DREAM_7B, 2048, 151666,
          "a committed <|expand|> (151667) becomes two masks, a committed EOS (151643) deletes its position",
          Recommended("entropy", 0.2, 0.9), "reference 3.7; DreamLM/DreamOn eval settings"),
    Entry("apple/DiffuCoder-7B-Instruct", "dream", DREAM_7B, 2048, 151666, DIFFUCODER_EOS, ENTROPY_04,
          DIFFUCODER),
    Entry("apple/DiffuCoder-7B-cpGRPO", "dream", DREAM_7B, 2048, 151666, DIFFUCODER_EOS, ENTROPY_04,
          DIFFUCODER),
    Entry("apple/DiffuCoder-7B-Base", "dream", DREAM_7B, 2048, 151666, DIFFUCODER_EOS, ENTROPY_02,
          DIFFUCODER),
    Entry("Dream-org/Dream-v0-Instruct-7B", "dream", DREAM_7B, 2048, 151666, DREAM_EOS, ENTROPY_02, DREAM),
    Entry("Dream-org/Dream-v0-Base-7B", "dream", DREAM_7B, 2048, 151666, DREAM_EOS, ENTROPY_02, DREAM),
    Entry("GSAI-ML/LLaDA-8B-Instruct", "llada", LLADA_8B, 4096, 126336, LLADA_EOS, LOW_CONFIDENCE_BLOCKS,
          LLADA),
    Entry("GSAI-ML/LLaDA-1.5", "llada", LLADA_8B, 4096, 126336, LLADA_EOS, LOW_CONFIDENCE_BLOCKS, LLADA),
    Entry("GSAI-ML/LLaDA-8B-Base", "llada", LLADA_8B, 4096, 126336, LLADA_EOS, LOW_CONFIDENCE, LLADA),
    Entry("fredzzp/open-dcoder-0.5B", "open-dcoder", OPEN_DCODER, None, None,
          "ends at the tokenizer's EOS; the authors' P2 remasking (alg_temp 0.5) is not implemented here",
          Recommended("confidence", 0.0), "reference 2; pengzhangzhi/Open-dLLM eval_infill.py"),
)


def find(spec: str | Path | None) -> Entry | None:
    """The entry a Hub id names (any case, any `@revision`), or the entry of a Hub-cache snapshot folder."""
    if spec is None:
        return None
    name = repo_id_of(spec) or str(spec).split("@", 1)[0]
    return next((e for e in CATALOGUE if e.id.lower() == name.lower()), None)


def lines() -> list[str]:
    """One line per entry: id, family, parameters, memory in bf16 and int8, context, sampler, EOS."""
    head = ("id", "family", "params", "bf16", "int8", "context", "mask", "logits", "sampler", "checked")
    head += ("EOS",)
    rows = [head] + [_row(e) for e in CATALOGUE]
    widths = [max(len(r[i]) for r in rows) for i in range(len(head) - 1)]
    return ["  ".join([*(c.ljust(w) for c, w in zip(r, widths)), r[-1]]) for r in rows]


def _row(e: Entry) -> tuple[str, ...]:
    import torch

    from engine.fit import GB, need

    s = e.sampler
    sampler = f"{s.confidence} T={s.temperature:g} top-p={s.top_p:g}" + (" gumbel" if s.gumbel else "")
    sampler += f" blocks={s.block_size}" if s.block_size else ""
    return (
        e.id,
        e.family,
        f"{e.parameters / 1e9:.2f}B",
        f"{need(e.shape, torch.bfloat16).total / GB:.1f} GB",
        f"{need(e.shape, torch.bfloat16, 'int8').total / GB:.1f} GB",
        str(e.context or "?"),
        str(e.mask_id or "tokenizer's"),
        "shifted" if e.shape.shift else "unshifted",
        sampler,
        "checked" if e.checked else "not checked",
        e.eos,
    )
