"""int8 for the linear layers: int8 weights with one symmetric scale per output channel.

The transformer blocks' linear layers (fused qkv, attention output, gate/up/down) and an untied output head
become Int8Linear. The embedding stays in the compute dtype: its lookups read a few rows, and a tied head
shares it, so both stay unquantized in tied checkpoints. Activations keep the compute dtype between layers.
For models up to AUTO_INT8_MAX_PARAMS with fp32 activations on a CPU that has fbgemm (x86), each layer also
quantizes its input per call (dynamic quantization, 7-bit uint8 with one scale per call) and multiplies int8
by int8: on a CPU without native bf16 a forward of the embedded model ran 1.4-1.5x faster than fp32
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

QUANTIZE = ("none", "int8", "auto")
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
    """None, "int8" or "auto" (see auto_quantize); "none" is None. Anything else is a one-line error naming
    the field."""
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
    def __init__(self, in_features: int, out_features: int, bias: bool, activations: bool = True):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.activations = activations  # int8 activations where fbgemm runs fp32 inputs (module docstring)
        self.register_buffer("weight", torch.empty(out_features, in_features, dtype=torch.int8))
        self.register_buffer("scale", torch.empty(out_features))
        self.bias = nn.Parameter(torch.empty(out_features)) if bias else None
        self._packed: tuple[Tensor, object] | None = None  # (the weight it was packed from, fbgemm's packing)

    def forward(self, x: Tensor) -> Tensor:
        if x.device.type != "cpu":
            return dequantized_linear(x, self.weight, self.scale, self.bias)
        flat = x.reshape(-1, self.in_features)
        if x.dtype == torch.float32 and FBGEMM and self.activations and not getattr(_apart, "on", False):
            # reduce_range: 7-bit activations, so that AVX2's 16-bit pair sums cannot saturate
            y = torch.ops.quantized.linear_dynamic(flat, self.packed(), True)
            return y.view(*x.shape[:-1], self.out_features)
        if x.dtype == torch.bfloat16 and flat.shape[0] <= PACK_ROWS:
            y = torch.ops.aten._weight_int8pack_mm(flat, self.weight, self.scale)
        else:
            y = chunked_linear(flat, self.weight, self.scale)
        if self.bias is not None:
            y += self.bias
        return y.view(*x.shape[:-1], self.out_features)

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
        bias = self.bias is not None
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={bias}"


def quantized_names(model: nn.Module) -> list[str]:
    """The linear layers int8 replaces: every nn.Linear of the blocks, and the head unless tied."""
    tied = model.cfg.tie_word_embeddings
    return [n for n, m in model.named_modules() if isinstance(m, nn.Linear) and not (tied and n == "head")]


def quantize_int8(model: nn.Module, activations: bool = True) -> nn.Module:
    """Replace the linear layers in place, one at a time, so each full-precision weight is freed as it goes.
    On a meta-device model (before loading) the new layers stay empty and load_weights fills them.
    activations: whether fp32 inputs are quantized too on the CPU (int8_activations)."""
    for name in quantized_names(model):
        parent, _, attr = name.rpartition(".")
        linear = model.get_submodule(name)
        with torch.device("meta"):
            new = Int8Linear(linear.in_features, linear.out_features, linear.bias is not None, activations)
        if not linear.weight.is_meta:
            new.weight, new.scale = quantize_tensor(linear.weight.detach(), linear.weight.dtype)
            new.bias = linear.bias
        setattr(model.get_submodule(parent), attr, new)
    return model


def quantization(model: nn.Module) -> str | None:
    return "int8" if any(isinstance(m, Int8Linear) for m in model.modules()) else None


def int8_state(name: str, tensor: Tensor, device, dtype: torch.dtype) -> dict[str, Tensor]:
    """The state entries for a checkpoint weight bound for an Int8Linear: its int8 weight and scale."""
    q, scale = quantize_tensor(tensor.to(device), dtype)
    return {name: q, name.removesuffix("weight") + "scale": scale}
