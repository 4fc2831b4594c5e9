"""Model shape and special tokens, read from a checkpoint's config.json by its family."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ModelConfig:
    vocab_size: int
    hidden_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    intermediate_size: int
    head_dim: int = 0  # 0: hidden_size // num_heads
    rms_norm_eps: float = 1e-6
    rope_theta: float = 10000.0
    max_position_embeddings: int = 4096
    qkv_bias: bool = True
    tie_word_embeddings: bool = False
    shift: bool = True  # Dream-style heads: the logit for token i is read from output i - 1
    family: str = "dream"

    def __post_init__(self):
        if self.head_dim == 0:
            object.__setattr__(self, "head_dim", self.hidden_size // self.num_heads)
        assert self.num_heads % self.num_kv_heads == 0, "num_heads must be a multiple of num_kv_heads"

    @property
    def qkv_sizes(self) -> tuple[int, int, int]:
        d = self.head_dim
        return self.num_heads * d, self.num_kv_heads * d, self.num_kv_heads * d

    @classmethod
    def from_qwen2(cls, d: dict, *, shift: bool, family: str) -> ModelConfig:
        rope = d.get("rope_parameters") or {}
        return cls(
            vocab_size=d["vocab_size"],
            hidden_size=d["hidden_size"],
            num_layers=d["num_hidden_layers"],
            num_heads=d["num_attention_heads"],
            num_kv_heads=d.get("num_key_value_heads") or d["num_attention_heads"],
            intermediate_size=d["intermediate_size"],
            head_dim=d.get("head_dim") or 0,
            rms_norm_eps=d.get("rms_norm_eps", 1e-6),
            rope_theta=rope.get("rope_theta", d.get("rope_theta", 10000.0)),
            max_position_embeddings=d.get("max_position_embeddings", 4096),
            qkv_bias=True,
            tie_word_embeddings=bool(d.get("tie_word_embeddings", False)),
            shift=shift,
            family=family,
        )

    @classmethod
    def from_llada(cls, d: dict) -> ModelConfig:
        heads = d["n_heads"]
        return cls(
            vocab_size=d.get("embedding_size") or d["vocab_size"],
            hidden_size=d["d_model"],
            num_layers=d["n_layers"],
            num_heads=heads,
            num_kv_heads=d.get("n_kv_heads") or heads,
            intermediate_size=d.get("mlp_hidden_size") or d.get("mlp_ratio", 4) * d["d_model"],
            rms_norm_eps=d.get("rms_norm_eps", 1e-5),
            rope_theta=d.get("rope_theta", 10000.0),
            max_position_embeddings=d.get("max_sequence_length", 4096),
            qkv_bias=bool(d.get("include_bias", False)),
            tie_word_embeddings=bool(d.get("weight_tying", False)),
            shift=False,
            family="llada",
        )

    def to_dream_config(self, *, mask_id: int, eos_id: int, pad_id: int, bos_id: int | None) -> dict:
        """config.json for a checkpoint in the Dream layout (what our own training exports)."""
        return {
            "architectures": ["DreamModel"],
            "model_type": "Dream",
            "vocab_size": self.vocab_size,
            "hidden_size": self.hidden_size,
            "intermediate_size": self.intermediate_size,
            "num_hidden_layers": self.num_layers,
            "num_attention_heads": self.num_heads,
            "num_key_value_heads": self.num_kv_heads,
            "head_dim": self.head_dim,
            "hidden_act": "silu",
            "rms_norm_eps": self.rms_norm_eps,
            "rope_theta": self.rope_theta,
            "max_position_embeddings": self.max_position_embeddings,
            "tie_word_embeddings": self.tie_word_embeddings,
            "mask_token_id": mask_id,
            "eos_token_id": eos_id,
            "pad_token_id": pad_id,
            "bos_token_id": bos_id,
            "torch_dtype": "float32",
        }
