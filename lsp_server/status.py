"""What `unmask/status` reports: the model's load state (with a team server, whether it answers) and recent
request latencies."""

from __future__ import annotations

import asyncio
from collections import Counter, deque
from concurrent.futures import Future
from dataclasses import asdict, dataclass, replace

import msgspec

from .options import Options
from .outcomes import NoSuggestion, Suggestion, Trouble, Unreachable

LATENCY_WINDOW = 200


@dataclass
class ModelState:
    model: str | None = None  # checkpoint folder or Hugging Face id; None until known
    family: str | None = None
    device: str | None = None
    dtype: str | None = None
    quantize: str | None = None  # "none" | "int8" | "int4"
    threads: int | None = None  # torch CPU threads
    # "loading" | "ready" | "failed", or with a team server "unreachable" | "refused" (requests still go out)
    state: str = "loading"
    error: str | None = None
    remote: str | None = None  # the team server's URL (model.remote); None: the model runs here

    @property
    def serving(self) -> bool:
        """Requests go to the engine thread: a team server's trouble is retried by the next request."""
        return self.state == "ready" or self.troubled

    @property
    def troubled(self) -> bool:
        """A team server did not answer the last request (or refused it)."""
        return self.state in ("unreachable", "refused")


class Status:
    def __init__(self):
        self.model = ModelState()
        self.latencies: deque[float] = deque(
            maxlen=LATENCY_WINDOW
        )  # ms, answered requests, debounce excluded
        self.requests: Counter[str] = Counter()  # "model", "cached", "cancelled", "empty", "failed" (remote)
        self.completions: Counter[str] = Counter({"shown": 0, "withheld": 0})  # the model's answers
        self._running = 0  # completion jobs submitted to the engine thread and not finished

    def remote_failed(self, trouble: Trouble) -> bool:
        """Note a team server's failure; True when an outage begins (or turns from one kind to the other),
        the one time to tell the user."""
        if not self.model.serving or self.model.remote is None:  # a load began meanwhile: its outcome decides
            return False
        state = "unreachable" if isinstance(trouble, Unreachable) else "refused"
        began, self.model = self.model.state != state, replace(self.model, state=state, error=trouble.message)
        return began

    def remote_answered(self, description: dict) -> None:
        """The end of an outage (description: the team server's model's fields, RemoteModel.describe)."""
        self.model = ModelState(**description, state="ready")

    def judged(self, outcome) -> None:
        """Count a model answer as shown or withheld (its best candidate under the threshold)."""
        if isinstance(outcome, Suggestion):
            self.completions["shown"] += 1
        elif isinstance(outcome, NoSuggestion) and outcome.withheld is not None:
            self.completions["withheld"] += 1

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

    def report(self, options: Options, memory: dict | None = None, adaptation: dict | None = None) -> dict:
        return {
            **asdict(self.model),
            "memory": memory,
            "adaptation": adaptation,
            "latencies_ms": percentiles(self.latencies),
            "requests": dict(self.requests),
            "completions": dict(self.completions),
            "running": self._running,
            "options": redacted(msgspec.to_builtins(options)),
        }


def redacted(options: dict) -> dict:
    if options["model"].get("token") is not None:
        options["model"]["token"] = "(set)"
    return options


def percentiles(values) -> dict:
    ordered = sorted(values)
    if not ordered:
        return {"p50": None, "p95": None, "count": 0}

    def at(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 1)

    return {"p50": at(0.5), "p95": at(0.95), "count": len(ordered)}
