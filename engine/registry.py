"""load_model: a checkpoint folder, Hub id or the embedded model, as its family's model class (engine/api.py
CompletionModel): DiffusionLM for masked-diffusion layouts, DiffusionGemmaLM for DiffusionGemma."""

from __future__ import annotations

from pathlib import Path

import torch

from engine import fit, hub
from engine.corpus_index import load_index
from engine.errors import DeviceUnavailable
from engine.formats import SAFETENSORS, open_checkpoint
from engine.gemma import DiffusionGemmaLM, is_diffusion_gemma, load_gemma
from engine.lm import DiffusionLM
from engine.load import load_transformer, parse_dtype
from engine.quantize import auto_quantize, parse_quantize
from engine.tokenizer import Tokenizer

DEFAULT_MODEL = Path(__file__).parent / "default_model"


def check_device(device: str) -> None:
    """One line for a device this machine does not have: cpu, cuda[:n] (NVIDIA or ROCm) or mps (Apple)."""
    kind, _, index = device.partition(":")
    if kind == "cuda" and not torch.cuda.is_available():
        raise DeviceUnavailable(f"device {device!r} requested but CUDA is not available")
    if kind == "cuda" and index.isdigit() and int(index) >= torch.cuda.device_count():
        raise DeviceUnavailable(f"device {device!r} requested but there are {torch.cuda.device_count()} GPUs")
    if kind == "mps" and not torch.backends.mps.is_available():
        raise DeviceUnavailable(f"device {device!r} requested but Apple MPS is not available on this machine")
    if kind not in ("cpu", "cuda", "mps"):
        raise DeviceUnavailable(f"device {device!r} is not one of cpu, cuda, cuda:N, mps")


def load_model(
    path: str | Path | None = None,
    device: str = "cpu",
    dtype: str | torch.dtype = "float32",
    quantize: str | None = None,
    progress: hub.Progress | None = None,
) -> DiffusionLM | DiffusionGemmaLM:
    """Load a checkpoint folder, a Hugging Face id `org/name[@revision]` (downloaded into the Hub's cache
    first; engine/hub.py), or the embedded default model when path is None. Refuses, before loading, a model
    that cannot fit on the device (engine/fit.py).
    quantize: None (or "none"), "int8" for int8 linear-layer (and expert) weights, "int4" for group-wise
    int4 ones (engine/int4.py), or "auto": int8 on a CPU without native bf16 for models up to a billion
    weights, else none (engine/quantize.py)."""
    quantize = parse_quantize(quantize)
    check_device(device)
    folder = hub.resolve(path, progress) if path is not None else DEFAULT_MODEL
    name = hub.repo_id_of(folder) or str(path or folder)
    checkpoint = open_checkpoint(folder)  # a folder, a compressed-tensors folder or a GGUF file
    folder, config = checkpoint.folder, checkpoint.config
    quantized = checkpoint.format != SAFETENSORS
    if quantized:  # packed as the file packs it; "auto" adds nothing to a quantized file
        quantize = None if quantize == "auto" else quantize
    else:
        checkpoint = None
    if is_diffusion_gemma(config):  # its own network, cache and decoding (engine/gemma/)
        # "auto" leaves it in full precision: its size is far past AUTO_INT8_MAX_PARAMS
        quantize = None if quantize == "auto" else quantize
        return load_gemma(folder, config, device, parse_dtype(dtype, device), quantize, name, checkpoint)
    if quantize == "auto":
        quantize = auto_quantize(device, parse_dtype(dtype, device), fit.parameter_count(config))
    sized = quantize or (checkpoint.packing if checkpoint else None)
    fit.check(folder, device, parse_dtype(dtype, device), sized, name, config)
    model, family, config = load_transformer(folder, device, dtype, quantize, checkpoint)
    tokenizer = Tokenizer(folder, config, family.mask_tokens)
    lm = DiffusionLM(model, family, tokenizer, folder, hub.repo_id_of(folder) or str(folder))
    lm.corpus = load_index(folder)
    return lm
