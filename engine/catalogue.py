"""Public checkpoints whose layout this engine loads, with the sampler settings their authors recommend.

Ids, shapes and settings come from ../shared/reference/dllm-checkpoints-and-samplers.md and the model cards
and READMEs it cites. None has been loaded from a real download here (`checked=False`): the shapes are
second-hand, and a checkpoint's own config.json and tokenizer decide its shape, mask id and shift when it
loads. Choosing one by its Hub id makes its `sampler` the defaults under the user's own sampler options.
DiffusionGemma's shape and settings come from ../shared/reference/diffusion-gemma.md (its converter's config).
The memory figures are engine/fit.py's, as `unmask fit` prints them.
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
class FromCheckpoint:
    """A sampler the checkpoint ships (DiffusionGemma's generation_config.json, engine/gemma/sampling.py):
    nothing is recommended over it, and only a user's `steps` carries over."""

    note: str  # what the checkpoint ships, for the listing

    def settings(self) -> dict:
        return {}


# how a checkpoint's weights are stored, and the ones engine.load_model reads (engine/formats/): full
# precision, compressed-tensors' FP8 and packed int4/int8 schemes, GGUF files whose block types are all
# among Q4_0, Q4_1, Q4_K, Q5_0, Q5_1, Q6_K, Q8_0 (Q4_K_M: Q4_K, Q6_K and llama.cpp's Q5_0/Q8_0 fallbacks). An
# entry in another format (compressed-tensors NVFP4, AWQ, GGUF Q5_K or the IQ types) is listed as not loading
SAFETENSORS = "safetensors"
LOADS = (SAFETENSORS, "compressed-tensors FP8-dynamic", "compressed-tensors W4A16",
         "compressed-tensors W8A16", "gguf Q8_0", "gguf Q6_K", "gguf Q4_K_M", "gguf Q4_0", "gguf Q4_1",
         "gguf Q5_0", "gguf Q5_1")
MEMORY = ("none", "int8", "int4")  # the --quantize settings the listing shows memory for, in bf16


@dataclass(frozen=True)
class Entry:
    id: str
    family: str  # engine/families.py, or engine/gemma's "diffusion-gemma"
    # second-hand (see `source`): a ModelConfig, or DiffusionGemma's config.json, parsed by `shape` on use
    # (engine.gemma imports torch, and find() must not)
    config: ModelConfig | dict
    context: int | None  # tokens (prompt + output) the authors document; None: not documented
    mask_id: int | None  # None: the tokenizer's mask token (DiffusionGemma has none: its canvas is noise)
    eos: str  # how an answer ends
    sampler: Recommended | FromCheckpoint
    source: str
    checked: bool = False  # loaded from a real download and compared with its config.json
    format: str = SAFETENSORS  # e.g. "gguf Q4_K_M", "compressed-tensors FP8-dynamic"
    quantize: str | None = None  # the packed weights a quantized format loads as (engine/fit.py FORMATS)

    @property
    def shape(self):
        """The network's shape: engine.config.ModelConfig or engine.gemma.config.GemmaConfig."""
        if isinstance(self.config, ModelConfig):
            return self.config
        from engine.gemma.config import GemmaConfig

        return GemmaConfig.from_hf(self.config)

    @property
    def loads(self) -> bool:
        return self.format in LOADS

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
# google/diffusiongemma-26B-A4B-it as its converter writes it (reference 1): text only, the vision tower is
# neither loaded nor counted; five sliding layers (8 KV heads of 256) to one full (2 KV heads of 512, K = V)
DIFFUSION_GEMMA_26B = {
    "model_type": "diffusion_gemma",
    "canvas_length": 256,
    "text_config": {
        "vocab_size": 262144, "hidden_size": 2816, "intermediate_size": 2112, "num_hidden_layers": 30,
        "num_attention_heads": 16, "num_key_value_heads": 8, "head_dim": 256, "global_head_dim": 512,
        "num_global_key_value_heads": 2, "sliding_window": 1024, "num_experts": 128, "top_k_experts": 8,
        "moe_intermediate_size": 704, "max_position_embeddings": 262144,
        "use_bidirectional_attention": "vision",
    },
}
GEMMA = "reference diffusion-gemma.md 1, 3; transformers diffusion_gemma converter and generation config"
GEMMA_EOS = "ends at EOS (1) or 106; its generation_config.json adds 50; pad 0"
GEMMA_QUANTIZED = GEMMA + "; Hugging Face collection RedHatAI/diffusiongemma-26b-a4b-it"
GEMMA_SAMPLING = FromCheckpoint("checkpoint's: entropy bound 0.1, 48 steps, T 0.8 to 0.4, stable stop")
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
    Entry("google/diffusiongemma-26B-A4B-it", "diffusion-gemma", DIFFUSION_GEMMA_26B, 262144, None,
          GEMMA_EOS, GEMMA_SAMPLING, GEMMA),
    # quantized by Red Hat (ids from the Hub's RedHatAI collection "diffusiongemma-26B-A4B-it"): the same
    # network, experts split per expert as vLLM saves them. unsloth's GGUF repo holds several files, which the
    # Hub download (safetensors only) does not fetch: download the .gguf and pass the file. No cyankiwi
    # AWQ-INT4 id was found
    Entry("RedHatAI/diffusiongemma-26B-A4B-it-FP8-dynamic", "diffusion-gemma", DIFFUSION_GEMMA_26B, 262144,
          None, GEMMA_EOS, GEMMA_SAMPLING, GEMMA_QUANTIZED, format="compressed-tensors FP8-dynamic",
          quantize="int8"),
    Entry("RedHatAI/diffusiongemma-26B-A4B-it-NVFP4", "diffusion-gemma", DIFFUSION_GEMMA_26B, 262144, None,
          GEMMA_EOS, GEMMA_SAMPLING, GEMMA_QUANTIZED, format="compressed-tensors NVFP4", quantize="int4"),
)


def find(spec: str | Path | None) -> Entry | None:
    """The entry a Hub id names (any case, any `@revision`), or the entry of a Hub-cache snapshot folder."""
    if spec is None:
        return None
    name = repo_id_of(spec) or str(spec).split("@", 1)[0]
    return next((e for e in CATALOGUE if e.id.lower() == name.lower()), None)


def lines() -> list[str]:
    """One line per entry: id, family, parameters, format, memory with each --quantize (bf16), whether it
    loads, context, mask, logits, sampler, EOS."""
    head = ("id", "family", "params", "format", *("bf16" if q == "none" else q for q in MEMORY), "loads",
            "context", "mask", "logits", "sampler", "checked", "EOS")
    rows = [head] + [_row(e) for e in CATALOGUE]
    widths = [max(len(r[i]) for r in rows) for i in range(len(head) - 1)]
    return ["  ".join([*(c.ljust(w) for c, w in zip(r, widths)), r[-1]]) for r in rows]


def memory(e: Entry, quantize: str) -> str:
    """What `unmask fit` totals for the entry in bf16 with --quantize `quantize`; "-" for a setting its
    format does not load as."""
    import torch

    from engine.fit import GB, need

    q = None if quantize == "none" else quantize
    if e.quantize is not None and q != e.quantize:
        return "-"
    return f"{need(e.shape, torch.bfloat16, q, working=True).total / GB:.1f} GB"


def _row(e: Entry) -> tuple[str, ...]:
    s = e.sampler
    if isinstance(s, FromCheckpoint):
        sampler = s.note
    else:
        sampler = f"{s.confidence} T={s.temperature:g} top-p={s.top_p:g}" + (" gumbel" if s.gumbel else "")
        sampler += f" blocks={s.block_size}" if s.block_size else ""
    masked = isinstance(e.config, ModelConfig)
    return (
        e.id,
        e.family,
        f"{e.parameters / 1e9:.2f}B",
        e.format,
        *(memory(e, q) for q in MEMORY),
        "yes" if e.loads else "not yet",
        str(e.context or "?"),
        str(e.mask_id or "tokenizer's") if masked else "none",
        ("shifted" if e.shape.shift else "unshifted") if masked else "block",
        sampler,
        "checked" if e.checked else "not checked",
        e.eos,
    )
