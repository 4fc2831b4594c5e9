"""A Hugging Face folder: config.json and safetensors weights (one file or shards), read by name.

Pickle weights (.bin, .pt) are refused: unpickling can run arbitrary code.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open

from engine.errors import CheckpointError

PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")


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


def read_tensor(path: Path, name: str, handles: dict) -> torch.Tensor:
    try:
        if path not in handles:
            handles[path] = safe_open(path, "pt")  # memory-mapped
        return handles[path].get_tensor(name)
    except (SafetensorError, OSError) as e:
        raise CheckpointError(f"{path}: cannot read tensor {name!r} ({e})") from None


class Safetensors:
    """The weights of a full-precision folder: `files` names each tensor's file, `read` returns it."""

    def __init__(self, folder: Path):
        self.files = weight_files(folder)
        self._handles: dict = {}

    def read(self, name: str) -> torch.Tensor:
        return read_tensor(self.files[name], name, self._handles)
