"""Continuous batching: infill requests from many callers denoised together, one forward for all of them.

Each request is prepared exactly as `DiffusionLM.infill` prepares it (the same context cutting, healing,
seeded generator, stop tokens and memory prior; DiffusionLM.prepare) and advanced by the same step
(engine.generate.Denoising) from its own row of a padded batch. Rows are right-padded, so every row keeps
positions 0..len-1, and a key mask keeps a row from seeing another row's tokens or padding: with the cache
off a batched answer is the unbatched `model.infill(..., cache=False)` answer.

With the context cache (engine/kv_cache.py SlotCache) each row keeps a slot of keys and values while it is
denoised. A row that joins, or whose refresh is due (every `refresh` of its own steps, as in CanvasLogits),
gets a full forward (shared with other rows due one where little padding is wasted: by_length); all other
rows' canvas windows share one window forward against their slots. Requests join at step boundaries; a
cancelled request, or one past its deadline, leaves at the next one. One background thread owns the model.

Checkpoints that grow the canvas (an expand token and max_canvas > canvas, DreamOn) are served one at a time
in the same thread, by DiffusionLM.run, while the batch waits. DiffusionGemma is not batched.
"""

from __future__ import annotations

import math
import threading
import time
from collections import Counter, deque
from concurrent.futures import Future
from dataclasses import dataclass, replace

import torch
from torch import Tensor

from engine.api import InfillResult, InfillStats
from engine.errors import Cancelled, Unsupported
from engine.generate import CanvasLayout, Denoising, full_forward_due, middle_of
from engine.job import InfillJob
from engine.kv_cache import SlotCache
from engine.lm import DiffusionLM
from engine.memory import RepositoryMemory
from engine.params import DEFAULT_REFRESH, InfillParams
from engine.quantize import rows_apart

PADDING = 1.1  # a full forward's padded tokens at most this many times its real ones (engine.batch.by_length)


@dataclass(frozen=True)
class InfillRequest:
    """One infill (see DiffusionLM.infill). `deadline` is a time.monotonic() value: past it the request
    leaves with engine.Cancelled. `extra`: (name, text) sources of this request's own repository memory,
    mixed in where params.memory is set; requests never share a memory. params.cache and params.refresh are
    the batcher's, not the request's."""

    prefix: str
    suffix: str
    params: InfillParams = InfillParams()
    deadline: float | None = None
    extra: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        for name in ("prefix", "suffix"):
            if not isinstance(getattr(self, name), str):
                _bad(name, getattr(self, name), "a str")
        if not isinstance(self.params, InfillParams):
            _bad("params", self.params, "an InfillParams")
        real = isinstance(self.deadline, (int, float)) and not isinstance(self.deadline, bool)
        if self.deadline is not None and not (real and math.isfinite(self.deadline)):
            _bad("deadline", self.deadline, "a time.monotonic() value or None")
        pairs = isinstance(self.extra, (tuple, list)) and all(
            isinstance(p, (tuple, list)) and len(p) == 2 and all(isinstance(s, str) for s in p)
            for p in self.extra
        )
        if not pairs:
            _bad("extra", self.extra, "a tuple of (name, text) pairs of str")
        object.__setattr__(self, "extra", tuple(tuple(p) for p in self.extra))  # lists become the tuples


def _bad(field: str, value: object, expected: str) -> None:
    shown = repr(value) if len(repr(value)) <= 80 else f"{type(value).__name__} {repr(value)[:60]}..."
    raise ValueError(f"InfillRequest.{field} must be {expected}, got {shown}")


class Ticket:
    """A submitted request: `future` gives its InfillResult, or raises engine.Cancelled."""

    def __init__(self, request: InfillRequest, batcher: Batcher):
        self.request, self.future = request, Future()
        self._batcher, self._cancelled = batcher, False

    def cancel(self) -> None:
        """The request leaves at the next step boundary (its future raises engine.Cancelled)."""
        self._cancelled = True
        self._batcher._wake()

    def _why_leave(self) -> str | None:
        # polled at step boundaries
        if self._cancelled or self.future.cancelled():
            return "cancelled"
        deadline = self.request.deadline
        if deadline is not None and time.monotonic() >= deadline:
            return "deadline passed"
        return None


@dataclass
class _Pending:
    ticket: Ticket
    job: InfillJob
    t0: float  # time.perf_counter() at submit


class _Row:
    """A request being denoised in the batch: its sequence, canvas bounds and denoising state."""

    def __init__(self, pending: _Pending, model: DiffusionLM, slot: int):
        job = pending.job
        self.ticket, self.job, self.t0, self.slot = pending.ticket, job, pending.t0, slot
        self.ids = torch.tensor(job.sequence(model.special.mask), device=model.device)  # [L]
        self.at = CanvasLayout.of(job.start, job.start + job.canvas, model.model.cfg.shift)
        self.state = Denoising.for_job(job, model.special, model.device)
        self.first: float | None = None  # perf_counter at its first forward
        self.rows_seen = 0  # summed batch sizes of its forwards

    @property
    def length(self) -> int:
        return self.ids.shape[0]


class Batcher:
    """Serves InfillRequests from any thread; one background thread owns the model and runs the batch.

    max_batch: rows denoised together (1: one request at a time, first come first served). cache: the
    approximate context cache (None: on, as in DiffusionLM.infill), a full forward every `refresh` steps of
    each row. padding: rows due a full forward share one only while its padded tokens stay within this many
    times their real tokens (by_length; float("inf"): always one forward)."""

    def __init__(self, model: DiffusionLM, max_batch: int = 16, cache: bool | None = None,
                 refresh: int = DEFAULT_REFRESH, padding: float = PADDING):
        if not getattr(getattr(model, "capabilities", None), "batching", False):
            family = getattr(getattr(model, "family", None), "name", type(model).__name__)
            raise Unsupported(f"Batcher: {family} is not batched (capabilities.batching is False); call its "
                              "infill one request at a time")
        for name, value in (("max_batch", max_batch), ("refresh", refresh)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        if not padding >= 1:
            raise ValueError(f"padding must be >= 1 (padded tokens per real token), got {padding!r}")
        self.model, self.max_batch, self.refresh, self.padding = model, max_batch, refresh, padding
        cfg, weight = model.model.cfg, model.model.embed.weight
        self._slots = (
            SlotCache(cfg.num_layers, max_batch, cfg.num_kv_heads, cfg.head_dim, weight.dtype, weight.device,
                      model.max_positions)
            if cache is not False
            else None
        )
        self._cond = threading.Condition()
        self._queue: deque[_Pending] = deque()
        self._rows: list[_Row] = []  # row i lives in cache slot i
        self._closed = False
        self._counts: Counter = Counter()  # forwards, completed, cancelled, failed
        self._sizes: Counter = Counter()  # batch size -> forwards
        self._thread = threading.Thread(target=self._loop, name="engine-batcher", daemon=True)
        self._thread.start()

    # ---- callers' side

    def submit(self, request: InfillRequest) -> Ticket:
        """Queue a request. A canvas that cannot fit the model raises ValueError here."""
        if not isinstance(request, InfillRequest):
            raise ValueError(f"Batcher.submit takes an InfillRequest, got {type(request).__name__}")
        t0 = time.perf_counter()
        # the request's own texts, never the model's memory (another user's)
        own = RepositoryMemory()
        for name, text in request.extra if request.params.memory is not None else ():
            own.update(name, text)
        job = self.model.prepare(request.prefix, request.suffix, request.params, own)
        ticket = Ticket(request, self)
        with self._cond:
            if self._closed:
                ticket.future.set_exception(Cancelled("the batcher is closed"))
                return ticket
            self._queue.append(_Pending(ticket, job, t0))
            self._cond.notify()
        return ticket

    def run(self, requests: list[InfillRequest]) -> list[InfillResult]:
        """Submit all, wait for all (raises engine.Cancelled if one was cancelled or missed its deadline)."""
        tickets = [self.submit(r) for r in requests]
        return [t.future.result() for t in tickets]

    def stats(self) -> dict:
        with self._cond:
            return {
                "queue": len(self._queue),
                "active": len(self._rows),
                "max_batch": self.max_batch,
                "forwards": self._counts["forwards"],
                "batch_sizes": dict(sorted(self._sizes.items())),
                "completed": self._counts["completed"],
                "cancelled": self._counts["cancelled"],
                "failed": self._counts["failed"],
            }

    def close(self) -> None:
        """Stop the thread after its current step; requests not answered get engine.Cancelled."""
        with self._cond:
            self._closed = True
            self._cond.notify()
        if threading.current_thread() is not self._thread:
            self._thread.join()

    def __enter__(self) -> Batcher:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _wake(self) -> None:
        with self._cond:
            self._cond.notify()

    # ---- the model's thread

    def _loop(self) -> None:
        with torch.inference_mode():
            while True:
                with self._cond:
                    while not (self._closed or self._queue or self._rows):
                        self._cond.wait()
                    if self._closed:
                        break
                    joining, dropped = self._admit()
                for pending, why in dropped:
                    self._resolve(pending.ticket, error=Cancelled(why))
                try:
                    for pending in joining:
                        self._join(pending)
                    if self._rows:
                        self._step()
                except Exception as e:  # noqa: BLE001 - a bug: fail the batch's requests rather than hang them
                    for row in list(self._rows):
                        self._leave(row, error=e)
        for row in list(self._rows):
            self._leave(row, error=Cancelled("the batcher is closed"))
        with self._cond:
            left, self._queue = list(self._queue), deque()
        for pending in left:
            self._resolve(pending.ticket, error=Cancelled("the batcher is closed"))

    def _admit(self) -> tuple[list[_Pending], list[tuple[_Pending, str]]]:
        # under the lock: (the oldest queued requests, into free rows; queued requests that left, and why)
        kept: deque[_Pending] = deque()
        dropped = []
        for pending in self._queue:
            why = pending.ticket._why_leave()
            if why is not None:
                dropped.append((pending, why))
            else:
                kept.append(pending)
        self._queue = kept
        joining = []
        while self._queue and len(self._rows) + len(joining) < self.max_batch:
            pending = self._queue.popleft()
            if pending.ticket.future.set_running_or_notify_cancel():
                joining.append(pending)
            else:  # the caller cancelled the future itself
                self._counts["cancelled"] += 1
        return joining, dropped

    def _join(self, pending: _Pending) -> None:
        if pending.job.grows:
            self._alone(pending)
            return
        try:
            row = _Row(pending, self.model, len(self._rows))
            if self._slots is not None:
                self._slots.reserve(row.length)
        except Exception as e:  # noqa: BLE001 - the caller gets it through the future
            self._resolve(pending.ticket, error=e)
            return
        self._rows.append(row)

    def _alone(self, pending: _Pending) -> None:
        # a growing canvas changes the sequence's length every step: served by itself (engine/expand.py)
        ticket, start = pending.ticket, time.perf_counter()
        try:
            result = self.model.run(pending.job, lambda: self._closed or ticket._why_leave() is not None,
                                    pending.t0)
        except Cancelled:
            self._resolve(ticket, error=Cancelled(ticket._why_leave() or "the batcher is closed"))
            return
        except Exception as e:  # noqa: BLE001 - the caller gets it through the future
            self._resolve(ticket, error=e)
            return
        with self._cond:
            self._counts["forwards"] += result.stats.forward_passes
            self._sizes[1] += result.stats.forward_passes
        self._resolve(ticket, result=replace(result, stats=replace(result.stats,
                                                                   queue_ms=(start - pending.t0) * 1000)))

    def _step(self) -> None:
        for row in list(self._rows):
            why = row.ticket._why_leave()
            if why is not None:
                self._leave(row, error=Cancelled(why))
        if not self._rows:
            return
        for row in self._rows:
            row.ids[row.at.start : row.at.end] = row.state.tokens
        # a full forward where the unbatched loop (CanvasLogits) runs one: no cache, or the row's refresh
        refresh = None if self._slots is None else self.refresh
        due = [r for r in self._rows if full_forward_due(r.state.forwards, refresh)]
        rest = [r for r in self._rows if r not in due]
        try:
            logits = {}
            with rows_apart():  # a row's answer must not depend on the rows beside it
                for group in by_length(due, self.padding):
                    logits.update(self._full(group))
                if rest:
                    logits.update(self._windows(rest))
        except Exception as e:  # noqa: BLE001 - every row in the batch gets it through its future
            for row in list(self._rows):
                self._leave(row, error=e)
            return
        for row in list(self._rows):  # leaving rows move others' slots: logits are keyed by row
            try:
                row.state.step(logits[row])
            except Exception as e:  # noqa: BLE001 - this row's prior or sampler failed: only this row
                self._leave(row, error=e)
                continue
            if row.state.done:
                self._leave(row)

    def _counted(self, rows: list[_Row]) -> None:
        now = time.perf_counter()
        for row in rows:
            row.first = now if row.first is None else row.first
            row.rows_seen += len(rows)
        with self._cond:
            self._counts["forwards"] += 1
            self._sizes[len(rows)] += 1

    def _full(self, rows: list[_Row]) -> dict[_Row, Tensor]:
        # every position of each row: [B, T] right-padded, keys masked to each row's own length
        device, width = self.model.device, max(r.length for r in rows)
        ids = torch.full((len(rows), width), self.model.special.pad, dtype=torch.long, device=device)
        real = torch.zeros(len(rows), width, dtype=torch.bool, device=device)
        for b, row in enumerate(rows):
            ids[b, : row.length] = row.ids
            real[b, : row.length] = True
        reads = _gather_rows([r.at.full_rows for r in rows], device)  # [B, R]
        padded = any(r.length != width for r in rows)
        mask = real if padded else None  # rows of one length: exactly the unbatched forward
        self._counted(rows)
        if self._slots is None:
            out = self.model.model(ids, 0, None, rows=reads, mask=mask)
        else:
            positions = torch.arange(width, device=device).expand(len(rows), width).clone()
            positions[~real] = self._slots.scratch
            view = self._slots.fill(torch.tensor([r.slot for r in rows], device=device))
            out = self.model.model(ids, positions, view, rows=reads, mask=mask)
        return {row: out[b, : row.job.canvas].float() for b, row in enumerate(rows)}

    def _windows(self, rows: list[_Row]) -> dict[_Row, Tensor]:
        # each row's canvas window against its slot; the window forward spans slots 0..n-1 (a view of the
        # cache), so rows that had a full forward this step ride along as padding only
        assert self._slots is not None
        device, n = self.model.device, len(self._rows)
        width = max(r.at.end - r.at.window for r in rows)
        keys = max(r.length for r in self._rows)
        ids = torch.full((n, width), self.model.special.pad, dtype=torch.long, device=device)
        positions = torch.full((n, width), self._slots.scratch, dtype=torch.long, device=device)
        real = torch.zeros(n, keys, dtype=torch.bool, device=device)
        for row in self._rows:
            real[row.slot, : row.length] = True
        for row in rows:
            w = row.at.end - row.at.window
            ids[row.slot, :w] = row.ids[row.at.window : row.at.end]
            positions[row.slot, :w] = torch.arange(row.at.window, row.at.end, device=device)
        by_slot = {r.slot: r for r in rows}
        reads = _gather_rows([by_slot[s].at.window_rows if s in by_slot else torch.zeros(1, dtype=torch.long)
                              for s in range(n)], device)
        mask = real if any(r.length != keys for r in self._rows) else None
        self._counted(rows)
        out = self.model.model(ids, positions, self._slots.window(n, keys), rows=reads, mask=mask)
        return {row: out[row.slot, : row.job.canvas].float() for row in rows}

    def _leave(self, row: _Row, error: BaseException | None = None) -> None:
        # the last row takes the leaving row's slot, so rows always fill slots 0..n-1
        last = self._rows.pop()
        if last is not row:
            self._rows[row.slot] = last
            if self._slots is not None:
                self._slots.move(last.slot, row.slot)
            last.slot = row.slot
        if error is not None:
            self._resolve(row.ticket, error=error)
            return
        state, job = row.state, row.job
        ids, conf = middle_of(state.tokens, state.conf, self.model.special)
        n, forwards = job.canvas, state.forwards
        queued = ((row.first or row.t0) - row.t0) * 1000
        stats = InfillStats(forwards, n / max(forwards, 1), n, 0.0, queued, row.rows_seen / max(forwards, 1))
        self._resolve(row.ticket, result=job.result(self.model.tokenizer, ids, conf, stats, row.t0))

    def _resolve(self, ticket: Ticket, result: InfillResult | None = None,
                 error: BaseException | None = None) -> None:
        kind = "completed" if error is None else "cancelled" if isinstance(error, Cancelled) else "failed"
        with self._cond:
            self._counts[kind] += 1
        if ticket.future.done():  # cancelled by its caller while queued
            return
        if error is None:
            ticket.future.set_result(result)
        else:
            ticket.future.set_exception(error)


def by_length(rows: list[_Row], padding: float) -> list[list[_Row]]:
    """Rows for full forwards, in groups whose padded size stays within `padding` times their tokens: a full
    forward costs about its padded tokens (on a CPU nearly linearly), so a short row rides with long ones
    only where little is wasted."""
    groups: list[list[_Row]] = []
    for row in sorted(rows, key=lambda r: r.length, reverse=True):
        group = groups[-1] if groups else []
        tokens = sum(r.length for r in group) + row.length
        if group and group[0].length * (len(group) + 1) <= padding * tokens:  # group[0] is the longest
            group.append(row)
        else:
            groups.append([row])
    return groups


def _gather_rows(rows: list[Tensor], device: torch.device) -> Tensor:
    # per-row output indices of different lengths -> [B, R], short rows padded with their first index
    width = max(r.shape[0] for r in rows)
    out = torch.zeros(len(rows), width, dtype=torch.long)
    for b, r in enumerate(rows):
        out[b, : r.shape[0]] = r
        out[b, r.shape[0] :] = r[0]
    return out.to(device)

