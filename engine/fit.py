"""Whether a checkpoint fits: the bytes its weights and KV cache need on a device, against what is free there.

The weights are counted from config.json with the shapes our Transformer allocates; one forward's activations
are not counted, so a refusal is certain and a pass is not a promise.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import torch

from engine.config import ModelConfig
from engine.errors import DoesNotFit
from engine.families import family_for
from engine.load import read_config
from engine.quantize import int8_by_int8

KV_POSITIONS = 2048  # a completion's context plus canvas stays below this (the server: 1536 + canvas)
GB = 1e9


@dataclass(frozen=True)
class Need:
    weights: int  # bytes
    kv_cache: int  # bytes, for `positions` positions
    positions: int

    @property
    def total(self) -> int:
        return self.weights + self.kv_cache


def parameters(cfg: ModelConfig) -> tuple[int, int, int]:
    """(weights of the linear layers int8 replaces, their output channels, every other parameter) of
    Transformer(cfg); engine/quantize.py replaces the blocks' linear layers and an untied head."""
    h, (q, k, v) = cfg.hidden_size, cfg.qkv_sizes
    qkv = q + k + v
    linear = cfg.num_layers * (h * qkv + q * h + 3 * h * cfg.intermediate_size)
    rows = cfg.num_layers * (qkv + h + 2 * cfg.intermediate_size + h)
    if not cfg.tie_word_embeddings:
        linear, rows = linear + cfg.vocab_size * h, rows + cfg.vocab_size
    bias = qkv if cfg.qkv_bias else 0
    other = cfg.vocab_size * h + cfg.num_layers * (bias + 2 * h) + h  # embedding, biases, norms
    return linear, rows, other


def parameter_count(config: dict) -> int:
    """The weights a checkpoint's config.json implies (0 when a field is missing: the loader names it)."""
    try:
        cfg = family_for(config).config(config)
    except KeyError:
        return 0
    linear, _, other = parameters(cfg)
    return linear + other


def need(cfg: ModelConfig, dtype: torch.dtype, quantize: str | None = None, positions: int = 0,
         device: str = "cpu") -> Need:
    size = dtype.itemsize
    linear, rows, other = parameters(cfg)
    # int8: one byte per weight and a scale (in the compute dtype) per output channel
    weights = (linear + rows * size if quantize == "int8" else linear * size) + other * size
    if quantize == "int8" and int8_by_int8(device, dtype, linear + other):
        weights += linear  # fbgemm's packed copy of every int8 weight (engine/quantize.py)
    positions = positions or min(cfg.max_position_embeddings, KV_POSITIONS)
    kv = 2 * cfg.num_layers * cfg.num_kv_heads * cfg.head_dim * positions * size  # keys and values
    return Need(weights, kv, positions)


def available_bytes(device: str) -> int | None:
    """Memory free for a model: MemAvailable on the CPU, free memory on a CUDA device; None where unknown."""
    if device.startswith("cuda"):
        return torch.cuda.mem_get_info(torch.device(device))[0]
    if device != "cpu":
        return None
    try:
        meminfo = Path("/proc/meminfo").read_text()
    except OSError:
        return None
    found = re.search(r"^MemAvailable:\s+(\d+) kB", meminfo, re.M)
    return int(found.group(1)) * 1024 if found else None


def check(folder: Path, device: str, dtype: torch.dtype, quantize: str | None = None, name: str = "") -> None:
    """Raise DoesNotFit, with the numbers and what would fit, when the checkpoint cannot fit on the device."""
    config = read_config(folder)
    try:
        cfg = family_for(config).config(config)
    except KeyError:
        return  # the loader names the missing field
    free = available_bytes(str(device))
    want = need(cfg, dtype, quantize, device=str(device))
    if free is None or want.total <= free:
        return
    raise DoesNotFit(
        f"model {name or str(folder)!r} needs {want.total / GB:.1f} GB on {device} "
        f"in {_label(dtype, quantize)} "
        f"(weights {want.weights / GB:.1f} GB, KV cache {want.kv_cache / GB:.2f} GB for {want.positions} "
        f"positions) but {free / GB:.1f} GB is available; {_advice(cfg, dtype, quantize, free, str(device))}"
    )


def _label(dtype: torch.dtype, quantize: str | None) -> str:
    name = str(dtype).removeprefix("torch.")
    return f"int8 with {name}" if quantize == "int8" else name


def _advice(cfg: ModelConfig, dtype: torch.dtype, quantize: str | None, free: int, device: str) -> str:
    wide = dtype.itemsize > 2
    options = [("--dtype bfloat16", torch.bfloat16, quantize)] if wide else []
    if quantize != "int8":
        options.append(("--quantize int8", dtype, "int8"))
        options += [("--quantize int8 --dtype bfloat16", torch.bfloat16, "int8")] if wide else []
    needs = sorted(((need(cfg, d, q, device=device).total, flag) for flag, d, q in options), reverse=True)
    fitting = [f"{flag} ({total / GB:.1f} GB)" for total, flag in needs if total <= free]
    if fitting:
        return "it fits with " + " or ".join(fitting)
    least = f" (least: {needs[-1][1]}, {needs[-1][0] / GB:.1f} GB)" if needs else ""
    return f"nothing smaller fits{least}: choose a smaller model (`unmask models`) or another device"
