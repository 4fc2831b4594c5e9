"""Whether a checkpoint fits: the bytes its weights, KV cache and working memory need on a device, against
what is free there.

Everything is counted from the model's shape (config.json), never from its weights, for both networks: the
masked-diffusion Transformer (engine/config.py) and DiffusionGemma (engine/gemma/config.py, text only; every
expert counts, all are resident). The loader's check counts weights and cache, so a refusal is certain and a
pass is not a promise; `unmask fit` and `unmask models` add an estimate of one forward's working memory.
GB is 10**9 bytes throughout, as Hugging Face's file sizes and Google's "under 18 GB" for DiffusionGemma
count.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from engine.config import ModelConfig
from engine.errors import DoesNotFit
from engine.families import family_for
from engine.int4 import SCALE_DTYPE, group_size
from engine.load import read_config
from engine.quantize import QUANTIZE, int8_by_int8

if TYPE_CHECKING:  # engine.gemma imports this module: its config is only duck-typed here
    from typing import TypeAlias

    from engine.gemma.config import GemmaConfig

    Shape: TypeAlias = ModelConfig | GemmaConfig

KV_POSITIONS = 2048  # a completion's context plus canvas stays below this (the server: 1536 + canvas)
GB = 1e9
# fp32 [canvas, vocab] tensors alive at once in a denoising step (engine/gemma/sampling.py step: the logits,
# scaled, probabilities, log-probabilities, their exponent and product; the previous step's logits)
LOGIT_COPIES = 7
MASKED_CANVAS = 128  # the widest canvas the server asks a masked-diffusion model for (infill's max_tokens)

Matrix = tuple[int, int, int]  # (how many, output channels, input channels) of a linear weight


@dataclass(frozen=True)
class Format:
    """How engine/quantize.py and engine/int4.py hold a linear weight [out, in]: bits per weight, and the
    scales (and zero points) kept beside them."""

    bits: int
    grouped: bool  # a scale per group of input channels (engine/int4.py group_size), else per output channel
    zero: bool  # a zero point (int4: an offset) beside each scale
    scale: torch.dtype | None = None  # the scales' dtype; None: the compute dtype

    def bytes(self, out: int, inputs: int, dtype: torch.dtype) -> int:
        if self.bits == 4 and inputs % 2:
            return out * inputs * dtype.itemsize  # two values a byte: an odd width stays wide
        groups = inputs // group_size(inputs) if self.grouped else 1
        scales = out * groups * (self.scale or dtype).itemsize * (2 if self.zero else 1)
        return out * inputs * self.bits // 8 + scales


# the one table of bytes per weight; unquantized weights take the compute dtype's (bf16: 2). int4 groups are
# 128 input channels, or gcd(width, 128) where 128 does not divide: 64 for DiffusionGemma's 704-wide experts
FORMATS = {
    "int8": Format(8, grouped=False, zero=False),
    "int4": Format(4, grouped=True, zero=True, scale=SCALE_DTYPE),
}
HEADS = {"int8": "int8", "int4": "int8"}  # an untied output head's format: int4 makes it int8 (quantize.py)


@dataclass(frozen=True)
class Need:
    weights: int  # bytes
    kv_cache: int  # bytes, for `positions` positions
    positions: int
    working: int = 0  # bytes: one forward's activations, an estimate (0: not counted, the loader's check)

    @property
    def total(self) -> int:
        return self.weights + self.kv_cache + self.working


def parts(cfg: Shape) -> tuple[list[Matrix], list[Matrix], int]:
    """(the blocks' linear weights a quantization replaces, an untied output head's, every other parameter
    and buffer) of the network cfg builds. Both kinds keep the embedding (and a head tied to it) and the
    norms in the compute dtype; DiffusionGemma also its routers (128 outputs each: they pick the experts)."""
    blocks, other = _dense(cfg) if isinstance(cfg, ModelConfig) else _gemma(cfg)
    head = [] if cfg.tie_word_embeddings else [(1, cfg.vocab_size, cfg.hidden_size)]
    return blocks, head, other


def _dense(cfg: ModelConfig) -> tuple[list[Matrix], int]:
    h, (q, k, v), n, i = cfg.hidden_size, cfg.qkv_sizes, cfg.num_layers, cfg.intermediate_size
    bias = q + k + v if cfg.qkv_bias else 0
    linear = [(n, q + k + v, h), (n, h, q), (2 * n, i, h), (n, h, i)]
    return linear, cfg.vocab_size * h + n * (bias + 2 * h) + h  # embedding, biases, norms


def _gemma(cfg: GemmaConfig) -> tuple[list[Matrix], int]:
    h, i, e, m = cfg.hidden_size, cfg.intermediate_size, cfg.num_experts, cfg.moe_intermediate_size
    mlp = [(2, i, h), (1, h, i)]
    linear, other = list(mlp), cfg.vocab_size * h + 2 * h  # self-conditioning MLP; embedding, two norms
    for s in cfg.layers:
        q, kv = cfg.num_heads * s.head_dim, s.kv_heads * s.head_dim
        linear += [(1, q, h), (2 if s.sliding else 1, kv, h), (1, h, q), *mlp, (e, 2 * m, h), (e, h, m)]
        # router (projection, scale, per-expert scale), seven norms, q and k norms, two layer scalars
        other += e * h + h + e + 7 * h + 2 * s.head_dim + 2
    return linear, other


def parameters(cfg: Shape) -> tuple[int, int, int]:
    """(weights of the linear layers a quantization replaces, their output channels, every other
    parameter)."""
    blocks, head, other = parts(cfg)
    linear = blocks + head
    return sum(c * o * i for c, o, i in linear), sum(c * o for c, o, _ in linear), other


def parameter_count(config: dict) -> int:
    """The weights a checkpoint's config.json implies (0 when a field is missing: the loader names it)."""
    try:
        cfg = family_for(config).config(config)
    except KeyError:
        return 0
    linear, _, other = parameters(cfg)
    return linear + other


def weight_bytes(cfg: Shape, dtype: torch.dtype, quantize: str | None) -> int:
    blocks, head, other = parts(cfg)
    if quantize is None:
        return (sum(c * o * i for c, o, i in blocks + head) + other) * dtype.itemsize

    def packed(matrices: list[Matrix], f: Format) -> int:
        return sum(c * f.bytes(o, i, dtype) for c, o, i in matrices)

    return packed(blocks, FORMATS[quantize]) + packed(head, FORMATS[HEADS[quantize]]) + other * dtype.itemsize


def kv_bytes(cfg: Shape, dtype: torch.dtype, positions: int) -> int:
    if isinstance(cfg, ModelConfig):
        return 2 * cfg.num_layers * cfg.num_kv_heads * cfg.head_dim * positions * dtype.itemsize
    # DiffusionGemma's sliding layers keep the last window - 1 tokens (engine/gemma/cache.py)
    kept = [min(positions, cfg.sliding_window - 1) if s.sliding else positions for s in cfg.layers]
    return sum(2 * s.kv_heads * s.head_dim * n for s, n in zip(cfg.layers, kept)) * dtype.itemsize


def canvas_of(cfg: Shape) -> int:
    """Tokens one denoising step decodes: DiffusionGemma's canvas, else the server's widest."""
    return MASKED_CANVAS if isinstance(cfg, ModelConfig) else cfg.canvas_length


def working_bytes(cfg: Shape, dtype: torch.dtype, positions: int) -> int:
    """An estimate of one forward's largest activations: a denoising step's logits over the canvas, or the
    prompt's widest layer (the MLP's gate, up and product; DiffusionGemma: each token's top-k experts'
    gathered rows, gate-up, product and outputs), whichever is larger."""
    logits = LOGIT_COPIES * canvas_of(cfg) * cfg.vocab_size * 4
    per_token = 3 * cfg.intermediate_size
    if not isinstance(cfg, ModelConfig):
        per_token += cfg.top_k * (3 * cfg.hidden_size + 4 * cfg.moe_intermediate_size)
    return max(logits, positions * per_token * dtype.itemsize)


def need(cfg: Shape, dtype: torch.dtype, quantize: str | None = None, positions: int = 0, device: str = "cpu",
         working: bool = False) -> Need:
    """Bytes for cfg's weights in dtype (quantize: "int8", "int4" or None) and a KV cache of `positions`
    (0: the loader's, min(max positions, KV_POSITIONS)); working: add one forward's activations."""
    weights = weight_bytes(cfg, dtype, quantize)
    if quantize == "int8" and int8_by_int8(device, dtype, sum(parameters(cfg)[::2])):
        weights += parameters(cfg)[0]  # fbgemm's packed copy of every int8 weight (engine/quantize.py)
    positions = positions or min(cfg.max_position_embeddings, KV_POSITIONS)
    extra = working_bytes(cfg, dtype, positions) if working else 0
    return Need(weights, kv_bytes(cfg, dtype, positions), positions, extra)


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


def check(folder: Path, device: str, dtype: torch.dtype, quantize: str | None = None, name: str = "",
          config: dict | None = None) -> None:
    """Raise DoesNotFit, with the numbers and what would fit, when the checkpoint cannot fit on the device.
    config: the checkpoint's when it is not the folder's config.json (a GGUF file's metadata)."""
    config = read_config(folder) if config is None else config
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
        f"in {label(dtype, quantize)} "
        f"(weights {want.weights / GB:.1f} GB, KV cache {want.kv_cache / GB:.2f} GB for {want.positions} "
        f"positions) but {free / GB:.1f} GB is available; {advice(cfg, dtype, quantize, free, str(device))}"
    )


def label(dtype: torch.dtype, quantize: str | None) -> str:
    name = str(dtype).removeprefix("torch.")
    return f"{quantize} with {name}" if quantize else name


def advice(cfg: Shape, dtype: torch.dtype, quantize: str | None, free: int, device: str, positions: int = 0,
           working: bool = False) -> str:
    """What would fit in `free` bytes instead: bf16 for a wider dtype, each smaller format the loader accepts
    (engine/quantize.py QUANTIZE), both; else that nothing smaller fits."""
    wide = dtype.itemsize > 2
    options = [("--dtype bfloat16", torch.bfloat16, quantize)] if wide else []
    for q in smaller_formats(quantize):
        options.append((f"--quantize {q}", dtype, q))
        options += [(f"--quantize {q} --dtype bfloat16", torch.bfloat16, q)] if wide else []
    needs = sorted(((need(cfg, d, q, positions, device, working).total, flag) for flag, d, q in options),
                   reverse=True)
    fitting = [f"{flag} ({total / GB:.1f} GB)" for total, flag in needs if total <= free]
    if fitting:
        return "it fits with " + " or ".join(fitting)
    least = f" (least: {needs[-1][1]}, {needs[-1][0] / GB:.1f} GB)" if needs else ""
    return f"nothing smaller fits{least}: choose a smaller model (`unmask models`) or another device"


def smaller_formats(quantize: str | None) -> list[str]:
    """The quantizations the loader accepts that hold fewer bits per weight than `quantize`."""
    bits = FORMATS[quantize].bits if quantize else float("inf")
    return [q for q, f in FORMATS.items() if q in QUANTIZE and f.bits < bits]
