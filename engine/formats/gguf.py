"""GGUF files (llama.cpp's format), read with the `gguf` package's reader (memory-mapped, no code runs):
tensors by their Hugging Face names through one table per layout, the config from the file's metadata.

Layouts (`general.architecture`): `dream` (llama.cpp's Dream conversion: Qwen2 names, e.g. `blk.N.attn_q`)
and `diffusion-gemma`: Gemma 4's llama.cpp names (`ffn_gate_up_exps`, `ffn_gate_inp.scale`,
`layer_output_scale`, ...) plus, for what only DiffusionGemma has, `enc.blk.N.layer_output_scale` (the
encoder's layer scalars, after llama.cpp's `enc.` prefix for encoders) and `self_cond.*` (the
self-conditioning MLP). llama.cpp has no DiffusionGemma support yet (open pull requests), so those names
are this engine's until it does.

Tensor types: F32, F16 and BF16, and the block types of engine/formats/ggml.py (Q4_0, Q4_1, Q4_K onto
Int4Linear as they are; Q5_0, Q5_1, Q6_K, Q8_0 onto Int8Linear, requantized per output channel). Another type
is refused with one line naming the file, the tensor and its type.

The config: a config.json beside the file when there is one (exact), else the metadata's architecture keys
(`dream.block_count`, `diffusion-gemma.attention.sliding_window_pattern`, ...: `config` below). The
tokenizer: tokenizer.json beside the file (a GGUF's own vocabulary is not read).
"""

from __future__ import annotations

import functools
import re
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from engine.errors import CheckpointError
from engine.formats.ggml import BLOCKS, GROUP, INT4, int4, reader
from engine.formats.packed import (
    CHUNK_ELEMENTS,
    Int4Weight,
    Int8Weight,
    Stored,
    Weight,
    decoded,
    requantized,
)

DREAM, GEMMA = "dream", "diffusion-gemma"
FLOATS = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16}
IGNORED = ("rope_freqs.weight",)  # llama.cpp's precomputed RoPE factors: the engine computes its own

# (llama.cpp name, Hugging Face name) per layout, read both ways; {i} is the layer
_QWEN2 = (
    ("token_embd.weight", "model.embed_tokens.weight"),
    ("output_norm.weight", "model.norm.weight"),
    ("output.weight", "lm_head.weight"),
    ("blk.{i}.attn_norm.weight", "model.layers.{i}.input_layernorm.weight"),
    ("blk.{i}.ffn_norm.weight", "model.layers.{i}.post_attention_layernorm.weight"),
    *((f"blk.{{i}}.attn_{x}.{kind}", f"model.layers.{{i}}.self_attn.{x}_proj.{kind}")
      for x in "qkv" for kind in ("weight", "bias")),
    ("blk.{i}.attn_output.weight", "model.layers.{i}.self_attn.o_proj.weight"),
    *((f"blk.{{i}}.ffn_{x}.weight", f"model.layers.{{i}}.mlp.{x}_proj.weight")
      for x in ("gate", "up", "down")),
)
_D, _E = "model.decoder.", "model.encoder.language_model."
_GEMMA = (
    ("token_embd.weight", _D + "embed_tokens.weight"),
    ("output_norm.weight", _D + "norm.weight"),
    ("output.weight", "lm_head.weight"),
    *((f"blk.{{i}}.{g}.weight", f"{_D}layers.{{i}}.{h}.weight") for g, h in (
        ("attn_norm", "input_layernorm"), ("post_attention_norm", "post_attention_layernorm"),
        ("ffn_norm", "pre_feedforward_layernorm"), ("post_ffw_norm", "post_feedforward_layernorm"),
        ("pre_ffw_norm_2", "pre_feedforward_layernorm_2"),
        ("post_ffw_norm_1", "post_feedforward_layernorm_1"),
        ("post_ffw_norm_2", "post_feedforward_layernorm_2"),
        ("attn_q", "self_attn.q_proj"), ("attn_k", "self_attn.k_proj"), ("attn_v", "self_attn.v_proj"),
        ("attn_output", "self_attn.o_proj"), ("attn_q_norm", "self_attn.q_norm"),
        ("attn_k_norm", "self_attn.k_norm"), ("ffn_gate", "mlp.gate_proj"), ("ffn_up", "mlp.up_proj"),
        ("ffn_down", "mlp.down_proj"), ("ffn_gate_inp", "router.proj"))),
    ("blk.{i}.ffn_gate_inp.scale", _D + "layers.{i}.router.scale"),
    ("blk.{i}.ffn_down_exps.scale", _D + "layers.{i}.router.per_expert_scale"),
    ("blk.{i}.ffn_gate_up_exps.weight", _D + "layers.{i}.experts.gate_up_proj"),
    ("blk.{i}.ffn_down_exps.weight", _D + "layers.{i}.experts.down_proj"),
    ("blk.{i}.layer_output_scale.weight", _D + "layers.{i}.layer_scalar"),
    ("enc.blk.{i}.layer_output_scale.weight", _E + "layers.{i}.layer_scalar"),
    ("self_cond.norm.weight", _D + "self_conditioning.pre_norm.weight"),
    *((f"self_cond.ffn_{x}.weight", f"{_D}self_conditioning.{x}_proj.weight")
      for x in ("gate", "up", "down")),
)
TABLES = {DREAM: _QWEN2, GEMMA: _GEMMA}


@functools.cache
def _pattern(template: str) -> re.Pattern:
    return re.compile(re.escape(template).replace(r"\{i\}", r"(?P<i>\d+)") + "$")


def _rename(name: str, table: tuple[tuple[str, str], ...], forward: bool) -> str | None:
    for pair in table:
        source, target = pair if forward else pair[::-1]
        if m := _pattern(source).match(name):
            return target.replace("{i}", m.groupdict().get("i") or "")
    return None


def hf_name(name: str, layout: str) -> str | None:
    """A llama.cpp tensor name -> its Hugging Face name in the layout; None if the table has none."""
    return _rename(name, TABLES[layout], True)


def gguf_name(name: str, layout: str) -> str | None:
    """A Hugging Face tensor name -> its llama.cpp name in the layout (writers, e.g. the tests')."""
    return _rename(name, TABLES[layout], False)


# ---- files


def find(path: Path) -> Path | None:
    """The GGUF file a path names: itself, or the one .gguf in a folder without safetensors weights."""
    if path.is_file():
        return path if path.suffix == ".gguf" else None
    if not path.is_dir() or any(path.glob("model.safetensors*")):
        return None
    found = sorted(path.glob("*.gguf"))
    if len(found) > 1:
        names = ", ".join(p.name for p in found)
        raise CheckpointError(f"{path}: several GGUF files ({names}); pass the one to load")
    return found[0] if found else None


def open_reader(path: Path):
    try:
        import gguf
    except ImportError:
        raise CheckpointError(
            f"{path}: reading GGUF needs the gguf package (pip install 'unmask[formats]')") from None
    try:
        return gguf.GGUFReader(path)
    except (ValueError, OSError, IndexError) as e:
        raise CheckpointError(f"{path}: not a readable GGUF file ({e})") from None


def layout(path: Path, read) -> str:
    arch = field(read, "general.architecture")
    if arch not in TABLES:
        raise CheckpointError(f"{path.name}: GGUF architecture {arch!r} is not supported "
                              f"(supported: {', '.join(TABLES)})")
    return arch


def packing(path: Path) -> str | None:
    """"int4" when the file holds a 4-bit type, "int8" for another block type, None for floats alone."""
    kinds = {t.tensor_type.name for t in open_reader(path).tensors}
    return "int4" if kinds & set(INT4) else "int8" if kinds & set(BLOCKS) else None


def field(read, key: str, default=None):
    f = read.fields.get(key)
    if f is None:
        return default
    value = f.contents()
    # a float32 value as the decimal it was written from (1e-06, not 9.99999997e-07)
    return float(str(np.float32(value))) if f.types[0].name == "FLOAT32" else value


class GGUF:
    """The tensors of a GGUF file, by their Hugging Face names: `files` names each one's file, `read`
    returns a tensor (F32, F16, BF16) or a Stored (engine/formats/packed.py)."""

    def __init__(self, path: Path):
        self.path, self._reader = path, open_reader(path)
        self.layout = layout(path, self._reader)
        self._tensors, self.files = {}, {}
        for t in self._reader.tensors:
            name = hf_name(t.name, self.layout)
            if name is None and t.name in IGNORED:
                continue
            if name is None:
                raise CheckpointError(
                    f"{path.name}: tensor {t.name!r} has no counterpart in the {self.layout} layout")
            kind = t.tensor_type.name
            if kind not in FLOATS and kind not in BLOCKS:
                raise CheckpointError(
                    f"{path.name}: tensor {t.name!r} has type {kind}, which unmask does not read "
                    f"(supported: {', '.join([*FLOATS, *BLOCKS])})")
            self._tensors[name], self.files[name] = t, path

    def read(self, name: str) -> Weight:
        t = self._tensors[name]
        kind, shape = t.tensor_type.name, torch.Size(reversed([int(n) for n in t.shape]))
        if kind in FLOATS:
            return raw(t.data).view(FLOATS[kind]).reshape(shape)
        data = t.data.reshape(-1, t.data.shape[-1])  # [rows, bytes per row]

        def rows(a: int, b: int) -> Tensor:
            return raw(data[a:b])

        if kind in INT4:
            def packed(dtype: torch.dtype) -> Int4Weight:
                return int4_weight(rows, shape, kind)
        else:
            def packed(dtype: torch.dtype) -> Int8Weight:
                return requantized(reader(rows, kind), shape, dtype)

        return Stored(shape, packed, lambda dtype: decoded(reader(rows, kind), shape, dtype))


def int4_weight(rows, shape: torch.Size, kind: str) -> Int4Weight:
    # the blocks' own 4-bit values, scales and offsets (ggml.int4), a few MB of rows at a time
    count, width = shape[:-1].numel(), shape[-1]
    q = torch.empty(count, width // 2, dtype=torch.uint8)
    scale, offset = torch.empty(count, width // GROUP), torch.empty(count, width // GROUP)
    step = max(1, CHUNK_ELEMENTS // width)
    for r in range(0, count, step):
        q[r : r + step], scale[r : r + step], offset[r : r + step] = int4(rows(r, min(r + step, count)), kind)
    stack = shape[:-1]
    return Int4Weight(q.view(*stack, -1), scale.view(*stack, -1), offset.view(*stack, -1), GROUP)


def raw(array: np.ndarray) -> Tensor:
    # a copy of part of the memory-mapped file as a tensor (the map is read-only; torch wants to own its data)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torch.from_numpy(np.array(array))


# ---- the config, from the metadata


def config(path: Path) -> dict:
    """config.json beside the file, else a Hugging Face-style config built from the metadata."""
    beside = path.parent / "config.json"
    if beside.exists():
        from engine.formats.folder import read_config

        return read_config(path.parent)
    read = open_reader(path)
    arch = layout(path, read)
    shapes = {t.name: [int(n) for n in t.shape] for t in read.tensors}

    def need(key: str):
        value = field(read, f"{arch}.{key}")
        if value is None:
            raise CheckpointError(f"{path.name}: missing metadata {arch}.{key} (or a config.json beside it)")
        return value

    special = {f"{k}_token_id": field(read, f"tokenizer.ggml.{g}_token_id")
               for k, g in (("bos", "bos"), ("eos", "eos"), ("pad", "padding"), ("mask", "mask"))}
    vocab = field(read, f"{arch}.vocab_size") or shapes["token_embd.weight"][1]
    tied = "output.weight" not in shapes
    if arch == DREAM:
        return {"model_type": "dream", "vocab_size": vocab, "hidden_size": need("embedding_length"),
                "intermediate_size": need("feed_forward_length"), "num_hidden_layers": need("block_count"),
                "num_attention_heads": need("attention.head_count"),
                "num_key_value_heads": field(read, f"{arch}.attention.head_count_kv"),
                "head_dim": field(read, f"{arch}.attention.key_length"),
                "rms_norm_eps": need("attention.layer_norm_rms_epsilon"),
                "rope_theta": need("rope.freq_base"), "max_position_embeddings": need("context_length"),
                "tie_word_embeddings": tied, **special}
    return {"model_type": "diffusion_gemma", "tie_word_embeddings": tied, **special,
            "canvas_length": field(read, "diffusion.canvas_length"), "text_config": gemma_text(need, vocab)}


def gemma_text(need, vocab: int) -> dict:
    # DiffusionGemmaTextConfig's fields from Gemma 4's llama.cpp keys: the sliding layers' head size and
    # RoPE base under the _swa keys, the full layers' under the plain ones; KV heads per layer
    sliding = [bool(s) for s in need("attention.sliding_window_pattern")]
    kv = need("attention.head_count_kv")
    kv = kv if isinstance(kv, list) else [kv] * len(sliding)
    head, full_head = need("attention.key_length_swa"), need("attention.key_length")
    first = sliding.index(True) if True in sliding else 0
    return {
        "vocab_size": vocab, "hidden_size": need("embedding_length"),
        "intermediate_size": need("feed_forward_length"), "num_hidden_layers": need("block_count"),
        "layer_types": ["sliding_attention" if s else "full_attention" for s in sliding],
        "num_attention_heads": need("attention.head_count"), "num_key_value_heads": kv[first],
        "head_dim": head, "sliding_window": need("attention.sliding_window"),
        "per_layer_config": {str(i): {"head_dim": full_head, "num_key_value_heads": kv[i]}
                             for i, s in enumerate(sliding) if not s},
        "num_experts": need("expert_count"), "top_k_experts": need("expert_used_count"),
        "moe_intermediate_size": need("expert_feed_forward_length"),
        "rms_norm_eps": need("attention.layer_norm_rms_epsilon"),
        "final_logit_softcapping": need("final_logit_softcapping"),
        "max_position_embeddings": need("context_length"),
        "rope_parameters": {
            "sliding_attention": {"rope_type": "default", "rope_theta": need("rope.freq_base_swa")},
            "full_attention": {"rope_type": "proportional", "rope_theta": need("rope.freq_base"),
                               "partial_rotary_factor": need("rope.dimension_count") / full_head},
        },
    }
