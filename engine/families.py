"""Model families: how a checkpoint's config and tensor names map onto our Transformer.

Each family is a small descriptor. Special token ids are never written here: they come from the checkpoint
(config.json, then tokenizer_config.json / special_tokens_map.json, then the named tokens below).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from engine.config import ModelConfig
from engine.errors import CheckpointError

# internal parameter name -> checkpoint tensor name(s); a tuple is concatenated (q, k, v -> wqkv)
WeightMap = dict[str, str | tuple[str, ...]]


@dataclass(frozen=True)
class Family:
    name: str
    config: Callable[[dict], ModelConfig]
    weights: Callable[[ModelConfig], WeightMap]
    mask_tokens: tuple[str, ...]  # token strings that name the mask when the config gives no id
    infill_eos: bool  # append EOS after the suffix (DreamOn's infilling prompt)
    ignored: tuple[str, ...] = ()  # tensor-name suffixes a checkpoint may carry that we recompute


def qwen2_weights(cfg: ModelConfig) -> WeightMap:
    m: WeightMap = {"embed.weight": "model.embed_tokens.weight", "norm.weight": "model.norm.weight"}
    if not cfg.tie_word_embeddings:
        m["head.weight"] = "lm_head.weight"
    for i in range(cfg.num_layers):
        p, q = f"layers.{i}.", f"model.layers.{i}."
        m[p + "attn_norm.weight"] = q + "input_layernorm.weight"
        m[p + "mlp_norm.weight"] = q + "post_attention_layernorm.weight"
        for kind in ("weight", "bias"):
            m[p + f"attn.wqkv.{kind}"] = tuple(q + f"self_attn.{x}_proj.{kind}" for x in "qkv")
        m[p + "attn.wo.weight"] = q + "self_attn.o_proj.weight"
        for ours, theirs in (("gate", "gate_proj"), ("up", "up_proj"), ("down", "down_proj")):
            m[p + f"mlp.{ours}.weight"] = q + f"mlp.{theirs}.weight"
    return m


def llada_weights(cfg: ModelConfig) -> WeightMap:
    t = "model.transformer."
    m: WeightMap = {"embed.weight": t + "wte.weight", "norm.weight": t + "ln_f.weight"}
    if not cfg.tie_word_embeddings:
        m["head.weight"] = t + "ff_out.weight"
    for i in range(cfg.num_layers):
        p, q = f"layers.{i}.", f"{t}blocks.{i}."
        m[p + "attn_norm.weight"] = q + "attn_norm.weight"
        m[p + "mlp_norm.weight"] = q + "ff_norm.weight"
        m[p + "attn.wqkv.weight"] = tuple(q + f"{x}_proj.weight" for x in "qkv")
        if cfg.qkv_bias:
            m[p + "attn.wqkv.bias"] = tuple(q + f"{x}_proj.bias" for x in "qkv")
        m[p + "attn.wo.weight"] = q + "attn_out.weight"
        # LLaDA's ff_proj is the gated branch (SiLU applied), ff_out the down projection
        for ours, theirs in (("gate", "ff_proj"), ("up", "up_proj"), ("down", "ff_out")):
            m[p + f"mlp.{ours}.weight"] = q + f"{theirs}.weight"
    return m


# LLaDA configs carry OLMo switches; these are the values our implementation covers.
LLADA_REQUIRED = {
    "block_type": "llama",
    "layer_norm_type": "rms",
    "attention_layer_norm": False,
    "alibi": False,
    "rope": True,
    "clip_qkv": None,
    "scale_logits": False,
    "input_emb_norm": False,
}


def llada_config(d: dict) -> ModelConfig:
    for key, want in LLADA_REQUIRED.items():
        if key in d and d[key] != want:
            raise CheckpointError(f"config.json: {key}={d[key]!r} is not supported for LLaDA (need {want!r})")
    return ModelConfig.from_llada(d)


def qwen2_config(shift: bool, family: str) -> Callable[[dict], ModelConfig]:
    def build(d: dict) -> ModelConfig:
        scaling = d.get("rope_scaling")
        if scaling and scaling.get("rope_type", scaling.get("type")) not in (None, "default"):
            raise CheckpointError(f"config.json: rope_scaling {scaling!r} is not supported")
        return ModelConfig.from_qwen2(d, shift=shift, family=family)

    return build


FAMILIES = {
    # Dream-v0, Dream-Coder-v0, DiffuCoder, DreamOn and unmask's own model: Qwen2 weights, shifted logits
    "dream": Family(
        "dream",
        qwen2_config(True, "dream"),
        qwen2_weights,
        ("<|mask|>",),
        infill_eos=True,
        ignored=("rotary_emb.inv_freq",),
    ),
    "llada": Family("llada", llada_config, llada_weights, ("<|mdm_mask|>",), infill_eos=False),
    # Open-dCoder: stock Qwen2 classes run with is_causal=False; mask id from the tokenizer
    "open-dcoder": Family(
        "open-dcoder",
        qwen2_config(True, "open-dcoder"),
        qwen2_weights,
        ("<|mask|>",),
        infill_eos=False,
        ignored=("rotary_emb.inv_freq",),
    ),
}
MODEL_TYPES = {"dream": "dream", "llada": "llada", "qwen2": "open-dcoder"}
ARCHITECTURES = {"DreamModel": "dream", "LLaDAModelLM": "llada", "Qwen2ForCausalLM": "open-dcoder"}


def family_for(config: dict) -> Family:
    model_type = str(config.get("model_type", "")).lower()
    if model_type in MODEL_TYPES:
        return FAMILIES[MODEL_TYPES[model_type]]
    for arch in config.get("architectures") or ():
        if arch in ARCHITECTURES:
            return FAMILIES[ARCHITECTURES[arch]]
    known = ", ".join(sorted(MODEL_TYPES))
    raise CheckpointError(
        f"config.json: unknown model_type {config.get('model_type')!r} (supported: {known})"
    )
