"""llama.cpp's (ggml's) quantized block types, read in torch: each row of a weight is a run of blocks along
its input channels.

    type  values  bytes  a block                                           maps onto
    Q4_0    32     18   d fp16, 16 bytes of nibbles: W = (q - 8) d          int4, group 32, exact
    Q4_1    32     20   d, m fp16, nibbles: W = q d + m                     int4, group 32, exact
    Q4_K   256    144   d, dmin fp16, 12 bytes of 6-bit scales and mins     int4, group 32, exact
                        for 8 sub-blocks of 32, nibbles: W = q d sc - dmin m
    Q5_0    32     22   d, 32 high bits, nibbles: W = (q - 16) d           int8 per output channel
    Q5_1    32     24   d, m, high bits, nibbles: W = q d + m              int8 per output channel
    Q6_K   256    210   low nibbles, high 2 bits, 16 int8 scales, d:       int8 per output channel
                        W = (q - 32) d sc per 16 values
    Q8_0    32     34   d fp16, 32 int8: W = q d                            int8 per output channel

"exact": the block's 4-bit values are kept as they are, with the block's scale and offset rounded to bf16
(Int4Linear's); "int8 per output channel": decoded a few rows at a time and quantized again with one scale per
row (engine/quantize.py), one rounding of at most half an int8 step of the row's largest value on top of the
file's own (measured in tests/test_formats_gguf.py). Element order within a block follows ggml-quants.c (and
gguf-py's reference decoders, which the tests compare against).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

# type name -> (values per block, bytes per block)
BLOCKS = {"Q4_0": (32, 18), "Q4_1": (32, 20), "Q5_0": (32, 22), "Q5_1": (32, 24), "Q8_0": (32, 34),
          "Q4_K": (256, 144), "Q6_K": (256, 210)}
INT4 = ("Q4_0", "Q4_1", "Q4_K")  # the types whose values Int4Linear holds as they are
GROUP = 32  # their group: a block of Q4_0/Q4_1, a sub-block of Q4_K


def half(b: Tensor) -> Tensor:
    # uint8 [..., 2] -> fp32 [..., 1], a little-endian fp16
    return b.contiguous().view(torch.float16).float()


def blocks(rows: Tensor, kind: str) -> Tensor:
    # uint8 [R, bytes per row] -> [R, blocks per row, bytes per block]
    return rows.view(rows.shape[0], -1, BLOCKS[kind][1])


def nibbles(qs: Tensor) -> Tensor:
    # uint8 [..., n] -> [..., 2n]: the low nibbles (the first n values), then the high ones
    return torch.cat([qs & 15, qs >> 4], -1)


def high_bits(qh: Tensor) -> Tensor:
    # 4 bytes [..., 4] (a little-endian uint32) -> its 32 bits [..., 32], bit j for value j
    shifts = torch.arange(8, dtype=torch.uint8)
    return ((qh[..., None] >> shifts) & 1).flatten(-2)


def int4(rows: Tensor, kind: str) -> tuple[Tensor, Tensor, Tensor]:
    """A 4-bit type's rows [R, bytes] -> (packed uint8 [R, in / 2] with the even channel in the low nibble,
    scale and offset fp32 [R, in / 32]) with W = (q - 8) * scale + offset per group of 32."""
    b = blocks(rows, kind)
    if kind == "Q4_K":
        d, dmin, s = half(b[..., 0:2]), half(b[..., 2:4]), b[..., 4:16].int()  # s: [R, n, 12]
        lo, mid, hi = s[..., 0:4], s[..., 4:8], s[..., 8:12]
        # 6-bit scales and mins of 8 sub-blocks: the first four in the low 6 bits of bytes 0-3 and 4-7, the
        # last four from the nibbles of bytes 8-11 and the top 2 bits of bytes 0-3 and 4-7
        sc = torch.cat([lo & 63, (hi & 15) | ((lo >> 6) << 4)], -1)
        mins = torch.cat([mid & 63, (hi >> 4) | ((mid >> 6) << 4)], -1)
        scale, low = d * sc, dmin * mins  # [R, n, 8]
        # 4 runs of 32 bytes: the low nibbles are sub-block 2j, the high ones sub-block 2j + 1
        q = nibbles(b[..., 16:144].unflatten(-1, (4, 32)))  # [R, n, 4, 64]
        offset = 8 * scale - low
    else:
        d = half(b[..., 0:2])
        q = nibbles(b[..., (2 if kind == "Q4_0" else 4):])  # [R, n, 32]
        scale = d
        offset = torch.zeros_like(d) if kind == "Q4_0" else 8 * d + half(b[..., 2:4])
    q = q.reshape(rows.shape[0], -1)
    return q[:, ::2] | q[:, 1::2] << 4, scale.reshape(rows.shape[0], -1), offset.reshape(rows.shape[0], -1)


def decode(rows: Tensor, kind: str) -> Tensor:
    """rows uint8 [R, bytes] -> the weight fp32 [R, in]."""
    if kind in INT4:
        packed, scale, offset = int4(rows, kind)
        q = torch.stack([packed & 15, packed >> 4], -1).flatten(-2).float().unflatten(-1, (-1, GROUP))
        return ((q - 8) * scale[..., None] + offset[..., None]).flatten(-2)
    b = blocks(rows, kind)
    d = half(b[..., 0:2])
    if kind == "Q8_0":
        w = b[..., 2:].contiguous().view(torch.int8).float() * d
    elif kind in ("Q5_0", "Q5_1"):
        start = 2 if kind == "Q5_0" else 4
        q = (nibbles(b[..., start + 4 :]) | high_bits(b[..., start : start + 4]) << 4).float()
        w = (q - 16) * d if kind == "Q5_0" else q * d + half(b[..., 2:4])
    elif kind == "Q6_K":
        ql, qh = b[..., 0:128], b[..., 128:192]
        sc, d = b[..., 192:208].contiguous().view(torch.int8).float(), half(b[..., 208:210])
        low = nibbles(ql.unflatten(-1, (2, 64)))  # [R, n, 2, 128]: per half of the block
        shifts = torch.tensor([0, 2, 4, 6], dtype=torch.uint8)
        high = ((qh.unflatten(-1, (2, 1, 32)) >> shifts[:, None]) & 3).flatten(-2)  # [R, n, 2, 128]
        q = ((low | high << 4).float() - 32).reshape(*b.shape[:2], 16, 16)
        w = q * (d * sc)[..., None]
    else:
        raise AssertionError(kind)
    return w.reshape(rows.shape[0], -1)


def reader(rows: Callable[[int, int], Tensor], kind: str) -> Callable[[int, int], Tensor]:
    """rows(first, last) -> raw bytes, as a function of the decoded rows (for packed.requantized)."""
    return lambda first, last: decode(rows(first, last), kind)
