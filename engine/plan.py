"""What a model needs before any weight is read (`unmask fit`): its shape from config.json alone, the bytes
engine/fit.py counts for it, and whether they fit a device here or a capacity such as `24GB`.

The shape comes from a checkpoint folder (config.json is enough), a Hub id's config.json (from the Hub's
cache, else fetched by itself), or, for a catalogue id that is neither, the catalogue's second-hand shape.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import torch

from engine import catalogue, fit, hub
from engine.config import ModelConfig
from engine.errors import CheckpointError, HubError
from engine.families import family_for
from engine.formats import gguf
from engine.gemma.config import GemmaConfig
from engine.gemma.lm import FAMILY as GEMMA
from engine.gemma.load import is_diffusion_gemma
from engine.load import parse_dtype, read_config
from engine.registry import check_device

CAPACITY = re.compile(r"^(\d+(?:\.\d+)?)\s*(GB|GiB)$", re.I)  # a device not here: its memory
# config.json fields that must be positive integers where present (top level, or DiffusionGemma's text_config)
SIZES = ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
         "num_key_value_heads", "head_dim", "global_head_dim", "num_global_key_value_heads", "sliding_window",
         "num_experts", "top_k_experts", "moe_intermediate_size", "max_position_embeddings", "d_model",
         "n_heads", "n_kv_heads", "n_layers", "mlp_hidden_size", "embedding_size", "max_sequence_length")


@dataclass(frozen=True)
class Plan:
    name: str
    family: str
    source: str  # where the shape was read: a config.json, or the catalogue
    shape: ModelConfig | GemmaConfig
    dtype: torch.dtype
    quantize: str | None
    context: int  # prompt tokens, before the canvas
    need: fit.Need
    device: str  # a device, or the capacity named
    free: int | None  # bytes; None: unknown (mps)

    @property
    def fits(self) -> bool | None:
        return None if self.free is None else self.need.total <= self.free

    def advice(self) -> str:
        """The loader's advice line (engine/fit.py) for the figures printed here."""
        return fit.advice(self.shape, self.dtype, self.quantize, self.free, self.device, self.need.positions,
                          working=True)

    def json(self) -> dict:
        n = self.need
        return {"weights_bytes": n.weights, "cache_bytes": n.kv_cache, "total_bytes": n.total,
                "fits": self.fits}

    def lines(self) -> list[str]:
        n, canvas = self.need, fit.canvas_of(self.shape)
        weights = sum(fit.parameters(self.shape)[::2])
        head = (f"{self.name}: {self.family}, {weights / 1e9:.2f}B weights (shape from {self.source}); "
                f"{fit.label(self.dtype, self.quantize)}, {self.context:,} tokens of context and a "
                f"{canvas}-token canvas")
        rows = [("weights", n.weights, ""), ("KV cache", n.kv_cache, f"  ({n.positions:,} positions)"),
                ("working", n.working, "  (estimate: one forward's activations)"), ("total", n.total, "")]
        out = [head] + [f"{k:<9}{v:>16,} bytes {v / fit.GB:7.2f} GB{note}" for k, v, note in rows]
        if self.fits is None:
            return out + [f"fits: unknown (free memory on {self.device} cannot be read)"]
        room = f"{self.free / fit.GB:.1f} GB" + ("" if capacity(self.device) else " free")
        if self.fits:
            return out + [f"fits on {self.device} ({room})"]
        return out + [f"does not fit on {self.device} ({room}); {self.advice()}"]


def plan(model: str, quantize: str | None = None, context: int | None = None, device: str | None = None,
         dtype: str | torch.dtype = "bfloat16") -> Plan:
    """The Plan for a folder, Hub id or catalogue id; context None: the loader's positions
    (engine/fit.py KV_POSITIONS, canvas included). Bad input raises CheckpointError or DeviceUnavailable."""
    if quantize is not None and quantize not in fit.FORMATS:
        raise ValueError(f"quantize {quantize!r} is not one of none, {', '.join(fit.FORMATS)}")
    shape, family, name, source = find_shape(model)
    canvas = fit.canvas_of(shape)
    if context is None:
        context = max(min(shape.max_position_embeddings, fit.KV_POSITIONS) - canvas, 0)
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    free = capacity(device)
    if free is None:
        check_device(device)
        free = fit.available_bytes(device)
    dtype = parse_dtype(dtype)
    need = fit.need(shape, dtype, quantize, context + canvas, device, working=True)
    return Plan(name, family, source, shape, dtype, quantize, context, need, device, free)


def capacity(device: str) -> int | None:
    """Bytes a capacity such as `24GB` (10**9 bytes) or `24GiB` (2**30) names; None for a device name."""
    found = CAPACITY.match(device.strip())
    if found is None:
        return None
    return int(float(found.group(1)) * (fit.GB if found.group(2).lower() == "gb" else 2**30))


def find_shape(model: str) -> tuple[ModelConfig | GemmaConfig, str, str, str]:
    """(shape, family, name, where the shape came from) for a folder, a Hub id or a catalogue id."""
    folder = Path(model).expanduser()
    if hub.parse_id(model) is None:
        file = gguf.find(folder)
        if file is not None:  # a GGUF file's metadata (or the config.json beside it)
            return (*shape_of(gguf.config(file), file), str(file), f"{file}'s metadata")
        path = folder / "config.json"
        return (*shape_of(read_config(folder), path), str(folder), str(path))
    try:
        path = hub.config_file(model)
    except HubError:
        entry = catalogue.find(model)
        if entry is None:
            raise
        return entry.shape, entry.family, entry.id, "the catalogue (second-hand: no config.json from the Hub)"
    return (*shape_of(read_json(path), path), model, f"{model}'s config.json")


def read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except ValueError as e:
        raise CheckpointError(f"{path}: not valid JSON ({e})") from None


def shape_of(config: dict, path: Path) -> tuple[ModelConfig | GemmaConfig, str]:
    """(shape, family) of a config.json; a missing or invalid field is one line naming the file and field."""
    if not isinstance(config, dict):
        raise CheckpointError(f"{path}: not a JSON object")
    check_sizes(config, path)
    try:
        if is_diffusion_gemma(config):
            return GemmaConfig.from_hf(config), GEMMA
        family = family_for(config)
        return family.config(config), family.name
    except KeyError as e:
        raise CheckpointError(f"{path}: missing field {e.args[0]!r}") from None
    except CheckpointError as e:  # the parsers name "config.json"; say which one
        raise CheckpointError(str(e).replace("config.json", str(path), 1)) from None


def check_sizes(config: dict, path: Path) -> None:
    text = config.get("text_config")
    scopes = [("", config)] + ([("text_config.", text)] if isinstance(text, dict) else [])
    for prefix, scope in scopes:
        for key in SIZES:
            value = scope.get(key)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise CheckpointError(
                    f"{path}: field '{prefix}{key}' must be a positive integer, got {value!r}"
                )
