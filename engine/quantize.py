"""Weight-only int8 for the linear layers: int8 weights with one symmetric scale per output channel.

The transformer blocks' linear layers (fused qkv, attention output, gate/up/down) and an untied output head
become Int8Linear. The embedding stays in the compute dtype: its lookups read a few rows, and a tied head
shares it, so both stay unquantized in tied checkpoints. Activations keep the compute dtype throughout.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

QUANTIZE = ("none", "int8")
# On a CPU with bf16 activations torch's fused int8 kernel beats dequantize-then-matmul only for a few rows
# (bench/bench_quantize.py, "one linear layer")
PACK_ROWS = 8
# On a CPU the weight is converted this many bytes at a time: a chunk stays in cache for its matmul, where a
# whole converted weight is a fresh allocation every call (page faults), measured 2-9x slower in all
DEQUANT_BYTES = 4 << 20
CHUNK_ELEMENTS = 1 << 22  # weights quantized at a time: bounds the temporaries (16 MB each) while loading


def parse_quantize(value: str | None) -> str | None:
    """None or "int8"; "none" is None. Anything else is a one-line error naming the field."""
    if value is None or value == "none":
        return None
    if value not in QUANTIZE:
        raise ValueError(f"quantize {value!r} is not one of {', '.join(QUANTIZE)}")
    return value


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
    def __init__(self, in_features: int, out_features: int, bias: bool):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.register_buffer("weight", torch.empty(out_features, in_features, dtype=torch.int8))
        self.register_buffer("scale", torch.empty(out_features))
        self.bias = nn.Parameter(torch.empty(out_features)) if bias else None

    def forward(self, x: Tensor) -> Tensor:
        if x.device.type != "cpu":
            return dequantized_linear(x, self.weight, self.scale, self.bias)
        flat = x.reshape(-1, self.in_features)
        if x.dtype == torch.bfloat16 and flat.shape[0] <= PACK_ROWS:
            y = torch.ops.aten._weight_int8pack_mm(flat, self.weight, self.scale)
        else:
            y = chunked_linear(flat, self.weight, self.scale)
        if self.bias is not None:
            y += self.bias
        return y.view(*x.shape[:-1], self.out_features)

    def extra_repr(self) -> str:
        bias = self.bias is not None
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={bias}"


def quantized_names(model: nn.Module) -> list[str]:
    """The linear layers int8 replaces: every nn.Linear of the blocks, and the head unless tied."""
    tied = model.cfg.tie_word_embeddings
    return [n for n, m in model.named_modules() if isinstance(m, nn.Linear) and not (tied and n == "head")]


def quantize_int8(model: nn.Module) -> nn.Module:
    """Replace the linear layers in place, one at a time, so each full-precision weight is freed as it goes.
    On a meta-device model (before loading) the new layers stay empty and load_weights fills them."""
    for name in quantized_names(model):
        parent, _, attr = name.rpartition(".")
        linear = model.get_submodule(name)
        with torch.device("meta"):
            new = Int8Linear(linear.in_features, linear.out_features, linear.bias is not None)
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
