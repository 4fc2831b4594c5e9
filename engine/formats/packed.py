"""What a quantized file's tensor becomes: the engine's packed weights (Int8Linear, Int4Linear), never a
full-precision copy of the model.

A reader (engine/formats/compressed.py, gguf.py) returns a `Stored` for each quantized tensor: its shape, its
`packed` form (Int8Weight or Int4Weight, mapped from the file's own values) and a `dense` decoding for the
tensors the engine keeps wide (the embedding, DiffusionGemma's routers). The loaders join the parts of a fused
weight (q/k/v, an expert's gate and up, a stack of experts) and install a packed module in place of the linear
layer or expert stack.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from engine.int4 import Int4Linear, unpack_plain
from engine.quantize import PACKED, Int8Linear, packed_modules, packed_state, quantize_tensor, stacked_names

CHUNK_ELEMENTS = 1 << 22  # values decoded at a time while converting: bounds the fp32 temporaries (16 MB)


@dataclass(frozen=True)
class Int8Weight:
    """W[..., o, i] = q[..., o, i] * scale[..., o]: Int8Linear's form."""

    q: Tensor  # int8 [E?, out, in]
    scale: Tensor  # [E?, out]

    @property
    def shape(self) -> torch.Size:
        return self.q.shape

    def dense(self) -> Tensor:
        return self.q.float() * self.scale.float()[..., None]


@dataclass(frozen=True)
class Int4Weight:
    """W[..., o, i] = (q - 8) * scale[..., o, i // group] + offset[..., o, i // group]: Int4Linear's form."""

    packed: Tensor  # uint8 [E?, out, in / 2], the even input channel in the low nibble
    scale: Tensor  # fp32 [E?, out, in / group]
    offset: Tensor  # fp32 [E?, out, in / group]
    group: int

    @property
    def shape(self) -> torch.Size:
        return torch.Size((*self.packed.shape[:-1], 2 * self.packed.shape[-1]))

    def dense(self) -> Tensor:
        q = unpack_plain(self.packed).float().unflatten(-1, (-1, self.group))  # [E?, out, groups, group]
        return ((q - 8) * self.scale[..., None] + self.offset[..., None]).flatten(-2)


Packed = Int8Weight | Int4Weight


@dataclass(frozen=True)
class Stored:
    """A tensor held in a file's quantized format, decoded on demand."""

    shape: torch.Size  # the full-precision weight's
    packed: Callable[[torch.dtype], Packed]  # the packed weight (int8 scales in the given compute dtype)
    dense: Callable[[torch.dtype], Tensor]  # decoded into the dtype, for tensors the engine keeps wide


Weight = Tensor | Stored


def requantized(rows: Callable[[int, int], Tensor], shape: torch.Size, dtype: torch.dtype) -> Int8Weight:
    """An Int8Weight for a weight [E?, out, in] decoded by rows(first, last) -> fp32 [last - first, in] over
    its flattened rows, a few MB at a time; one symmetric scale per output channel (quantize.py)."""
    width, count = shape[-1], shape[:-1].numel()
    q, scale = torch.empty(count, width, dtype=torch.int8), torch.empty(count, dtype=dtype)
    step = max(1, CHUNK_ELEMENTS // width)
    for r in range(0, count, step):
        q[r : r + step], scale[r : r + step] = quantize_tensor(rows(r, min(r + step, count)), dtype)
    return Int8Weight(q.view(shape), scale.view(shape[:-1]))


def decoded(rows: Callable[[int, int], Tensor], shape: torch.Size, dtype: torch.dtype) -> Tensor:
    """The whole weight in dtype, decoded a few MB at a time (no fp32 copy of a large embedding)."""
    width, count = shape[-1], shape[:-1].numel()
    out = torch.empty(count, width, dtype=dtype)
    step = max(1, CHUNK_ELEMENTS // width)
    for r in range(0, count, step):
        out[r : r + step] = rows(r, min(r + step, count))
    return out.view(shape)


def as_int8(w: Weight | Packed, dtype: torch.dtype) -> Int8Weight:
    # a part of a fused weight whose other parts are int8 (a file may mix types, as Q4_K_M does)
    if isinstance(w, Int8Weight):
        return w
    if isinstance(w, Stored):
        w = w.packed(dtype)
    dense = w.float() if isinstance(w, Tensor) else w.dense()
    return requantized(lambda a, b: dense.reshape(-1, dense.shape[-1])[a:b], dense.shape, dtype)


def join(parts: Sequence[Weight], stack: bool = False) -> Weight:
    """Parts of one fused weight: concatenated along the output channels (q, k, v; gate, up), or stacked as
    experts. Full-precision parts stay a tensor; with a quantized part, the join packs as its parts do: int4
    where every part is int4 in the same groups, else int8 (an int4 or full-precision part is requantized
    per output channel)."""
    if len(parts) == 1 and not stack:
        return parts[0]
    combine = torch.stack if stack else torch.cat
    dim = 0 if stack or len(parts[0].shape) == 1 else -2  # a bias [out]; a weight's out [E?, out, in]
    if all(isinstance(p, Tensor) for p in parts):
        return combine(list(parts), dim)
    first = parts[0].shape
    shape = torch.Size((len(parts), *first) if stack else (*first[:-2], sum(p.shape[-2] for p in parts),
                                                           first[-1]))

    def packed(dtype: torch.dtype) -> Packed:
        held = [p.packed(dtype) if isinstance(p, Stored) else p for p in parts]
        groups = {p.group if isinstance(p, Int4Weight) else None for p in held}
        if len(groups) == 1 and None not in groups:
            fields = ("packed", "scale", "offset")
            return Int4Weight(*(combine([getattr(p, f) for p in held], dim) for f in fields), held[0].group)
        held = [as_int8(p, dtype) for p in held]
        scales = combine([p.scale for p in held], dim if stack else -1)  # [E?, out]
        return Int8Weight(combine([p.q for p in held], dim), scales)

    def dense(dtype: torch.dtype) -> Tensor:
        return combine([p.dense(dtype) if isinstance(p, Stored) else p.to(dtype) for p in parts], dim)

    return Stored(shape, packed, dense)


# ---- installing packed modules in a model built on the meta device


def targets(model: nn.Module) -> set[str]:
    """The full-precision names whose weights may arrive packed: every linear layer's weight but those the
    model keeps wide (`model.wide`, DiffusionGemma's routers), every expert stack, every packed module's."""
    wide = getattr(model, "wide", ())
    linear = {f"{n}.weight" for n, m in model.named_modules()
              if isinstance(m, nn.Linear) and not n.endswith(wide)}
    return linear | set(stacked_names(model)) | set(packed_modules(model))


def module(w: Packed, bias: Tensor | None, dtype: torch.dtype, device) -> nn.Module:
    """An Int8Linear (weights only: a format's activation scheme is not run) or Int4Linear holding w."""
    *stack, out, width = w.shape
    experts = stack[0] if stack else None
    if isinstance(w, Int4Weight):
        return Int4Linear.from_pairs(w.packed.to(device), w.scale, w.offset, w.group, bias)
    with torch.device("meta"):
        layer = Int8Linear(width, out, bias is not None, activations=False, experts=experts)
    state = {"weight": w.q.to(device), "scale": w.scale.to(device, dtype)}
    layer.load_state_dict(state | ({} if bias is None else {"bias": bias}), assign=True)
    return layer


def install(model: nn.Module, held: dict[str, Packed], state: dict[str, Tensor], device,
            dtype: torch.dtype) -> None:
    """Put a packed module holding each weight of `held` (full-precision name -> packed weight) in place of
    its linear layer or expert stack, and add its entries to `state` (a linear layer's bias moves into it)."""
    modules = dict(model.named_modules())
    for ours, w in held.items():
        prefix = ours.removesuffix(".weight")
        linear = ours.endswith(".weight") and isinstance(modules.get(prefix), (nn.Linear, *PACKED))
        name = prefix if linear else ours  # an expert stack is a parameter of its module
        bias = state.pop(f"{name}.bias", None) if linear else None
        new = module(w, bias, dtype, device)
        parent, _, attr = name.rpartition(".")
        holder = model.get_submodule(parent)
        delattr(holder, attr)
        setattr(holder, attr, new)
        state.update({f"{name}.{k}": v for k, v in new.state_dict().items()})


def place(ours: str, w: Weight, wanted: set[str], packed: dict, state: dict, held: dict, device,
          dtype: torch.dtype) -> None:
    """One weight into a loader's state: a quantized one kept packed where the model can hold it so
    (`wanted`, from targets) and decoded elsewhere; a full-precision one quantized as read where the model was
    quantized at load (`packed`, quantize.packed_modules), else cast."""
    if isinstance(w, Stored):
        if ours in wanted:
            held[ours] = w.packed(dtype)
            return
        w = w.dense(dtype)
    if ours in packed:  # quantized as read, so no full-precision copy of the model is ever held
        state.update(packed_state(packed[ours], w.to(device), dtype))
    else:
        state[ours] = w.to(device=device, dtype=dtype)
