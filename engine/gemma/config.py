"""DiffusionGemma's shape, read from config.json's text_config (the vision tower is not loaded)."""

from __future__ import annotations

from dataclasses import dataclass

from engine.errors import CheckpointError

SLIDING, FULL = "sliding_attention", "full_attention"
ROPE_TYPES = ("default", "proportional")
# transformers' defaults for the fields a saved config may leave out (DiffusionGemmaTextConfig)
DEFAULT_ROPE = {
    SLIDING: {"rope_type": "default", "rope_theta": 10_000.0},
    FULL: {"rope_type": "proportional", "partial_rotary_factor": 0.25, "rope_theta": 1_000_000.0},
}
DEFAULT_GLOBAL_HEAD_DIM = 512
PER_LAYER_FIELDS = ("head_dim", "num_key_value_heads")


@dataclass(frozen=True)
class LayerSpec:
    sliding: bool  # sliding layers: own K and V, the cache keeps the last window - 1 tokens; full: K = V
    kv_heads: int
    head_dim: int
    rope_theta: float
    rope_pairs: int  # frequency pairs that rotate (proportional RoPE leaves the rest at frequency 0)
    rope_factor: float = 1.0


@dataclass(frozen=True)
class GemmaConfig:
    vocab_size: int
    hidden_size: int
    intermediate_size: int  # the dense MLP and the self-conditioning MLP
    num_heads: int
    layers: tuple[LayerSpec, ...]
    sliding_window: int
    num_experts: int
    top_k: int
    moe_intermediate_size: int
    rms_norm_eps: float = 1e-6
    final_logit_softcap: float | None = 30.0
    max_position_embeddings: int = 131_072
    canvas_length: int = 256
    tie_word_embeddings: bool = True

    @property
    def num_layers(self) -> int:
        return len(self.layers)

    @classmethod
    def from_hf(cls, d: dict) -> GemmaConfig:
        """config.json of DiffusionGemmaForBlockDiffusion; a bad field raises CheckpointError naming it."""
        t = d.get("text_config")
        if not isinstance(t, dict):
            raise CheckpointError("config.json: missing field 'text_config'")
        _check_supported(t)
        n = _need(t, "num_hidden_layers")
        types = _layer_types(t, n)
        return cls(
            vocab_size=_need(t, "vocab_size"),
            hidden_size=_need(t, "hidden_size"),
            intermediate_size=_need(t, "intermediate_size"),
            num_heads=_need(t, "num_attention_heads"),
            layers=tuple(_layer(t, i, kind) for i, kind in enumerate(types)),
            sliding_window=t.get("sliding_window") or 512,
            num_experts=_need(t, "num_experts"),
            top_k=_need(t, "top_k_experts"),
            moe_intermediate_size=_need(t, "moe_intermediate_size"),
            rms_norm_eps=t.get("rms_norm_eps", 1e-6),
            final_logit_softcap=t.get("final_logit_softcapping", 30.0),
            max_position_embeddings=t.get("max_position_embeddings", 131_072),
            canvas_length=d.get("canvas_length") or 256,
            tie_word_embeddings=bool(d.get("tie_word_embeddings", True)),
        )


def _need(t: dict, key: str):
    if t.get(key) is None:
        raise CheckpointError(f"config.json: missing field 'text_config.{key}'")
    return t[key]


def _check_supported(t: dict) -> None:
    checks = (
        ("use_bidirectional_attention", t.get("use_bidirectional_attention") in (None, "vision"),
         "null or 'vision'"),
        ("attention_bias", not t.get("attention_bias"), "false"),
        ("hidden_activation", t.get("hidden_activation", "gelu_pytorch_tanh") == "gelu_pytorch_tanh",
         "'gelu_pytorch_tanh'"),
    )
    for key, ok, want in checks:
        if not ok:
            raise CheckpointError(f"config.json: text_config.{key}={t[key]!r} is not supported (need {want})")


def _layer_types(t: dict, n: int) -> list[str]:
    types = t.get("layer_types")
    if types is None:  # transformers' default: five sliding layers, then one full
        types = [SLIDING if (i + 1) % 6 else FULL for i in range(n)]
    if not isinstance(types, list) or len(types) != n:
        got = len(types) if isinstance(types, list) else repr(types)
        raise CheckpointError(
            f"config.json: text_config.layer_types has {got} entries, num_hidden_layers is {n}"
        )
    bad = [x for x in types if x not in (SLIDING, FULL)]
    if bad:
        raise CheckpointError(
            f"config.json: text_config.layer_types entry {bad[0]!r} is not {SLIDING} or {FULL}"
        )
    return types[:-1] + [FULL]  # transformers forces the last layer to full attention


def _per_layer(t: dict, i: int, kind: str) -> dict:
    # transformers >= 5.24 writes the full layers' head size and KV heads as per_layer_config {"<i>": {...}}
    # (only the values that differ); earlier configs carry global_head_dim / num_global_key_value_heads.
    table = t.get("per_layer_config")
    if table is None:
        if kind == SLIDING:
            return {}
        kv = t.get("num_global_key_value_heads")
        heads = {} if kv is None else {"num_key_value_heads": kv}
        return {"head_dim": t.get("global_head_dim") or DEFAULT_GLOBAL_HEAD_DIM} | heads
    entry = table.get(str(i), table.get(i, {}))
    unknown = sorted(set(entry) - set(PER_LAYER_FIELDS))
    if unknown:
        raise CheckpointError(
            f"config.json: text_config.per_layer_config['{i}'].{unknown[0]} is not supported"
        )
    return entry


def _layer(t: dict, i: int, kind: str) -> LayerSpec:
    own = _per_layer(t, i, kind)
    head_dim = own.get("head_dim", _need(t, "head_dim"))
    rope = (t.get("rope_parameters") or DEFAULT_ROPE).get(kind) or DEFAULT_ROPE[kind]
    rope_type = rope.get("rope_type", "default")
    if rope_type not in ROPE_TYPES:
        raise CheckpointError(
            f"config.json: text_config.rope_parameters.{kind}.rope_type={rope_type!r} is not supported "
            f"(need one of {', '.join(ROPE_TYPES)})"
        )
    fraction = rope.get("partial_rotary_factor", 1.0)
    if rope_type == "default" and fraction != 1.0:
        raise CheckpointError(
            f"config.json: text_config.rope_parameters.{kind}.partial_rotary_factor={fraction} needs "
            "rope_type 'proportional'"
        )
    kv_heads = own.get("num_key_value_heads", _need(t, "num_key_value_heads"))
    if _need(t, "num_attention_heads") % kv_heads:
        raise CheckpointError(
            f"config.json: layer {i} has {kv_heads} key/value heads, which do not divide "
            f"text_config.num_attention_heads={t['num_attention_heads']}"
        )
    return LayerSpec(
        sliding=kind == SLIDING,
        kv_heads=kv_heads,
        head_dim=head_dim,
        rope_theta=float(rope.get("rope_theta", DEFAULT_ROPE[kind]["rope_theta"])),
        rope_pairs=int(fraction * head_dim // 2),
        rope_factor=float(rope.get("factor", 1.0)),
    )
