"""Load (and save) Hugging Face-format checkpoint folders with safetensors only; no checkpoint code runs.
Quantized formats (compressed-tensors, GGUF) come through engine/formats/ as a source of the same names."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import save_file

from engine.config import ModelConfig
from engine.errors import CheckpointError
from engine.families import Family, family_for, qwen2_weights
from engine.formats import Checkpoint, Source
from engine.formats.folder import (  # noqa: F401 (PICKLE_SUFFIXES, read_tensor, weight_files: used from here)
    PICKLE_SUFFIXES,
    Safetensors,
    read_config,
    read_tensor,
    weight_files,
)
from engine.formats.packed import install, join, place, targets
from engine.model import Transformer
from engine.quantize import (
    auto_quantize,
    int8_activations,
    packed_modules,
    parse_quantize,
    quantize_model,
    source_shapes,
)

DTYPES = {
    "float32": torch.float32,
    "fp32": torch.float32,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
    "float16": torch.float16,
    "fp16": torch.float16,
}


def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> set[str]:
    """The CPU's feature flags; none where cpuinfo cannot be read (not Linux)."""
    try:
        info = cpuinfo.read_text()
    except OSError:
        return set()
    lines = (line.split(":", 1)[-1] for line in info.splitlines() if line.startswith("flags"))
    return {flag for line in lines for flag in line.split()}


def native_bf16(device: str) -> bool:
    """Whether bf16 matmuls run natively (CUDA with bf16, or a CPU with AMX / AVX512-BF16)."""
    if str(device).startswith("cuda"):
        return torch.cuda.is_bf16_supported()
    if str(device).startswith("mps"):
        return False  # fp32 on Apple GPUs: bf16 support depends on the macOS version
    return bool(cpu_flags() & {"amx_bf16", "avx512_bf16"})


def parse_dtype(dtype: str | torch.dtype, device: str = "cpu") -> torch.dtype:
    """A dtype name, or "auto": bfloat16 where the hardware runs it natively (several times faster), else
    fp32."""
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype == "auto":
        return torch.bfloat16 if native_bf16(device) else torch.float32
    if dtype not in DTYPES:
        raise ValueError(f"dtype {dtype!r} is not one of auto, {', '.join(DTYPES)}")
    return DTYPES[dtype]


def _check_names(files: dict[str, Path], wanted: set[str], family: Family, folder: Path) -> None:
    missing = sorted(wanted - files.keys())
    if missing:
        raise CheckpointError(
            f"{files.get(missing[0], folder / 'model.safetensors').name}: "
            f"missing tensor {missing[0]!r} ({len(missing)} missing)"
        )
    extra = sorted(n for n in files.keys() - wanted if not n.endswith(family.ignored + ("lm_head.weight",)))
    if extra:
        raise CheckpointError(
            f"{files[extra[0]].name}: unexpected tensor {extra[0]!r} ({len(extra)} unexpected)"
        )


def load_weights(model: Transformer, folder: Path, family: Family, device, dtype: torch.dtype,
                 source: Source | None = None) -> None:
    """Fill the meta-built model from the folder's safetensors, or from `source` (a quantized format,
    engine/formats/): a quantized weight becomes a packed module as the file packs it."""
    source = source or Safetensors(folder)
    files = source.files
    mapping = family.weights(model.cfg)
    wanted = {n for v in mapping.values() for n in ((v,) if isinstance(v, str) else v)}
    _check_names(files, wanted, family, folder)
    shapes, packed = source_shapes(model), packed_modules(model)  # full-precision names, as the files hold
    linear = targets(model)
    state, held = {}, {}
    for ours, theirs in mapping.items():
        names = (theirs,) if isinstance(theirs, str) else theirs
        parts = [source.read(n) for n in names]
        tensor = join(parts)
        if tensor.shape != shapes[ours]:
            found = ", ".join(f"{n} {tuple(p.shape)}" for n, p in zip(names, parts))
            raise CheckpointError(
                f"{files[names[0]].name}: tensor {found} does not fit "
                f"{ours} {tuple(shapes[ours])} from config.json"
            )
        place(ours, tensor, linear, packed, state, held, device, dtype)
    install(model, held, state, device, dtype)
    if model.cfg.tie_word_embeddings:
        state["head.weight"] = state["embed.weight"]
    model.load_state_dict(state, strict=True, assign=True)
    if model.cfg.tie_word_embeddings:
        model.head.weight = model.embed.weight


def load_transformer(
    folder: Path, device="cpu", dtype: str | torch.dtype = "float32", quantize: str | None = None,
    checkpoint: Checkpoint | None = None,
) -> tuple[Transformer, Family, dict]:
    """The network of a folder (full-precision safetensors), or of `checkpoint` (any format, engine/formats/;
    its quantized weights load as the file packs them, and `quantize` applies to those it holds wide)."""
    quantize = parse_quantize(quantize)
    config = read_config(folder) if checkpoint is None else checkpoint.config
    family = family_for(config)
    try:
        cfg = family.config(config)
    except KeyError as e:
        raise CheckpointError(f"{folder / 'config.json'}: missing field {e.args[0]!r}") from None
    with torch.device("meta"):
        model = Transformer(cfg)
    weights = sum(p.numel() for p in model.parameters())
    if quantize == "auto":
        quantize = auto_quantize(str(device), parse_dtype(dtype, device), weights)
    if quantize is not None:
        quantize_model(model, quantize, int8_activations(weights), device)
    source = None if checkpoint is None else checkpoint.source()
    load_weights(model, folder, family, device, parse_dtype(dtype, device), source)
    return model.eval(), family, config


def save_checkpoint(model: Transformer, out_dir: Path, special: dict) -> None:
    """Write config.json + model.safetensors in the Dream layout. special: mask_id, eos_id, pad_id, bos_id."""
    out_dir.mkdir(parents=True, exist_ok=True)
    cfg: ModelConfig = model.cfg
    state = model.state_dict()
    tensors = {}
    for ours, theirs in qwen2_weights(cfg).items():
        t = state[ours].detach().to("cpu", torch.float32).contiguous()
        if isinstance(theirs, str):
            tensors[theirs] = t
        else:
            for name, part in zip(theirs, t.split(cfg.qkv_sizes, dim=0)):
                tensors[name] = part.contiguous()
    save_file(tensors, str(out_dir / "model.safetensors"), metadata={"format": "pt"})
    config = cfg.to_dream_config(**special)
    (out_dir / "config.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
