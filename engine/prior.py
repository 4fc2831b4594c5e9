"""The denoiser's hook for outside knowledge: a function from one forward's canvas logits to new logits.

engine/memory.py (the repository memory) and engine/heal.py (the first position of a healed canvas)
implement it; engine/generate.py and engine/expand.py call it once per forward, before committing.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import Tensor

# (logits [L, V], canvas tokens [L], masked [L]) -> logits [L, V] with outside knowledge mixed in
Prior = Callable[[Tensor, Tensor, Tensor], Tensor]
