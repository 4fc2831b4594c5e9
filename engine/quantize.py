"""Quantized weights at load: int8 (here) and group-wise int4 (engine/int4.py), for every family.

int8 is int8 weights with one symmetric scale per output channel. The transformer blocks' linear layers
(fused qkv, attention output, gate/up/down) and an untied output head become Int8Linear (or Int4Linear);
DiffusionGemma's expert stacks become the same modules with a leading expert dimension; its routers stay
wide. The embedding stays in the compute dtype: its lookups read a few rows, and a tied head shares it, so
both stay unquantized in tied checkpoints. Activations keep the compute dtype between layers.

For models up to AUTO_INT8_MAX_PARAMS with fp32 activations on a CPU that has fbgemm (x86), each int8 layer
also quantizes its input per call (dynamic quantization, 7-bit uint8 with one scale per call) and multiplies
int8 by int8: on a CPU without native bf16 a forward of the embedded model ran 1.4-1.5x faster than fp32
(bench/bench_quantize.py), where converting int8 weights back to fp32 gained nothing. Everywhere else only
the weights are int8.
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from engine.int4 import Int4Linear, group_size, layout_for

QUANTIZE = ("none", "int8", "int4", "auto")
# On a CPU with bf16 activations torch's fused int8 kernel beats dequantize-then-matmul only for a few rows
# (bench/bench_quantize.py, "one linear layer")
PACK_ROWS = 8
# On a CPU the weight is converted this many bytes at a time: a chunk stays in cache for its matmul, where a
# whole converted weight is a fresh allocation every call (page faults), measured 2-9x slower in all
DEQUANT_BYTES = 4 << 20
CHUNK_ELEMENTS = 1 << 22  # weights quantized at a time: bounds the temporaries (16 MB each) while loading
# int8 x int8 products for fp32 activations on the CPU (x86); torch.backends.quantized lists the engines
FBGEMM = "fbgemm" in torch.backends.quantized.supported_engines
# "auto" chooses int8 only for models up to this size: the embedded model lost nothing measurable with int8
# activations, but larger transformers grow outlier activation channels (Dettmers et al. 2022, LLM.int8())
# that one scale per call rounds away
AUTO_INT8_MAX_PARAMS = 10**9


_apart = threading.local()


@contextmanager
def rows_apart() -> Iterator[None]:
    """Forwards inside keep each row's activations in the compute dtype (int8 weights only): int8
    activations share one scale per call, so a row of a batch would change another's answer. The batcher
    (engine/batch.py) runs under it; per thread."""
    before = getattr(_apart, "on", False)
    _apart.on = True
    try:
        yield
    finally:
        _apart.on = before


def parse_quantize(value: str | None) -> str | None:
    """None, "int8", "int4" or "auto" (see auto_quantize); "none" is None. Anything else is a one-line error
    naming the field."""
    if value is None or value == "none":
        return None
    if value not in QUANTIZE:
        raise ValueError(f"quantize {value!r} is not one of {', '.join(QUANTIZE)}")
    return value


def int8_by_int8(device: str, dtype: torch.dtype, parameters: int) -> bool:
    """Whether an int8 model of `parameters` weights run in `dtype` on `device` multiplies int8 by int8
    (fbgemm, fp32 activations quantized per call), holding fbgemm's packed copy of each weight."""
    return device == "cpu" and dtype == torch.float32 and FBGEMM and int8_activations(parameters)


def auto_quantize(device: str, dtype: torch.dtype, parameters: int) -> str | None:
    """What quantize="auto" means: int8 where it multiplies int8 by int8 (a CPU that would otherwise
    multiply in fp32, a model up to AUTO_INT8_MAX_PARAMS); full precision everywhere else."""
    return "int8" if int8_by_int8(device, dtype, parameters) else None


def int8_activations(parameters: int) -> bool:
    """Whether a model of this many weights quantizes its fp32 activations as well: only up to
    AUTO_INT8_MAX_PARAMS. On a random slice of the Dream-7B shape int8 activations cut top-1 agreement with
    fp32 to 74% (int8 weights alone: 95%; bench/bench_quantize.py), so a large model keeps int8 for its
    memory, weights only."""
    return parameters <= AUTO_INT8_MAX_PARAMS


def quantize_tensor(w: Tensor, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
    # w: [out, in] -> int8 [out, in], scale [out] in dtype, with w ~= q * scale[:, None]
    q = torch.empty(w.shape, dtype=torch.int8, device=w.device)
    scale = torch.empty(w.shape[0], dtype=dtype, device=w.device)
    step = max(1, CHUNK_ELEMENTS // w.shape[1])
    for i in range(0, w.shape[0], step):
        part = w[i : i + step].float()
        # the scale is rounded to dtype first, so that the int8 values fit the scale used at run time
        s = (part.abs().amax(dim=1) / 127).to(dtype)
        s = torch.where(s > 0, s, torch.ones_like(s))  # an all-zero row: any scale, its q is 0
        q[i : i + step] = torch.div(part, s.float()[:, None]).round_().clamp_(-127, 127)
        scale[i : i + step] = s
    return q, scale


def dequantize(q: Tensor, scale: Tensor) -> Tensor:
    # int8 [out, in] * [out] -> [out, in] in the scale's dtype, one elementwise pass
    return q * scale[:, None]


def dequantized_linear(x: Tensor, q: Tensor, scale: Tensor, bias: Tensor | None) -> Tensor:
    # the whole weight at once: on CUDA one elementwise kernel before the GEMM
    return F.linear(x, dequantize(q, scale), bias)


def chunked_linear(x: Tensor, q: Tensor, scale: Tensor) -> Tensor:
    # x: [N, in] -> [N, out], converting DEQUANT_BYTES of weight at a time. The scale multiplies the output
    # (N x out values, not out x in), except in fp16, where the unscaled sums overflow.
    prescale = x.dtype == torch.float16
    out = torch.empty(x.shape[0], q.shape[0], dtype=x.dtype, device=x.device)
    step = max(1, DEQUANT_BYTES // (q.shape[1] * x.element_size()))
    for i in range(0, q.shape[0], step):
        w = dequantize(q[i : i + step], scale[i : i + step]) if prescale else q[i : i + step].to(x.dtype)
        torch.mm(x, w.t(), out=out[:, i : i + step])
    return out if prescale else out.mul_(scale)


class Int8Linear(nn.Module):
    """int8 weights [E?, out, in] and a scale per output channel [E?, out]; experts: a stack of experts'
    weights, multiplied one expert at a time by matmul(x, expert)."""

    def __init__(self, in_features: int, out_features: int, bias: bool, activations: bool = True,
                 experts: int | None = None):
        super().__init__()
        self.in_features, self.out_features, self.experts = in_features, out_features, experts
        self.activations = activations  # int8 activations where fbgemm runs fp32 inputs (module docstring)
        stack = () if experts is None else (experts,)
        self.register_buffer("weight", torch.empty(stack + (out_features, in_features), dtype=torch.int8))
        self.register_buffer("scale", torch.empty(stack + (out_features,)))
        self.bias = nn.Parameter(torch.empty(out_features)) if bias else None
        self._packed: tuple[Tensor, object] | None = None  # (the weight it was packed from, fbgemm's packing)

    @property
    def shape(self) -> torch.Size:
        """The full-precision weight's shape: [E?, out, in]."""
        return self.weight.shape

    def forward(self, x: Tensor) -> Tensor:
        flat = x.reshape(-1, self.in_features)
        cpu32 = x.device.type == "cpu" and x.dtype == torch.float32
        if cpu32 and FBGEMM and self.activations and not getattr(_apart, "on", False):
            # reduce_range: 7-bit activations, so that AVX2's 16-bit pair sums cannot saturate
            y = torch.ops.quantized.linear_dynamic(flat, self.packed(), True)
            return y.view(*x.shape[:-1], self.out_features)
        y = self.matmul(flat)
        if self.bias is not None:
            y += self.bias
        return y.view(*x.shape[:-1], self.out_features)

    def matmul(self, x: Tensor, expert: int | None = None) -> Tensor:
        # x: [N, in] -> [N, out], int8 weights only (no bias), by the stack's `expert` when it holds experts
        q = self.weight if expert is None else self.weight[expert]
        scale = self.scale if expert is None else self.scale[expert]
        if x.device.type != "cpu":
            return dequantized_linear(x, q, scale, None)
        if x.dtype == torch.bfloat16 and x.shape[0] <= PACK_ROWS:
            return torch.ops.aten._weight_int8pack_mm(x, q, scale)
        return chunked_linear(x, q, scale)

    def quantized_state(self, w: Tensor, dtype: torch.dtype) -> dict[str, Tensor]:
        """The buffers for the full-precision weight w [E?, out, in]: int8 values, scales in dtype."""
        q, scale = quantize_tensor(w.reshape(-1, self.in_features), dtype)
        return {"weight": q.view(w.shape), "scale": scale.view(w.shape[:-1])}

    def packed(self) -> object:
        """fbgemm's packing of the weight (and fp32 bias), made on first use and again if the weight is
        replaced (load_weights fills a meta-built layer after construction)."""
        if self._packed is None or self._packed[0] is not self.weight:
            zero = torch.zeros(self.out_features, dtype=torch.long)
            # torch flags its quantized tensors as deprecated; fbgemm still takes them
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                w = torch._make_per_channel_quantized_tensor(self.weight, self.scale.double(), zero, 0)
                bias = None if self.bias is None else self.bias.detach().float()
                self._packed = (self.weight, torch.ops.quantized.linear_prepack(w, bias))
        return self._packed[1]

    def extra_repr(self) -> str:
        stack = "" if self.experts is None else f"experts={self.experts}, "
        bias = self.bias is not None
        return f"{stack}in_features={self.in_features}, out_features={self.out_features}, bias={bias}"


PACKED = (Int8Linear, Int4Linear)
# output heads: int4 makes them int8, since the logits read them directly (embedded model, top-1 agreement
# with fp32: 0.907 with an int4 head, 0.940 with an int8 one, 0.941 kept in fp32; bench_quantize --int4)
HEADS = ("head", "lm_head")


def quantized_names(model: nn.Module, kind: str = "int8") -> list[str]:
    """The linear layers quantization replaces: every nn.Linear of the model but a head tied to the
    embedding and those the model keeps wide (`model.wide`, e.g. DiffusionGemma's routers); int4 also
    leaves a layer of odd input width (two values per byte)."""
    tied = model.cfg.tie_word_embeddings
    wide = getattr(model, "wide", ())
    return [n for n, m in model.named_modules() if isinstance(m, nn.Linear) and not (tied and n == "head")
            and not n.endswith(wide) and (kind == "int8" or m.in_features % 2 == 0)]


def stacked_names(model: nn.Module) -> list[str]:
    """The expert stacks quantization replaces: the [E, out, in] parameters a module lists in `stacked`."""
    return [f"{n}.{p}" for n, m in model.named_modules() for p in getattr(m, "stacked", ())]


def quantize_model(model: nn.Module, kind: str, activations: bool = True, device=None) -> nn.Module:
    """Replace the linear layers and expert stacks in place with Int8Linear or Int4Linear ("int8", "int4"),
    one at a time, so each full-precision weight is freed as it goes. On a meta-device model (before loading)
    the new modules stay empty and the loader fills them (packed_state). device: where they will run, which
    the int4 layout follows (default: where the weights are). activations: whether int8's fp32 inputs are
    quantized too on the CPU (int8_activations)."""
    for name in quantized_names(model, kind) + stacked_names(model):
        parent, _, attr = name.rpartition(".")
        holder = model.get_submodule(parent)
        old = getattr(holder, attr)  # an nn.Linear, or an expert stack's parameter [E, out, in]
        w, bias = (old.weight, old.bias) if isinstance(old, nn.Linear) else (old, None)
        form = "int8" if name in HEADS else kind  # int4 is weights only, an int8 head too
        new = packed_module(form, w, bias is not None, activations and kind == "int8",
                            w.device if device is None else device)
        if not w.is_meta:
            state = new.quantized_state(w.detach(), w.dtype)
            new.load_state_dict(state | ({} if bias is None else {"bias": bias}), assign=True)
        delattr(holder, attr)  # a parameter's name takes no module until it is free
        setattr(holder, attr, new)
    return model


def packed_module(kind: str, w: Tensor, bias: bool, activations: bool, device) -> nn.Module:
    # an empty Int8Linear or Int4Linear on the meta device for a weight shaped as w, [E?, out, in]
    *stack, out, width = w.shape
    experts, group = (stack[0] if stack else None), group_size(width)
    layout = layout_for(device, out, width, group) if kind == "int4" else None
    with torch.device("meta"):
        if kind == "int8":
            return Int8Linear(width, out, bias, activations, experts)
        return Int4Linear(width, out, bias, experts, group, layout)


def quantize_int8(model: nn.Module, activations: bool = True) -> nn.Module:
    return quantize_model(model, "int8", activations)


def quantization(model: nn.Module) -> str | None:
    """"int4" or "int8" where the model holds packed weights, else None."""
    kinds = {type(m) for m in model.modules() if isinstance(m, PACKED)}
    return "int4" if Int4Linear in kinds else "int8" if kinds else None


# ---- loading: a checkpoint holds full-precision weights under the names the packed modules replaced


def packed_modules(model: nn.Module) -> dict[str, tuple[str, nn.Module]]:
    """Full-precision weight name -> (name, module) of the packed module that holds it: '<name>.weight' for
    a linear layer, '<name>' for an expert stack (a parameter itself before)."""
    return {(n if m.experts is not None else n + ".weight"): (n, m)
            for n, m in model.named_modules() if isinstance(m, PACKED)}


def source_shapes(model: nn.Module) -> dict[str, torch.Size]:
    """Every state entry by its full-precision name and shape, as a checkpoint holds it: a packed module's
    buffers once, as the weight they were quantized from (its bias as it is)."""
    packed = packed_modules(model)
    held = {f"{n}.{b}" for n, m in packed.values() for b, _ in m.named_buffers()}
    shapes = {n: t.shape for n, t in model.state_dict(keep_vars=True).items() if n not in held}
    return shapes | {source: m.shape for source, (_, m) in packed.items()}


def packed_state(packed: tuple[str, nn.Module], tensor: Tensor, dtype: torch.dtype) -> dict[str, Tensor]:
    """The state entries of a packed module (an item of packed_modules) for its full-precision weight, on
    the device it will run on: quantized as read, so no full-precision copy of the model is ever held."""
    name, module = packed
    return {f"{name}.{k}": v for k, v in module.quantized_state(tensor, dtype).items()}
