"""Load a DiffusionGemmaForBlockDiffusion folder (transformers >= 5.11 layout), text weights only.

The saved file holds the decoder's weights (`model.decoder.*`, which the encoder shares) and the encoder's own
`layer_scalar` buffers; the vision tower and its projection are skipped. The model is built on the meta
device and the weights are memory-mapped from safetensors; with quantize ("int8", "int4") each linear weight
and expert stack is quantized as it is read (engine/quantize.py).
"""

from __future__ import annotations

import copy
from pathlib import Path

import torch

from engine.errors import CheckpointError, DoesNotFit
from engine.fit import GB, available_bytes
from engine.formats import Checkpoint, Source
from engine.formats.folder import Safetensors
from engine.formats.packed import install, place, targets
from engine.gemma.config import GemmaConfig
from engine.gemma.model import DiffusionGemma
from engine.quantize import int8_activations, packed_modules, quantize_model, source_shapes

DECODER, ENCODER = "model.decoder.", "model.encoder.language_model."
SKIPPED = ("model.encoder.vision_tower.", "model.encoder.embed_vision.")


def is_diffusion_gemma(config: dict) -> bool:
    return config.get("model_type") == "diffusion_gemma" or "DiffusionGemmaForBlockDiffusion" in (
        config.get("architectures") or ()
    )


def checkpoint_name(ours: str) -> str:
    """Our parameter name -> the tensor's name in the checkpoint."""
    if ours == "lm_head.weight":
        return ours
    if ours.endswith(".encoder_scalar"):
        return ENCODER + ours.removesuffix("encoder_scalar") + "layer_scalar"
    return DECODER + ours.replace("self_conditioning.mlp.", "self_conditioning.")


def parameter_count(cfg: GemmaConfig) -> int:
    with torch.device("meta"):
        model = DiffusionGemma(cfg)
    return sum(t.numel() for t in model.state_dict().values())


def held_bytes(model: DiffusionGemma, dtype: torch.dtype) -> int:
    """Bytes the model's tensors take once loaded, counted on its meta-device build: packed weights as their
    modules hold them, every float tensor in dtype."""
    tensors = list(model.state_dict().values())
    return sum(t.numel() * (dtype.itemsize if t.is_floating_point() else t.element_size()) for t in tensors)


def check_fit(model: DiffusionGemma, device: str, dtype: torch.dtype, name: str, positions: int = 2048,
              quantize: str | None = None) -> None:
    """DoesNotFit, with the numbers, when the weights and a prompt's cache cannot fit on the device."""
    cfg = model.cfg
    weights = held_bytes(model, dtype)
    kv = sum(2 * s.kv_heads * s.head_dim * (min(positions, cfg.sliding_window) if s.sliding else positions)
             for s in cfg.layers) * dtype.itemsize
    free = available_bytes(str(device))
    if free is None or weights + kv <= free:
        return
    form = str(dtype).removeprefix("torch.")
    raise DoesNotFit(
        f"model {name!r} needs {(weights + kv) / GB:.1f} GB on {device} in "
        f"{form if quantize is None else f'{quantize} with {form}'} "
        f"(weights {weights / GB:.1f} GB, KV cache {kv / GB:.2f} GB for {positions} positions) but "
        f"{free / GB:.1f} GB is available; "
        + ("" if quantize == "int4" else f"try --quantize int4 (`unmask fit {name} --quantize int4`), ")
        + "choose a smaller model (`unmask models`) or another device"
    )


def load_weights(model: DiffusionGemma, folder: Path, device, dtype: torch.dtype,
                 source: Source | None = None) -> None:
    """Fill the meta-built model from the folder's safetensors, or from `source` (a quantized format,
    engine/formats/): a quantized weight becomes a packed module as the file packs it."""
    source = source or Safetensors(folder)
    files = source.files
    shapes, packed = source_shapes(model), packed_modules(model)  # full-precision names, as the files hold
    wanted = {checkpoint_name(ours): ours for ours in shapes}
    missing = sorted(wanted.keys() - files.keys())
    if missing:
        index = folder / "model.safetensors.index.json"
        first = next(iter(files.values()), folder / "model.safetensors")
        where = index.name if index.exists() else first.name
        raise CheckpointError(f"{where}: missing tensor {missing[0]!r} ({len(missing)} missing)")
    tied_head = "lm_head.weight" if model.lm_head is None else None
    extra = sorted(n for n in files.keys() - wanted.keys() if not n.startswith(SKIPPED) and n != tied_head)
    if extra:
        raise CheckpointError(
            f"{files[extra[0]].name}: unexpected tensor {extra[0]!r} ({len(extra)} unexpected)"
        )
    linear = targets(model)
    state, held = {}, {}
    for theirs, ours in wanted.items():
        tensor = source.read(theirs)
        if tensor.shape != shapes[ours]:
            raise CheckpointError(
                f"{files[theirs].name}: tensor {theirs!r} {tuple(tensor.shape)} does not fit "
                f"{tuple(shapes[ours])} from config.json"
            )
        place(ours, tensor, linear, packed, state, held, device, dtype)
    install(model, held, state, device, dtype)
    model.load_state_dict(state, strict=True, assign=True)


def load_network(folder: Path, config: dict, device="cpu", dtype: torch.dtype = torch.float32,
                 name: str = "", quantize: str | None = None, checkpoint: Checkpoint | None = None
                 ) -> DiffusionGemma:
    """The network in dtype on device; quantize: None, "int8" or "int4" (linear layers and experts).
    checkpoint: a quantized format's (engine/formats/), whose quantized weights load as the file packs them
    (`quantize` then applies to those it holds wide)."""
    cfg = GemmaConfig.from_hf(config)
    with torch.device("meta"):
        model = DiffusionGemma(cfg)
    if quantize is not None:
        quantize_model(model, quantize, int8_activations(parameter_count(cfg)), device)
    packing = None if checkpoint is None or quantize is not None else checkpoint.packing
    # a quantized file is checked as the packing it mostly loads as (a meta-device copy: no memory)
    sized = model if packing is None else quantize_model(copy.deepcopy(model), packing, device=device)
    check_fit(sized, device, dtype, name or str(folder), quantize=quantize or packing)
    load_weights(model, folder, device, dtype, None if checkpoint is None else checkpoint.source())
    return model.eval()
