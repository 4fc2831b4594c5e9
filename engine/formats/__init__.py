"""Checkpoint formats: where a model's config and weights come from, whatever the files.

- a Hugging Face folder with full-precision safetensors (engine/formats/folder.py);
- a compressed-tensors folder, vLLM's quantized format: config.json's quantization_config says so
  (engine/formats/compressed.py);
- a GGUF file, llama.cpp's format: a `.gguf` path, or a folder holding one and no safetensors
  (engine/formats/gguf.py).

Each gives the loaders (engine/load.py, engine/gemma/load.py) a source with `files` (full-precision tensor
name -> the file that holds it) and `read(name)`: a tensor, or a `Stored` that maps onto the engine's packed
weights (engine/formats/packed.py) without a full-precision copy.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from engine.formats import compressed, gguf
from engine.formats.folder import Safetensors, read_config
from engine.formats.packed import Weight

SAFETENSORS, COMPRESSED, GGUF = "safetensors", "compressed-tensors", "gguf"


class Source(Protocol):
    files: dict[str, Path]

    def read(self, name: str) -> Weight: ...


@dataclass(frozen=True)
class Checkpoint:
    folder: Path  # tokenizer.json, generation_config.json
    config: dict  # config.json's, or built from a GGUF file's metadata
    format: str  # SAFETENSORS, COMPRESSED or GGUF
    weights: Path  # the folder, or the GGUF file

    def source(self) -> Source:
        if self.format == GGUF:
            return gguf.GGUF(self.weights)
        if self.format == COMPRESSED:
            return compressed.Compressed(self.weights, self.config)
        return Safetensors(self.weights)

    @property
    def packing(self) -> str | None:
        """The packed weights the format mostly loads as ("int4", "int8"), for the memory check; None for
        full precision."""
        if self.format == COMPRESSED:
            bits = {s.bits for s in compressed.schemes(self.config["quantization_config"])}
            return "int4" if 4 in bits else "int8" if bits else None
        if self.format == GGUF:
            return gguf.packing(self.weights)
        return None


def open_checkpoint(path: Path) -> Checkpoint:
    """The checkpoint at a folder or a .gguf file; one-line CheckpointError when there is none."""
    file = gguf.find(path)
    if file is not None:
        return Checkpoint(file.parent, gguf.config(file), GGUF, file)
    config = read_config(path)
    return Checkpoint(path, config, COMPRESSED if compressed.is_compressed(config) else SAFETENSORS, path)
