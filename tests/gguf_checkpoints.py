"""Tiny GGUF checkpoints, written by the gguf package's own GGUFWriter from a full-precision folder, with the
engine's name table (engine/formats/gguf.py) read the other way.

Block types come from gguf's own quantizers (gguf.quants.quantize: Q4_0, Q4_1, Q5_0, Q5_1, Q8_0), except Q4_K:
gguf 0.19 dequantizes Q4_K but cannot write it (its Q4_K class has no quantize_blocks), and no other PyPI
package here does, so `q4_k` below encodes it (min-max per sub-block of 32, 6-bit scales and mins under a
super-block's fp16 d and dmin, ggml-quants.c's byte layout) and the tests check every file's blocks against
gguf's reference decoder. As llama.cpp does, a row whose width no block of the asked type divides falls back
(Q4_K -> Q5_0), 1-D tensors and routers stay F32, and the embedding is written F16.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
from safetensors.torch import load_file

from engine.formats.gguf import DREAM, GEMMA, gguf_name

SIDE_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "generation_config.json")
FALLBACK = {"Q4_K": "Q5_0"}  # llama.cpp's, for a row width 256 does not divide


def q4_k(w: np.ndarray) -> np.ndarray:
    """Rows [R, in] (in a multiple of 256) -> Q4_K blocks uint8 [R, in / 256 * 144]."""
    rows, width = w.shape
    x = w.reshape(rows, width // 256, 8, 32).astype(np.float32)
    low = np.minimum(x.min(-1), 0)  # [R, n, 8]: W = q * scale - low_magnitude, zero representable
    scale = (x.max(-1) - low) / 15
    d = (scale.max(-1, keepdims=True) / 63).astype(np.float16)
    dmin = (-low.min(-1, keepdims=True) / 63).astype(np.float16)
    safe = lambda v: np.where(v == 0, 1, v)  # noqa: E731
    sc = np.clip(np.rint(scale / safe(d.astype(np.float32))), 0, 63).astype(np.uint8)
    mins = np.clip(np.rint(-low / safe(dmin.astype(np.float32))), 0, 63).astype(np.uint8)
    step, floor = d.astype(np.float32) * sc, dmin.astype(np.float32) * mins
    q = np.clip(np.rint((x + floor[..., None]) / safe(step)[..., None]), 0, 15).astype(np.uint8)
    scales = np.concatenate([
        (sc[..., :4] & 63) | ((sc[..., 4:] >> 4) << 6),
        (mins[..., :4] & 63) | ((mins[..., 4:] >> 4) << 6),
        (sc[..., 4:] & 15) | ((mins[..., 4:] & 15) << 4),
    ], -1)  # [R, n, 12]
    pairs = q.reshape(rows, width // 256, 4, 2, 32)  # sub-blocks 2j (low nibbles) and 2j + 1 (high)
    qs = (pairs[..., 0, :] | (pairs[..., 1, :] << 4)).reshape(rows, width // 256, 128)
    parts = [d.view(np.uint8).reshape(rows, -1, 2), dmin.view(np.uint8).reshape(rows, -1, 2), scales, qs]
    return np.concatenate(parts, -1).reshape(rows, -1)


def quantize(w: np.ndarray, kind: str) -> np.ndarray:
    import gguf

    if kind == "Q4_K":
        return q4_k(w.reshape(-1, w.shape[-1])).reshape(*w.shape[:-1], -1)
    return gguf.quants.quantize(w, gguf.GGMLQuantizationType[kind])


def kind_of(gname: str, w: np.ndarray, kind: str, kinds: dict[str, str]) -> str:
    import gguf

    if w.ndim == 1 or gname.endswith("ffn_gate_inp.weight"):
        return "F32"
    if gname == "token_embd.weight":
        return "F16"
    chosen = next((k for part, k in kinds.items() if part in gname), kind)
    if w.shape[-1] % gguf.GGML_QUANT_SIZES[gguf.GGMLQuantizationType[chosen]][0]:
        chosen = FALLBACK.get(chosen, "F16")
    return chosen


def write_gguf(source: Path, file: Path, kind: str, kinds: dict[str, str] | None = None,
               config_beside: bool = False) -> Path:
    """`source` (config.json, model.safetensors, tokenizer) as a GGUF file of block type `kind` (kinds: a
    type per tensor-name fragment, e.g. {"attn_v": "Q8_0"}), tokenizer files beside it; config.json too
    with config_beside, else the config is the metadata alone."""
    import gguf

    config = json.loads((source / "config.json").read_text())
    gemma = config.get("model_type") == "diffusion_gemma"
    layout = GEMMA if gemma else DREAM
    file.parent.mkdir(parents=True, exist_ok=True)
    for name in SIDE_FILES + (("config.json",) if config_beside else ()):
        if (source / name).exists():
            shutil.copy(source / name, file.parent / name)
    writer = gguf.GGUFWriter(file, layout)
    (gemma_metadata if gemma else dream_metadata)(writer, config)
    for name, t in load_file(source / "model.safetensors").items():
        if "vision" in name:
            continue
        gname = gguf_name(name, layout)
        assert gname is not None, name
        w = t.float().numpy()
        chosen = kind_of(gname, w, kind, kinds or {})
        if chosen in ("F32", "F16"):
            writer.add_tensor(gname, w.astype(np.float16 if chosen == "F16" else np.float32))
        else:
            writer.add_tensor(gname, quantize(w, chosen), raw_dtype=gguf.GGMLQuantizationType[chosen])
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return file


def tokens(writer, d: dict) -> None:
    for key, add in (("bos_token_id", writer.add_bos_token_id), ("eos_token_id", writer.add_eos_token_id),
                     ("pad_token_id", writer.add_pad_token_id), ("mask_token_id", writer.add_mask_token_id)):
        value = d.get(key)
        if isinstance(value, list):
            value = value[0]
        if value is not None:
            add(value)


def dream_metadata(writer, c: dict) -> None:
    writer.add_vocab_size(c["vocab_size"])
    writer.add_context_length(c["max_position_embeddings"])
    writer.add_embedding_length(c["hidden_size"])
    writer.add_block_count(c["num_hidden_layers"])
    writer.add_feed_forward_length(c["intermediate_size"])
    writer.add_head_count(c["num_attention_heads"])
    writer.add_head_count_kv(c["num_key_value_heads"])
    writer.add_key_length(c.get("head_dim") or c["hidden_size"] // c["num_attention_heads"])
    writer.add_layer_norm_rms_eps(c["rms_norm_eps"])
    writer.add_rope_freq_base(c["rope_theta"])
    writer.add_diffusion_shift_logits(True)  # Dream reads each token's logits from the position before it
    tokens(writer, c)


def gemma_metadata(writer, c: dict) -> None:
    from engine.gemma.config import GemmaConfig

    cfg = GemmaConfig.from_hf(c)  # the values the model runs with, defaults resolved
    full = next(s for s in cfg.layers if not s.sliding)
    sliding = next((s for s in cfg.layers if s.sliding), full)
    writer.add_vocab_size(cfg.vocab_size)
    writer.add_context_length(cfg.max_position_embeddings)
    writer.add_embedding_length(cfg.hidden_size)
    writer.add_block_count(cfg.num_layers)
    writer.add_feed_forward_length(cfg.intermediate_size)
    writer.add_head_count(cfg.num_heads)
    writer.add_head_count_kv([s.kv_heads for s in cfg.layers])
    writer.add_key_length(full.head_dim)
    writer.add_key_length_swa(sliding.head_dim)
    writer.add_sliding_window(cfg.sliding_window)
    writer.add_sliding_window_pattern([s.sliding for s in cfg.layers])
    writer.add_expert_count(cfg.num_experts)
    writer.add_expert_used_count(cfg.top_k)
    writer.add_expert_feed_forward_length(cfg.moe_intermediate_size)
    writer.add_layer_norm_rms_eps(cfg.rms_norm_eps)
    writer.add_final_logit_softcapping(cfg.final_logit_softcap)
    writer.add_rope_freq_base(full.rope_theta)
    writer.add_rope_freq_base_swa(sliding.rope_theta)
    writer.add_rope_dimension_count(2 * full.rope_pairs)
    writer.add_uint32("diffusion.canvas_length", cfg.canvas_length)
    tokens(writer, c["text_config"])
