"""The server's side of adaptation: one process at a time (job.py), its state for `unmask/status`, work-done
progress for the client, and the swap to the adapted weights (Worker.adopt: between two engine jobs).

States: "off" (option off, or no workspace folder), "unsupported" (the model cannot be fine-tuned here: a
team server, DiffusionGemma, or too large for a CPU), "waiting" (for the model and the workspace scan),
"running", "ready" (the adapted weights serve), "failed" (the base model serves; `error` says why).
"""

from __future__ import annotations

import asyncio
import collections
import ctypes
import json
import logging
import os
import signal
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import msgspec

from ..completion.progress import LoadProgress
from ..outcomes import LoadFailed
from . import cache, job

log = logging.getLogger(__name__)
MAX_WEIGHT_BYTES = 400 * 2**20  # about 100M fp32 weights: more is hours per pass on a CPU


@dataclass
class AdaptationState:
    state: str = "off"
    error: str | None = None
    progress: float | None = None  # of the running process, 0..1
    tokens: int | None = None  # the project's tokens it trained on
    minutes: float | None = None
    loss_before: float | None = None  # on the project's own rows, before and after
    loss_after: float | None = None
    reused: bool = False  # found in the cache from an earlier start
    changed: float | None = None  # share of the project's bytes changed since it was adapted (last check)
    folder: str | None = None  # the adapted checkpoint serving; None while the base model serves
    pid: int | None = None  # of the running process


def unsupported(info, folder: str) -> str | None:
    """Why this model cannot be adapted here, or None."""
    if not folder:
        return "the model runs on a team server"
    if info.family == "diffusiongemma":
        return "DiffusionGemma cannot be fine-tuned here"
    weights = sum(f.stat().st_size for f in Path(folder).glob("*.safetensors"))
    if weights > MAX_WEIGHT_BYTES:
        return f"{folder}: {weights / 2**20:,.0f} MB of weights is too large to fine-tune on a CPU"
    return None


# resolved before any fork: the child of a threaded parent must not import or take Python's locks
_PRCTL = ctypes.CDLL(None, use_errno=True).prctl if sys.platform.startswith("linux") else None


def _lower_priority() -> None:  # in the child, before exec
    os.nice(19)
    if _PRCTL is not None:  # the child dies with the server, even a killed one
        _PRCTL(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class Adaptation:
    """Owned by the server, used on its event loop only."""

    def __init__(self, server):
        self.server = server
        self.status = AdaptationState()
        self._process: asyncio.subprocess.Process | None = None
        self._task: asyncio.Task | None = None

    def report(self) -> dict:
        return asdict(self.status)

    def start(self, roots: list[Path], ready: asyncio.Future | None = None) -> None:
        """Adapt to the workspace folders once `ready` (the scan) is done and the model is loaded."""
        self.stop()
        self.status = AdaptationState(state="waiting")
        self._task = asyncio.get_running_loop().create_task(self._run(roots, ready))

    def stop(self, state: str | None = None) -> None:
        """End the process and forget the work (the model in use stays)."""
        if self._task is not None:
            self._task.cancel()
            self._task = None
        if self._process is not None and self._process.returncode is None:
            self._process.kill()
        self._process = None
        if state is not None:
            self.status = AdaptationState(state=state)

    async def _run(self, roots: list[Path], ready) -> None:
        try:
            if ready is not None:
                await ready
            await self._adapt(roots)
        except asyncio.CancelledError:
            raise
        except Exception as e:  # never the server's end: the base model keeps serving
            log.exception("adaptation failed")
            self._fail(f"adaptation failed: {e}")

    async def _adapt(self, roots: list[Path]) -> None:
        server = self.server
        await server.model_loaded()
        worker, opts = server.worker, server.options
        base = worker.base
        reason = unsupported(worker.model.info, base or "") if worker.model is not None else "no model"
        if reason is not None:
            self.status = AdaptationState(state="unsupported", error=reason)
            return
        extensions, budget = server.extensions(), opts.memory.max_megabytes * 2**20
        folder, identity = cache.folder_for(roots), cache.base_identity(Path(base))
        request = job.Request([str(r) for r in roots], sorted(extensions), budget, base, str(folder),
                              opts.adapt.minutes)
        serving = False  # an adapted checkpoint serves
        while True:  # the project is checked again every adapt.checkMinutes, as long as the server runs
            texts = await asyncio.to_thread(job.project_texts, roots, extensions, budget)
            if not texts:
                if not serving:
                    self.status = AdaptationState(state="off", error="no source files of a served language")
                return
            found = await asyncio.to_thread(cache.cached, folder, identity, texts)
            del texts
            if found is not None and not serving:
                self._from_card(found.card, reused=True, changed=round(found.changed, 4))
                await self._adopt(folder, base)
                serving = self.status.state == "ready"
            elif found is not None:
                self.status.changed = round(found.changed, 4)
            if found is None or not found.fresh(opts.adapt.refresh):
                await self._train(request, base)  # what served so far keeps serving meanwhile
                serving = serving or self.status.state == "ready"
            if self.status.state == "failed":  # killed or broken: not retried until the next start
                return
            await asyncio.sleep(opts.adapt.check_minutes * 60)

    async def _train(self, request: job.Request, base: str) -> None:
        env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONDONTWRITEBYTECODE": "1"}
        self._process = process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "lsp_server.adaptation.job", stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env,
            preexec_fn=_lower_priority,
        )
        self.status.state, self.status.pid, self.status.progress = "running", process.pid, 0.0
        process.stdin.write(msgspec.json.encode(request))
        process.stdin.close()
        errors: collections.deque[str] = collections.deque(maxlen=20)
        reading = asyncio.get_running_loop().create_task(_lines(process.stderr, errors.append))
        progress = LoadProgress(self.server, "adapting the model to the workspace", self._describe)
        finished = asyncio.get_running_loop().create_future()
        if self.server.client_supports_progress():
            self.server.spawn(progress.run(finished))
        outcome: dict = {}
        try:
            async for line in process.stdout:
                message = _decode(line)
                if "progress" in message:
                    self.status.progress, self.status.loss_after = message["progress"], message["loss"]
                    progress.update(int(message["progress"] * 1000), 1000)
                elif "report" in message or "error" in message:
                    outcome = message
            code = await process.wait()
            await reading
        finally:
            if not finished.done():
                finished.set_result(None)
        self._process = None
        if "report" in outcome and code == 0:
            self._from_card({"report": outcome["report"]}, reused=False, changed=None)
            await self._adopt(Path(outcome["folder"]), base)
        elif "error" in outcome:
            self._fail(outcome["error"])
        else:
            how = f"signal {-code}" if code < 0 else f"status {code}"
            last = f": {errors[-1]}" if errors else ""
            self._fail(f"the adaptation process ended with {how}{last}")

    async def _adopt(self, folder: Path, base: str) -> None:
        outcome = await asyncio.wrap_future(self.server.worker.adopt(folder, base))
        if isinstance(outcome, LoadFailed):
            self._fail(outcome.message)
            return
        self.server.adopted()
        self.status.state, self.status.folder, self.status.progress, self.status.pid = "ready", str(folder), \
            None, None

    def _from_card(self, card: dict, reused: bool, changed: float | None) -> None:
        r = card.get("report", {})
        self.status = AdaptationState(
            state=self.status.state, tokens=r.get("tokens"), minutes=r.get("minutes"),
            loss_before=r.get("loss_before"), loss_after=r.get("loss_after"), reused=reused, changed=changed,
        )

    def _fail(self, message: str) -> None:
        log.warning("unmask: %s", message)
        self.status = AdaptationState(state="failed", error=message, folder=self.status.folder)
        self._process = None

    def _describe(self, done: int, total: int) -> str:
        loss = self.status.loss_after
        return f"{done * 100 // max(total, 1)}%" + (f", loss {loss:.3f}" if loss is not None else "")


def _decode(line: bytes) -> dict:
    try:
        message = json.loads(line)
    except ValueError:
        return {}
    return message if isinstance(message, dict) else {}


async def _lines(stream: asyncio.StreamReader, keep) -> None:
    async for line in stream:
        keep(line.decode("utf-8", "replace").rstrip())
