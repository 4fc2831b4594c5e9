"""compressed-tensors checkpoints (vLLM's format; llm-compressor and RedHatAI write it), read with safetensors
and this mapping alone: neither the compressed-tensors package nor transformers runs.

config.json's `quantization_config` (`quant_method: "compressed-tensors"`) names config groups, each with
`targets` (module names, `re:` patterns, or a class such as `Linear`), the weights' scheme and a format, and
an `ignore` list. A quantized layer stores its weight beside `weight_scale` (and `weight_zero_point`,
`weight_g_idx`, `weight_shape` where the scheme has them):

    format            weights                                   maps onto
    pack-quantized    int4, eight to an int32 (value + 8, the   Int4Linear in the file's groups (or one
                      first in the low bits), scale per group   group per row), exact: the int32 words read
                      or channel, zero point packed along the   as bytes are Int4Linear's byte order; scales
                      output channels when asymmetric           rounded to bf16
    pack-quantized /  int8 (four to an int32 when packed),      Int8Linear, exact with one scale per
    int-quantized     scale per channel                         channel; else requantized per channel
    float-quantized   float8_e4m3fn (FP8 dynamic: the weights   Int8Linear: decoded a few rows at a time,
                      static, per channel, tensor or block;     quantized again with one scale per output
                      activations dynamic per token)            channel (below)

FP8 becomes int8 rather than staying FP8: the engine has int8 kernels on every device it runs (CPU fbgemm and
_weight_int8pack_mm, CUDA dequantize-then-cuBLAS), the bytes are the same (one per weight and a scale per
row), and the added rounding is at most half an int8 step of the row's largest weight: 448/127 of fp8's
range, finer than fp8's own spacing above a quarter of the row's maximum (tests/test_formats_ct.py measures
it). Activations are never quantized: the engine runs these weights only ("A16"), and a scheme's
`input_activations` are not applied. Per-expert linears (`experts.<e>.{gate,up,down}_proj`, as vLLM saves
MoE checkpoints) become transformers' fused stacks (`experts.gate_up_proj`, `experts.down_proj`). A scheme
or format outside this table, activation reordering (a `weight_g_idx` other than the identity), or a layer
stored quantized but matched by `ignore` is refused with one line naming the file and tensor.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from engine.errors import CheckpointError
from engine.formats.folder import read_tensor, weight_files
from engine.formats.packed import Int4Weight, Int8Weight, Stored, Weight, decoded, join, requantized

METHOD = "compressed-tensors"
# tensors stored beside a weight: read with it, or (activation and KV-cache scales) not used, since the
# engine runs the weights only
COMPANIONS = ("weight_scale", "weight_zero_point", "weight_shape", "weight_g_idx", "weight_global_scale",
              "input_scale", "input_zero_point", "input_global_scale", "output_scale", "k_scale", "v_scale")
EXPERT = re.compile(r"^(?P<stack>.+\.experts)\.(?P<e>\d+)\.(?P<proj>gate|up|down)_proj\.weight$")
SUPPORTED = "pack-quantized int4/int8, int-quantized int8, float-quantized fp8 (e4m3)"


@dataclass(frozen=True)
class Scheme:
    """A config group's weights, as quantization_config states them."""

    group: str  # the config group's name, for messages
    targets: tuple[str, ...]
    format: str
    type: str  # "int" or "float"
    bits: int
    strategy: str  # "tensor", "channel", "group" or "block"
    group_size: int | None
    symmetric: bool
    block: tuple[int, int] | None

    def describe(self) -> str:
        return f"{self.format} {self.type}{self.bits} {self.strategy}"


def is_compressed(config: dict) -> bool:
    q = config.get("quantization_config")
    return isinstance(q, dict) and q.get("quant_method") == METHOD


def schemes(q: dict) -> list[Scheme]:
    found = []
    for name, g in (q.get("config_groups") or {}).items():
        w = g.get("weights") or {}
        block = w.get("block_structure")
        found.append(Scheme(
            name, tuple(g.get("targets") or ()), g.get("format") or q.get("format") or "",
            w.get("type", "int"), int(w.get("num_bits", 8)), w.get("strategy", "tensor"), w.get("group_size"),
            bool(w.get("symmetric", True)), tuple(block) if block else None))
    return found


def matches(target: str, module: str) -> bool:
    # for a module the file stores quantized, by compressed-tensors' own rule: "re:" patterns and exact names
    # match the module's name; a class name (e.g. "Linear") matches the modules of that class, which are the
    # linear layers it could quantize, so any of them here
    if target.startswith("re:"):
        return re.match(target[3:], module) is not None
    return target == module or (target[:1].isupper() and "." not in target)


class Compressed:
    """The weights of a compressed-tensors folder, by their full-precision names: `files` names each one's
    file, `read` returns a tensor (a layer left unquantized) or a Stored (engine/formats/packed.py)."""

    def __init__(self, folder: Path, config: dict):
        q = config["quantization_config"]
        self.schemes, self.ignore = schemes(q), list(q.get("ignore") or [])
        self.raw = weight_files(folder)  # every stored tensor, companions included
        self._handles: dict = {}
        files = {}
        for name, path in self.raw.items():
            module, _, leaf = name.rpartition(".")
            if leaf not in COMPANIONS:
                files[module + ".weight" if leaf == "weight_packed" else name] = path
        # a fused expert stack -> its experts' linear weights: (gate, up) or (down,) per expert
        self.stacks: dict[str, list[tuple[str, ...]]] = {}
        experts: dict[tuple[str, str], dict[int, str]] = {}
        for name in files:
            if m := EXPERT.match(name):
                experts.setdefault((m["stack"], m["proj"]), {})[int(m["e"])] = name
        for (stack, proj), found in experts.items():
            if proj == "down":
                self.stacks[f"{stack}.down_proj"] = [(found[e],) for e in sorted(found)]
            elif proj == "gate":  # transformers' gate_up_proj: each expert's gate rows, then its up rows
                ups = experts.get((stack, "up"), {})
                missing = [found[e] for e in sorted(found) if e not in ups]
                if missing:
                    raise CheckpointError(f"{files[missing[0]].name}: missing tensor "
                                          f"{missing[0].replace('gate_proj', 'up_proj')!r}")
                self.stacks[f"{stack}.gate_up_proj"] = [(found[e], ups[e]) for e in sorted(found)]
        for fused, parts in self.stacks.items():
            files[fused] = files[parts[0][0]]
            for n in (n for part in parts for n in part):
                files.pop(n)
        self.files = files

    def read(self, name: str) -> Weight:
        if name in self.stacks:  # [E, out, in]: per expert, gate and up concatenated
            return join([join([self.read(n) for n in part]) for part in self.stacks[name]], stack=True)
        module = name.removesuffix(".weight")
        stored = f"{module}.weight_scale" in self.raw or f"{module}.weight_packed" in self.raw
        if not stored:
            return self._tensor(name)
        scheme = self._scheme(module)
        path = self.raw.get(f"{module}.weight_packed", self.raw.get(name))
        kind = (scheme.format, scheme.type, scheme.bits)
        if kind in (("pack-quantized", "int", 4), ("pack-quantized", "int", 8)):
            return self._packed(module, scheme, path)
        if kind in (("int-quantized", "int", 8), ("naive-quantized", "int", 8)):
            return self._int(module, scheme, self._tensor(name).float(), path)
        if kind in (("float-quantized", "float", 8), ("naive-quantized", "float", 8)):
            return self._float8(module, scheme, path)
        raise CheckpointError(
            f"{path.name}: tensor {name!r} is compressed-tensors {scheme.describe()} (config group "
            f"{scheme.group}), which unmask does not read (supported: {SUPPORTED})")

    # ---- helpers

    def _tensor(self, name: str) -> Tensor:
        return read_tensor(self.raw[name], name, self._handles)

    def _scheme(self, module: str) -> Scheme:
        path = self.raw.get(f"{module}.weight_packed", self.raw.get(f"{module}.weight"))
        if any(matches(t, module) for t in self.ignore):
            raise CheckpointError(f"{path.name}: tensor {module + '.weight'!r} is stored quantized but "
                                  "quantization_config.ignore lists it")
        for s in self.schemes:
            if any(matches(t, module) for t in s.targets):
                return s
        raise CheckpointError(f"{path.name}: tensor {module + '.weight'!r} is stored quantized but no "
                              "quantization_config.config_groups entry targets it")

    def _scales(self, module: str, shape: torch.Size, scheme: Scheme, path: Path) -> tuple[Tensor, int]:
        # weight_scale -> ([out, groups] fp32, group size) for tensor, channel and group strategies
        scale = self._tensor(f"{module}.weight_scale").float()
        out, width = shape
        scale = scale.reshape(-1, 1).expand(out, 1) if scale.numel() == 1 else scale.reshape(out, -1)
        if width % scale.shape[1]:
            raise CheckpointError(f"{path.name}: tensor {module + '.weight_scale'!r} {tuple(scale.shape)} "
                                  f"does not divide the {width} input channels into groups")
        group = width // scale.shape[1]
        g_idx = f"{module}.weight_g_idx"
        if g_idx in self.raw and not torch.equal(self._tensor(g_idx).long(), torch.arange(width) // group):
            raise CheckpointError(f"{path.name}: tensor {g_idx!r} reorders the input channels (activation "
                                  "ordering), which unmask does not read")
        return scale, group

    def _zero(self, module: str, out: int, groups: int) -> Tensor | None:
        # weight_zero_point -> [out, groups] fp32 in the signed range, None when symmetric
        name = f"{module}.weight_zero_point"
        if name not in self.raw:
            return None
        z = self._tensor(name)
        if z.dtype != torch.int32:
            return z.float().reshape(out, groups)
        # 4-bit values packed along the output channels: [ceil(out / 8), groups] int32
        little = z.t().contiguous().view(torch.uint8)  # [groups, out / 2]
        values = torch.stack([little & 15, little >> 4], -1).flatten(-2)[:, :out]
        return values.t().float() - 8

    def _packed(self, module: str, scheme: Scheme, path: Path) -> Stored:
        assert sys.byteorder == "little", "int32 words read as bytes"
        words = self._tensor(f"{module}.weight_packed")  # int32 [out, in * bits / 32]
        shape = (words.shape[0], words.shape[1] * 32 // scheme.bits)
        if f"{module}.weight_shape" in self.raw:  # the true width, where packing padded it
            shape = self._tensor(f"{module}.weight_shape").tolist()
        shape = torch.Size(shape)
        raw = words.contiguous().view(torch.uint8)
        if scheme.bits == 8:  # four values a word, value + 128
            return self._int(module, scheme, raw[:, : shape[1]].float() - 128, path)
        scale, group = self._scales(module, shape, scheme, path)
        zero = self._zero(module, shape[0], scale.shape[1])
        if shape[1] % 2 or raw.shape[1] * 2 != shape[1]:
            raise CheckpointError(f"{path.name}: tensor {module + '.weight_packed'!r} {tuple(words.shape)} "
                                  f"does not hold {tuple(shape)} as whole bytes")
        offset = torch.zeros_like(scale) if zero is None else -zero * scale  # (q - 8 - z) s = (q - 8) s - z s
        w = Int4Weight(raw, scale, offset, group)

        def rows(a: int, b: int) -> Tensor:
            return Int4Weight(raw[a:b], scale[a:b], offset[a:b], group).dense()

        return Stored(shape, lambda dtype: w, lambda dtype: decoded(rows, shape, dtype))

    def _int(self, module: str, scheme: Scheme, q: Tensor, path: Path) -> Stored:
        # q: the signed 8-bit values [out, in] as fp32
        scale, group = self._scales(module, q.shape, scheme, path)
        zero = self._zero(module, *scale.shape)

        def rows(a: int, b: int) -> Tensor:
            z = 0 if zero is None else zero[a:b].repeat_interleave(group, -1)
            return (q[a:b] - z) * scale[a:b].repeat_interleave(group, -1)

        def packed(dtype: torch.dtype) -> Int8Weight:
            if zero is None and scale.shape[1] == 1:  # the file's own int8 values and channel scales
                return Int8Weight(q.to(torch.int8), scale[:, 0].to(dtype))
            return requantized(rows, q.shape, dtype)

        return Stored(q.shape, packed, lambda dtype: decoded(rows, q.shape, dtype))

    def _float8(self, module: str, scheme: Scheme, path: Path) -> Stored:
        w = self._tensor(f"{module}.weight")  # float8_e4m3fn [out, in]
        if scheme.strategy == "block":  # [ceil(out / b0), ceil(in / b1)] over blocks of b0 x b1
            b0, b1 = scheme.block or (128, 128)
            scale = self._tensor(f"{module}.weight_scale").float().repeat_interleave(b0, 0)[: w.shape[0]]

            def rows(a: int, b: int) -> Tensor:
                return w[a:b].float() * scale[a:b].repeat_interleave(b1, 1)[:, : w.shape[1]]
        else:
            scale, group = self._scales(module, w.shape, scheme, path)  # [out, groups]

            def rows(a: int, b: int) -> Tensor:
                return (w[a:b].float().unflatten(-1, (-1, group)) * scale[a:b, :, None]).flatten(-2)

        return Stored(w.shape, lambda dtype: requantized(rows, w.shape, dtype),
                      lambda dtype: decoded(rows, w.shape, dtype))
