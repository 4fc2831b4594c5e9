"""Load (and save) Hugging Face-format checkpoint folders with safetensors only; no checkpoint code runs."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from engine.config import ModelConfig
from engine.errors import CheckpointError
from engine.families import Family, family_for, qwen2_weights
from engine.model import Transformer
from engine.quantize import (
    auto_quantize,
    int8_activations,
    packed_modules,
    packed_state,
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
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")


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


def read_config(folder: Path) -> dict:
    if not folder.is_dir():
        raise CheckpointError(f"{folder}: checkpoint folder not found")
    path = folder / "config.json"
    if not path.exists():
        raise CheckpointError(f"{path}: not found")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except ValueError as e:
        raise CheckpointError(f"{path}: not valid JSON ({e})") from None


def weight_files(folder: Path) -> dict[str, Path]:
    """Tensor name -> the safetensors file that holds it (single file or sharded index)."""
    index = folder / "model.safetensors.index.json"
    single = folder / "model.safetensors"
    if index.exists():
        weight_map = json.loads(index.read_text(encoding="utf-8")).get("weight_map", {})
        return {name: folder / file for name, file in weight_map.items()}
    if single.exists():
        return {name: single for name in _keys(single)}
    pickles = sorted(p.name for p in folder.iterdir() if p.suffix in PICKLE_SUFFIXES)
    if pickles:
        raise CheckpointError(
            f"{folder}: only pickle weights ({', '.join(pickles)}); unmask loads safetensors only, "
            "because unpickling can run arbitrary code. Convert the weights to model.safetensors"
        )
    raise CheckpointError(f"{folder}: no model.safetensors or model.safetensors.index.json")


def _keys(path: Path) -> list[str]:
    try:
        with safe_open(path, "pt") as f:
            return list(f.keys())
    except (SafetensorError, OSError) as e:
        raise CheckpointError(f"{path}: unreadable safetensors file ({e})") from None


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


def read_tensor(path: Path, name: str, handles: dict) -> torch.Tensor:
    try:
        if path not in handles:
            handles[path] = safe_open(path, "pt")  # memory-mapped
        return handles[path].get_tensor(name)
    except (SafetensorError, OSError) as e:
        raise CheckpointError(f"{path}: cannot read tensor {name!r} ({e})") from None


def load_weights(model: Transformer, folder: Path, family: Family, device, dtype: torch.dtype) -> None:
    files = weight_files(folder)
    mapping = family.weights(model.cfg)
    wanted = {n for v in mapping.values() for n in ((v,) if isinstance(v, str) else v)}
    _check_names(files, wanted, family, folder)
    shapes, packed = source_shapes(model), packed_modules(model)  # full-precision names, as the files hold
    state, handles = {}, {}
    for ours, theirs in mapping.items():
        names = (theirs,) if isinstance(theirs, str) else theirs
        parts = [read_tensor(files[n], n, handles) for n in names]
        tensor = parts[0] if len(parts) == 1 else torch.cat(parts, dim=0)
        if tensor.shape != shapes[ours]:
            found = ", ".join(f"{n} {tuple(p.shape)}" for n, p in zip(names, parts))
            raise CheckpointError(
                f"{files[names[0]].name}: tensor {found} does not fit "
                f"{ours} {tuple(shapes[ours])} from config.json"
            )
        if ours in packed:  # quantized as read, so no full-precision copy of the model is ever held
            state.update(packed_state(packed[ours], tensor.to(device), dtype))
        else:
            state[ours] = tensor.to(device=device, dtype=dtype)
    if model.cfg.tie_word_embeddings:
        state["head.weight"] = state["embed.weight"]
    model.load_state_dict(state, strict=True, assign=True)
    if model.cfg.tie_word_embeddings:
        model.head.weight = model.embed.weight


def load_transformer(
    folder: Path, device="cpu", dtype: str | torch.dtype = "float32", quantize: str | None = None
) -> tuple[Transformer, Family, dict]:
    quantize = parse_quantize(quantize)
    config = read_config(folder)
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
    load_weights(model, folder, family, device, parse_dtype(dtype, device))
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
