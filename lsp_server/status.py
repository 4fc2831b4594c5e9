"""What `unmask/status` reports: the model's load state and recent request latencies."""

from __future__ import annotations

import asyncio
from collections import Counter, deque
from concurrent.futures import Future
from dataclasses import asdict, dataclass

import msgspec

from .options import Options

LATENCY_WINDOW = 200


@dataclass
class ModelState:
    model: str | None = None  # checkpoint folder or Hugging Face id; None until known
    family: str | None = None
    device: str | None = None
    dtype: str | None = None
    quantize: str | None = None  # "none" | "int8"
    threads: int | None = None  # torch CPU threads
    state: str = "loading"  # "loading" | "ready" | "failed"
    error: str | None = None


class Status:
    def __init__(self):
        self.model = ModelState()
        self.latencies: deque[float] = deque(
            maxlen=LATENCY_WINDOW
        )  # ms, answered requests, debounce excluded
        self.requests: Counter[str] = Counter()  # "model", "cached", "cancelled", "empty"
        self._running = 0  # completion jobs submitted to the engine thread and not finished

    def record(self, outcome: str, ms: float | None = None) -> None:
        self.requests[outcome] += 1
        if ms is not None:
            self.latencies.append(ms)

    def track(self, job: Future) -> Future:
        """Count job as running until the engine thread finishes it (a cancelled request's job may run on
        until it next polls its flag), and return it."""
        loop = asyncio.get_running_loop()
        self._running += 1
        job.add_done_callback(lambda _: loop.call_soon_threadsafe(self._finished))
        return job

    def _finished(self) -> None:
        self._running -= 1

    def report(self, options: Options, memory: dict | None = None) -> dict:
        return {
            **asdict(self.model),
            "memory": memory,
            "latencies_ms": percentiles(self.latencies),
            "requests": dict(self.requests),
            "running": self._running,
            "options": msgspec.to_builtins(options),
        }


def percentiles(values) -> dict:
    ordered = sorted(values)
    if not ordered:
        return {"p50": None, "p95": None, "count": 0}

    def at(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 1)

    return {"p50": at(0.5), "p95": at(0.95), "count": len(ordered)}
