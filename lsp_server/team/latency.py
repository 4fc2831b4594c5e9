"""Latency percentiles over the most recent requests of one replica."""

from __future__ import annotations

import math
import threading
from collections import deque

WINDOW = 1000  # requests


class Latency:
    def __init__(self, window: int = WINDOW):
        self._ms: deque[float] = deque(maxlen=window)
        self._lock = threading.Lock()

    def add(self, ms: float) -> None:
        with self._lock:
            self._ms.append(ms)

    def summary(self) -> dict:
        """{"p50", "p95", "count"} in ms over the window; None before the first request."""
        with self._lock:
            ms = sorted(self._ms)
        if not ms:
            return {"p50": None, "p95": None, "count": 0}
        return {"p50": round(at(ms, 0.50), 1), "p95": round(at(ms, 0.95), 1), "count": len(ms)}


def at(ordered: list[float], q: float) -> float:
    """The q-quantile of sorted values, nearest rank."""
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]
