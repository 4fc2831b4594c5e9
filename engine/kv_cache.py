"""Keys and values of the fixed context around the canvas, reused across denoising steps."""

from __future__ import annotations

import torch
from torch import Tensor


class KVCache:
    """Per-layer K/V for every position of one sequence; a forward over a window writes its own slice.

    A full forward (start=0, the whole sequence) fills it; later window forwards attend to the stored
    context, which is stale by however many steps have passed since the last full forward. That is the
    Fast-dLLM approximation; `refresh` schedules how often the caller pays for a full forward.
    """

    def __init__(self, num_layers: int, batch: int, kv_heads: int, length: int, head_dim: int, dtype, device):
        shape = (batch, kv_heads, length, head_dim)  # [B, KV, T, D]
        self.k = [torch.zeros(shape, dtype=dtype, device=device) for _ in range(num_layers)]
        self.v = [torch.zeros(shape, dtype=dtype, device=device) for _ in range(num_layers)]
        self.length = length

    def update(self, layer: int, start: int, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        # k, v: [B, KV, W, D] for positions start..start+W-1
        end = start + k.shape[2]
        assert end <= self.length, f"window ends at {end}, past the cache length {self.length}"
        self.k[layer][:, :, start:end] = k
        self.v[layer][:, :, start:end] = v
        return self.k[layer], self.v[layer]


class SlotCache:
    """K/V for the rows of a padded batch (engine/batch.py): one slot per sequence, kept while it is denoised.

    Slot s holds sequence s's keys at positions [0, capacity); position `capacity` is scratch where padding
    tokens write (no key mask ever lets a row attend to it). A forward reaches the slots through a SlotView:
    `fill` (full forwards: write the rows' keys into their slots, attend to the forward's own keys) or
    `window` (canvas windows: write them, then attend to slots 0..rows-1 up to `length`, a view, no copy).
    """

    def __init__(self, num_layers: int, slots: int, kv_heads: int, head_dim: int, dtype, device,
                 max_length: int | None = None):
        self.num_layers, self.dtype, self.device, self.max_length = num_layers, dtype, device, max_length
        self.dims = (slots, kv_heads, head_dim)
        self.capacity = 0
        self.k: list[Tensor] = []
        self.v: list[Tensor] = []
        self.reserve(1)

    @property
    def scratch(self) -> int:
        return self.capacity

    def reserve(self, length: int) -> None:
        """Room for sequences of `length` tokens; growing keeps what the slots hold."""
        if length <= self.capacity:
            return
        grown = max(length, min(2 * self.capacity, self.max_length or 2 * self.capacity))  # doubling
        old, self.capacity = self.capacity, grown
        slots, kv_heads, head_dim = self.dims
        shape = (slots, kv_heads, self.capacity + 1, head_dim)  # [S, KV, T + 1, D]

        def grown(t: Tensor | None) -> Tensor:
            new = torch.zeros(shape, dtype=self.dtype, device=self.device)
            if t is not None:
                new[:, :, :old] = t[:, :, :old]
            return new

        self.k = [grown(self.k[i] if self.k else None) for i in range(self.num_layers)]
        self.v = [grown(self.v[i] if self.v else None) for i in range(self.num_layers)]

    def move(self, src: int, dst: int) -> None:
        """Slot `src`'s keys and values into slot `dst` (a row leaving: the last row takes its slot)."""
        for t in self.k + self.v:
            t[dst] = t[src]

    def fill(self, slots: Tensor) -> SlotView:
        return SlotView(self, slots, None)

    def window(self, rows: int, length: int) -> SlotView:
        return SlotView(self, torch.arange(rows, device=self.device), length)


class SlotView:
    """One forward's access to a SlotCache; the model calls update(layer, positions, k, v) per layer."""

    def __init__(self, cache: SlotCache, slots: Tensor, length: int | None):
        self.cache, self.slots, self.length = cache, slots, length

    def update(self, layer: int, start: Tensor, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        # k, v: [B, KV, W, D]; start: positions [B, W] of row b's tokens in slot slots[b] (padding: scratch)
        at = self.slots[:, None]  # [B, 1], broadcast against start: [B, W]
        self.cache.k[layer][at, :, start] = k.transpose(1, 2)  # the indexed view is [B, W, KV, D]
        self.cache.v[layer][at, :, start] = v.transpose(1, 2)
        if self.length is None:
            return k, v
        rows = self.slots.shape[0]
        return self.cache.k[layer][:rows, :, : self.length], self.cache.v[layer][:rows, :, : self.length]
