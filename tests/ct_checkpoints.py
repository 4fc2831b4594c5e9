"""Tiny compressed-tensors checkpoints, written by the compressed-tensors package itself (a test dependency
only; it imports transformers): its quantization config and schemes, its `calculate_qparams` for the scales,
its ModelCompressor to pack the weights and write quantization_config into config.json.

The full-precision folder's tensors are rebuilt as a module tree named as the checkpoint names them (linear
layers as nn.Linear; DiffusionGemma's fused expert stacks as one linear per expert and projection,
`experts.<e>.{gate,up,down}_proj`, as vLLM saves MoE checkpoints), so compressed-tensors sees the modules
llm-compressor would.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

SIDE_FILES = ("config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json",
              "special_tokens_map.json")
LINEAR = ("_proj.weight", "router.proj.weight", "lm_head.weight")
STACKS = ("experts.gate_up_proj", "experts.down_proj")  # [E, out, in]


def tree(tensors: dict[str, torch.Tensor]) -> nn.Module:
    """A module whose state_dict has the checkpoint's names, with an nn.Linear at every linear weight."""
    root = nn.Module()

    def holder(path: str) -> nn.Module:
        module = root
        for part in path.split(".") if path else ():
            if not hasattr(module, part):
                module.add_module(part, nn.Module())
            module = getattr(module, part)
        return module

    def linear(path: str, w: torch.Tensor) -> None:
        parent, _, leaf = path.rpartition(".")
        layer = nn.Linear(w.shape[1], w.shape[0], bias=False)
        layer.weight = nn.Parameter(w.contiguous(), requires_grad=False)
        holder(parent).add_module(leaf, layer)

    for name, t in tensors.items():
        path, _, leaf = name.rpartition(".")
        if name.endswith(STACKS):  # one linear per expert and projection
            half = t.shape[1] // 2
            for e in range(t.shape[0]):
                if leaf == "down_proj":
                    linear(f"{path}.{e}.down_proj", t[e])
                else:
                    linear(f"{path}.{e}.gate_proj", t[e, :half])
                    linear(f"{path}.{e}.up_proj", t[e, half:])
        elif name.endswith(LINEAR) and t.dim() == 2:
            linear(path, t)
    for name, t in tensors.items():  # biases into their linears, everything else as plain parameters
        path, _, leaf = name.rpartition(".")
        if name.endswith(LINEAR) and t.dim() == 2 or name.endswith(STACKS):
            continue
        holder(path).register_parameter(leaf, nn.Parameter(t.contiguous(), requires_grad=False))
    return root


def calibrate(model: nn.Module) -> None:
    """Each quantized module's weight scale (and zero point) from its weight's range, by compressed-tensors'
    own calculate_qparams (what llm-compressor's min-max observer does)."""
    from compressed_tensors.quantization.utils import calculate_qparams

    for module in model.modules():
        scheme = getattr(module, "quantization_scheme", None)
        if scheme is None:
            continue
        args, w = scheme.weights, module.weight.detach().float()
        if args.strategy == "group":
            g = w.unflatten(-1, (-1, args.group_size))
            lo, hi = g.amin(-1), g.amax(-1)
        elif args.strategy == "channel":
            lo, hi = w.amin(-1, keepdim=True), w.amax(-1, keepdim=True)
        else:
            lo, hi = w.amin().reshape(1), w.amax().reshape(1)
        scale, zero = calculate_qparams(lo, hi, args)
        module.weight_scale.data.copy_(scale.reshape(module.weight_scale.shape))
        if hasattr(module, "weight_zero_point"):
            module.weight_zero_point.data.copy_(zero.reshape(module.weight_zero_point.shape))


def write_compressed(source: Path, folder: Path, scheme: str, group_size: int | None = None,
                     ignore: tuple[str, ...] = ("lm_head", "re:.*router.*")) -> Path:
    """A copy of the full-precision checkpoint at `source` (config.json, model.safetensors, tokenizer) in
    compressed-tensors' format: scheme "FP8_DYNAMIC" (float-quantized) or "W4A16" / "W4A16_ASYM"
    (pack-quantized, groups of group_size), every linear layer but `ignore`."""
    from compressed_tensors.compressors import ModelCompressor
    from compressed_tensors.quantization import (
        QuantizationConfig,
        apply_quantization_config,
        preset_name_to_scheme,
    )

    folder.mkdir(parents=True, exist_ok=True)
    for name in SIDE_FILES:
        if (source / name).exists():
            shutil.copy(source / name, folder / name)
    tensors = {k: v for k, v in load_file(source / "model.safetensors").items() if "vision" not in k}
    model = tree(tensors)
    chosen = preset_name_to_scheme(scheme, ["Linear"])
    if group_size is not None:
        chosen.weights.group_size = group_size
    config = QuantizationConfig(config_groups={"group_0": chosen}, ignore=list(ignore))
    apply_quantization_config(model, config, show_progress=False)
    calibrate(model)
    compressor = ModelCompressor.from_pretrained_model(model)
    compressor.compress_model(model)
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(folder / "model.safetensors"), metadata={"format": "pt"})
    compressor.update_config(str(folder))
    return folder
