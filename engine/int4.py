"""Group-wise int4 weights, kept packed: Int4Linear, the one packed 4-bit type every loader maps onto.

A weight W [out, in] (or a stack of experts [E, out, in]) is held as 4-bit integers q in 0..15, two to a
byte, and a scale and an offset per group of `group` consecutive input channels, in bf16:

    W[o, i] = (q[o, i] - 8) * scale[o, i // group] + offset[o, i // group]

which is how torch's int4 kernels read it (their qScaleAndZeros). Quantizing at load is min-max per group
(asymmetric, no clipping). How a layer multiplies x of N rows (bench/bench_quantize.py --int4, a 1024 -> 2816
layer on a Xeon with AMX, one thread):

- CPU, N <= KERNEL_ROWS: torch's `_weight_int4pack_mm_for_cpu` on bf16 activations (fp32 and fp16 ones are
  cast to bf16 and back: the kernel's fp32 path is not vectorized, 25x slower). Against a dense bf16 matmul:
  4.8x faster at 1 row, 2.1x at 8, 0.84x at 16, 0.31x at 64 (AMX's dense matmul pulls ahead).
- CPU, more rows: DEQUANT_BYTES of weight at a time converted to W^T in fp32, then a dense matmul in the
  activations' dtype (about 5 ms per 2.9M weights converted); the model is never expanded whole.
- CUDA: torch's `_weight_int4pack_mm` (tinygemm; bf16, compute capability 8.0+). Prepared, not yet run.
- elsewhere (MPS, or a shape the kernels refuse: out not a multiple of 16, a group under 32): the "plain"
  layout, converted by chunks as above.
"""

from __future__ import annotations

import functools
import math

import torch
from torch import Tensor, nn

# by top-1 agreement with fp32 on the embedded model (bench/bench_quantize.py --int4): 0.940 at 128, 0.934
# at 64, 0.949 at 32, for 0.27, 0.28 and 0.31 of bf16's bytes. A layer whose width 128 does not divide
# uses gcd(width, GROUP_SIZE): DiffusionGemma's expert width 704 takes groups of 64
GROUP_SIZE = 128
KERNEL_GROUPS = (32, 64, 128, 256)  # the group sizes torch's int4 kernels take
# rows up to which torch's CPU kernel beats converting chunks for a dense matmul: on an AMX CPU, 1.4x faster
# at 64 rows, 1.25x slower at 128 (bench/bench_quantize.py --int4, a 1024 -> 2816 layer). A MoE expert gets
# about rows x top-k / experts rows (a 256-token canvas: 16 for DiffusionGemma)
KERNEL_ROWS = 96
DEQUANT_BYTES = 4 << 20  # converted at a time: stays in cache for its matmul (as engine/quantize.py)
CHUNK_ROWS = 1 << 10  # weight rows quantized at a time while loading, a multiple of every kernel's block
SCALE_DTYPE = torch.bfloat16  # what the kernels take; rounding a 4-bit step's scale to bf16 costs nothing
LAYOUTS = ("plain", "cpu", "cuda")
PROBE_SHAPE = (144, 64)  # rows: two 64-row blocks and a 16-row tail (four 32-row blocks and a tail)


class Int4Linear(nn.Module):
    """y = x W^T (+ bias) with W in group-wise int4, packed (module docstring for the formula).

    Build one from values quantized elsewhere (a GGUF Q4_K or compressed-tensors W4A16 file) with
    `Int4Linear.from_int4(packed, scales, zeros, group_size, bias=None)`:
      packed  uint8 [out, in / 2] (or [E, out, in / 2]): two values 0..15 per byte, the even input channel in
              the low nibble (q[o, 2j] = packed[o, j] & 15, q[o, 2j + 1] = packed[o, j] >> 4);
      scales, zeros  [out, in / group_size] (or [E, ...]), any float dtype; zeros may be fractional:
              W[o, i] = (q[o, i] - zeros[o, i // g]) * scales[o, i // g]
    A symmetric signed scheme (q' in -8..7, W = q' * s) is q = q' + 8 with zeros = 8; a "min" scheme
    (W = q * s - m) is zeros = m / s, or `from_pairs` with offsets 8 s - m (engine/formats/ maps GGUF and
    compressed-tensors files this way).

    Held, in `layout` ("plain", "cpu" or "cuda", chosen for the device and shape by `layout_for`):
      weight        uint8 [E?, out, in / 2]: plain as above; "cpu" is torch's `_convert_weight_to_int4pack_for
                    _cpu` order of the same bytes (blocks of 64 or 32 rows, `cpu_blocks`); "cuda" is int32
                    [E?, out / 8, in / (16 * tiles), 32, tiles / 2] from `_convert_weight_to_int4pack`
      scale_offset  bf16 [E?, in / group, out, 2]: (scale, offset), torch's qScaleAndZeros
      bias          [out] in the compute dtype, or None
    The layout is made for one device: the module is built where it runs, not moved.
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = False, experts: int | None = None,
                 group: int | None = None, layout: str = "plain", dtype: torch.dtype | None = None):
        super().__init__()
        assert in_features % 2 == 0, "two 4-bit values per byte: an even input width"
        assert layout in LAYOUTS, layout
        self.in_features, self.out_features, self.experts = in_features, out_features, experts
        self.group = group or group_size(in_features)
        assert in_features % self.group == 0, f"group {self.group} does not divide {in_features}"
        self.layout = layout
        stack = () if experts is None else (experts,)
        self.register_buffer("weight", torch.empty(stack + packed_shape(out_features, in_features, layout),
                                                   dtype=torch.int32 if layout == "cuda" else torch.uint8))
        groups = in_features // self.group
        pairs = torch.empty(stack + (groups, out_features, 2), dtype=SCALE_DTYPE)
        self.register_buffer("scale_offset", pairs)
        self.bias = nn.Parameter(torch.empty(out_features, dtype=dtype)) if bias else None

    @property
    def shape(self) -> torch.Size:
        """The full-precision weight's shape: [E?, out, in]."""
        stack = () if self.experts is None else (self.experts,)
        return torch.Size(stack + (self.out_features, self.in_features))

    @classmethod
    def from_int4(cls, packed: Tensor, scales: Tensor, zeros: Tensor, group_size: int,
                  bias: Tensor | None = None) -> Int4Linear:
        """A layer from 4-bit values quantized elsewhere (class docstring), in the layout for their device."""
        scales = scales.float()
        offsets = (8 - zeros.float()) * scales  # (q - zero) * scale = (q - 8) * scale + offset
        return cls.from_pairs(packed, scales, offsets, group_size, bias)

    @classmethod
    def from_pairs(cls, packed: Tensor, scales: Tensor, offsets: Tensor, group_size: int,
                   bias: Tensor | None = None) -> Int4Linear:
        """As from_int4, with W[o, i] = (q[o, i] - 8) * scale + offset per group: the form the layer holds,
        which also takes a zero scale (a GGUF Q4_K sub-block of one value: W = offset)."""
        out, half = packed.shape[-2:]
        experts = packed.shape[0] if packed.dim() == 3 else None
        groups = (out, 2 * half // group_size)
        assert scales.shape[-2:] == groups and offsets.shape[-2:] == groups, (
            f"scales {tuple(scales.shape)} and offsets {tuple(offsets.shape)} do not fit "
            f"{tuple(packed.shape)} packed in groups of {group_size}")
        layout = layout_for(packed.device, out, 2 * half, group_size)
        with torch.device("meta"):
            layer = cls(2 * half, out, bias is not None, experts, group_size, layout)
        pairs = torch.stack([scales.float(), offsets.float()], -1).transpose(-3, -2)
        pairs = pairs.to(packed.device, SCALE_DTYPE).contiguous()
        layer.weight = pack(unpack_plain(packed), layer.layout)
        layer.scale_offset = pairs
        layer.bias = None if bias is None else nn.Parameter(bias)
        return layer

    def quantized_state(self, w: Tensor, dtype: torch.dtype | None = None) -> dict[str, Tensor]:
        """The buffers for the full-precision weight w [E?, out, in] (on the device it will run on),
        quantized CHUNK_ROWS rows at a time so that no full-size temporary is made. The scales are bf16
        whatever the compute dtype (SCALE_DTYPE): dtype is taken only to match Int8Linear's."""
        assert w.shape == self.shape, f"{tuple(w.shape)} is not {tuple(self.shape)}"
        mats = w.reshape(-1, self.out_features, self.in_features)  # [E or 1, out, in]
        per_matrix = packed_shape(self.out_features, self.in_features, self.layout)
        weight = torch.empty((len(mats),) + per_matrix, dtype=self.weight.dtype, device=w.device)
        pairs = torch.empty(len(mats), self.out_features, self.in_features // self.group, 2,
                            dtype=SCALE_DTYPE, device=w.device)
        rows_per_entry = 8 if self.layout == "cuda" else 1  # the cuda layout's first dim: tiles of 8 rows
        for e, matrix in enumerate(mats):
            for r in range(0, self.out_features, CHUNK_ROWS):  # CHUNK_ROWS: whole blocks of every layout
                q, pairs[e, r : r + CHUNK_ROWS] = quantize_groups(matrix[r : r + CHUNK_ROWS], self.group)
                rows = slice(r // rows_per_entry, (r + CHUNK_ROWS) // rows_per_entry)
                weight[e, rows] = pack(q, self.layout)
        pairs = pairs.transpose(1, 2).contiguous()  # [E or 1, in / group, out, 2]
        return {"weight": weight.view(self.weight.shape), "scale_offset": pairs.view(self.scale_offset.shape)}

    def forward(self, x: Tensor) -> Tensor:
        y = self.matmul(x.reshape(-1, self.in_features)).view(*x.shape[:-1], self.out_features)
        return y if self.bias is None else y + self.bias

    def matmul(self, x: Tensor, expert: int | None = None) -> Tensor:
        # x: [N, in] -> [N, out] in x's dtype, by the stack's `expert` when the layer holds experts
        w = self.weight if expert is None else self.weight[expert]
        pairs = self.scale_offset if expert is None else self.scale_offset[expert]
        if self.layout == "cuda":
            return torch.ops.aten._weight_int4pack_mm(x.to(SCALE_DTYPE), w, self.group, pairs).to(x.dtype)
        if self.layout == "cpu" and x.shape[0] <= KERNEL_ROWS:
            y = torch.ops.aten._weight_int4pack_mm_for_cpu(x.to(SCALE_DTYPE), w, self.group, pairs)
            return y.to(x.dtype)
        return chunked_matmul(x, w, pairs, self.group, self.layout)

    def dequantize(self, expert: int | None = None) -> Tensor:
        """The weight [out, in] in fp32 (tests and comparisons; not on a forward's path)."""
        w = self.weight if expert is None else self.weight[expert]
        pairs = self.scale_offset if expert is None else self.scale_offset[expert]
        return transposed(w, pairs, self.group, blocks_of(self.layout)).t()

    def extra_repr(self) -> str:
        stack = "" if self.experts is None else f"experts={self.experts}, "
        return (f"{stack}in_features={self.in_features}, out_features={self.out_features}, "
                f"group={self.group}, layout={self.layout}, bias={self.bias is not None}")


def group_size(in_features: int) -> int:
    return math.gcd(in_features, GROUP_SIZE)


def quantize_groups(w: Tensor, group: int) -> tuple[Tensor, Tensor]:
    # w: [R, in] -> q uint8 [R, in] in 0..15, (scale, offset) [R, in / group, 2] in SCALE_DTYPE. Min-max per
    # group; the scale and offset are rounded to SCALE_DTYPE first, so q is the nearest value under them.
    g = w.float().unflatten(-1, (-1, group))
    lo, hi = g.amin(-1), g.amax(-1)
    # a constant group (hi == lo): scale |lo| / 8 (1 for zeros), so that q = 0 and W = -8 scale + offset = lo
    # with an offset of lo's own magnitude, which bf16 keeps to 3 digits
    flat = torch.where(lo != 0, lo.abs() / 8, torch.ones_like(lo))
    scale = torch.where(hi > lo, (hi - lo) / 15, flat).to(SCALE_DTYPE).float()
    offset = (lo + 8 * scale).to(SCALE_DTYPE).float()
    q = ((g - offset[..., None]) / scale[..., None] + 8).round_().clamp_(0, 15).to(torch.uint8)
    return q.flatten(-2), torch.stack([scale, offset], -1).to(SCALE_DTYPE)


def chunked_matmul(x: Tensor, w: Tensor, pairs: Tensor, group: int, layout: str) -> Tensor:
    # x: [N, in] -> [N, out], converting DEQUANT_BYTES of weight at a time (whole blocks of the cpu layout)
    out, k = pairs.shape[1], x.shape[1]
    y = torch.empty(x.shape[0], out, dtype=x.dtype, device=x.device)
    blocks = blocks_of(layout)
    block = 1 if blocks is None else blocks[0]
    step = max(block, DEQUANT_BYTES // (k * 4) // block * block)  # 4: converted in fp32
    for i in range(0, out, step):
        part = transposed(w[i : i + step], pairs[:, i : i + step], group, blocks)
        torch.mm(x, part.to(x.dtype), out=y[:, i : i + step])
    return y


def transposed(w: Tensor, pairs: Tensor, group: int, blocks: tuple[int, bool] | None) -> Tensor:
    # packed rows and their pairs [in / group, R, 2] -> W^T [in, R] in fp32; blocks: the cpu layout's
    # (cpu_blocks; the rows start on a block), None for plain. W^T
    # is the orientation AMX multiplies fastest (3x W's in bf16), and fp32 arithmetic converts 2x faster than
    # bf16's; each nibble is written where it goes in one pass, W = q * scale + (offset - 8 * scale).
    scale = pairs[..., 0].float()
    offset = pairs[..., 1].float() - 8 * scale  # [G, R]
    (groups, rows), k = scale.shape, 2 * w.shape[1]
    out = torch.empty(k, rows, dtype=torch.float32, device=w.device)
    for first, count, block, halves in runs(rows, blocks):
        b, o = w[first : first + count], out[:, first : first + count]
        s, z = scale[:, first : first + count], offset[:, first : first + count]
        if blocks is None:  # plain: byte j of a row: channels 2j (low nibble) and 2j + 1
            nibbles = [n.view(count, groups, group // 2).permute(1, 2, 0) for n in (b & 15, b >> 4)]
            places = o.view(groups, group // 2, 2, count).unbind(2)
            s, z = s.view(groups, 1, count), z.view(groups, 1, count)
        else:  # per block and channel, byte j: rows j and j + block / 2 (halves), else rows 2j and 2j + 1
            blocks = count // block
            b = b.view(blocks, k, block // 2)
            nibbles = [n.view(blocks, groups, group, -1).permute(1, 2, 0, 3) for n in (b & 15, b >> 4)]
            split = (2, block // 2) if halves else (block // 2, 2)
            places = o.view(groups, group, blocks, *split).unbind(3 if halves else 4)
            s, z = (t.view(groups, 1, blocks, *split).unbind(3 if halves else 4) for t in (s, z))
        for j, (n, place) in enumerate(zip(nibbles, places)):
            torch.addcmul(z if blocks is None else z[j], n.float(), s if blocks is None else s[j], out=place)
    return out


def blocks_of(layout: str) -> tuple[int, bool] | None:
    assert layout != "cuda", "the cuda layout is read by its kernel only"
    return cpu_blocks() if layout == "cpu" else None


def runs(rows: int, blocks: tuple[int, bool] | None) -> list[tuple[int, int, int, bool]]:
    # (first row, rows, rows per block, halves) of the stretches packed alike: the cpu layout's whole blocks,
    # then a tail of fewer rows packed in pairs; plain rows are one stretch
    if blocks is None:
        return [(0, rows, rows, False)]
    block, halves = blocks
    full = rows - rows % block
    return [r for r in ((0, full, block, halves), (full, rows - full, rows - full, False)) if r[1]]


# ---- layouts


def layout_for(device: torch.device | str, out: int, in_features: int, group: int) -> str:
    """The layout whose kernel runs this shape on this device; "plain" where none does."""
    device = torch.device(device)
    fits = group in KERNEL_GROUPS and in_features % group == 0
    if device.type == "cpu" and fits and out % 16 == 0 and cpu_blocks() is not None:
        return "cpu"
    if device.type == "cuda" and fits and out % 8 == 0 and in_features % 32 == 0:
        return "cuda" if torch.cuda.get_device_capability(device) >= (8, 0) else "plain"
    return "plain"


def cuda_tiles(in_features: int) -> int:
    # tinygemm's inner k tiles: 16 * tiles input channels per tile row, the widest that divides the width
    return next((t for t in (8, 4, 2) if in_features % (16 * t) == 0), 2)


def packed_shape(out: int, in_features: int, layout: str) -> tuple[int, ...]:
    if layout == "cuda":
        tiles = cuda_tiles(in_features)
        return (out // 8, in_features // (16 * tiles), 32, tiles // 2)
    return (out, in_features // 2)


def pack(q: Tensor, layout: str) -> Tensor:
    # q uint8 [R, in] (or [E, R, in]) in 0..15 -> weight in `layout`
    if q.dim() == 3:
        return torch.stack([pack(m, layout) for m in q])
    if layout == "cpu":  # its second argument only shapes the meta kernel's answer
        return torch.ops.aten._convert_weight_to_int4pack_for_cpu(q.int(), 2)
    if layout == "cuda":  # tinygemm takes the even channel in the high nibble
        tiles = cuda_tiles(q.shape[1])
        return torch.ops.aten._convert_weight_to_int4pack((q[:, ::2] << 4 | q[:, 1::2]).contiguous(), tiles)
    return q[..., ::2] | q[..., 1::2] << 4


def unpack_plain(packed: Tensor) -> Tensor:
    # uint8 [..., R, in / 2] -> [..., R, in], the even channel from the low nibble
    return torch.stack([packed & 15, packed >> 4], -1).flatten(-2)


@functools.cache
def cpu_blocks() -> tuple[int, bool] | None:
    """(rows per block, halves) of torch's CPU int4 order on this machine (it follows the vector width ATen
    dispatches to: 64 rows for AVX512, 32 for AVX2 and scalar), found by packing a probe and reading it back
    each known way; None when none reads back (that torch's kernel is then not used)."""
    with torch.device("cpu"):  # also when first asked under a meta default device
        q = torch.randint(0, 16, PROBE_SHAPE, generator=torch.Generator().manual_seed(0), dtype=torch.int32)
        try:
            w = torch.ops.aten._convert_weight_to_int4pack_for_cpu(q, 2)
        except (AttributeError, RuntimeError):
            return None
        unit = torch.tensor([1.0, 8.0]).expand(2, q.shape[0], 2)  # scale 1, offset 8: W = q
        for blocks in ((64, True), (32, True), (32, False)):
            if torch.equal(transposed(w, unit, q.shape[1] // 2, blocks).t(), q.float()):
                return blocks
    return None
