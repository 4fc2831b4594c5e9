"""The Ray Serve deployment. Each replica loads the model on a thread of its own (status says "loading"
until it is in memory), answers every route through one engine.batch.Batcher, and cancels a request's
engine work when its client disconnects (Serve cancels the handler's task).

No `from __future__ import annotations` here: FastAPI reads the routes' annotations (`request: Request`)
through Serve's wrappers, which do not resolve strings."""

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import msgspec
from fastapi import FastAPI
from ray import serve
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from engine.errors import Cancelled
from engine.params import MemoryConfig, SamplerConfig

from .. import models
from ..models import ModelOptions
from . import http, llama, mistral, native, openai
from .job import Job, JobAnswer, Limits, Outcome, RequestRefused
from .latency import Latency


def served_model(opts: ModelOptions) -> ModelOptions:
    """quantize "auto" is "none" here: batched rows keep their activations apart (engine.quantize.rows_apart),
    so on a CPU int8 would be weights only, which is no faster than fp32 there."""
    return msgspec.structs.replace(opts, quantize="none") if opts.quantize == "auto" else opts

# The native API's largest canvas: infill's largest span (a block, 128 tokens) with room to spare; the
# model's positions less models.MIN_CONTEXT of context bound it further.
MAX_CANVAS = 256


@dataclass(frozen=True)
class Config:
    model: ModelOptions  # path: a folder (the launcher resolved a Hub id), or None for the embedded model
    model_name: str  # as status and responses name it
    sampler: SamplerConfig
    memory: MemoryConfig | None  # how a request's extra texts are mixed in; None: ignored
    max_batch: int
    replicas: int
    token: str | None
    max_body: int  # bytes
    max_extra: int  # bytes of extra / input_extra text per request


app = FastAPI(title="unmask team server", docs_url=None, redoc_url=None, openapi_url=None)


@serve.ingress(app)
class TeamServer:
    def __init__(self, config: Config):
        self.config = config
        self.state, self.error = "loading", None
        self.model = self.batcher = self.limits = None
        self.info: dict = {"model": config.model_name}
        self.latency = Latency()
        try:
            self.replica = serve.get_replica_context().replica_id.unique_id
        except Exception:  # outside Serve (tests of the class itself)
            self.replica = "local"
        threading.Thread(target=self._load, name="unmask-load", daemon=True).start()

    def _load(self) -> None:
        from engine.batch import Batcher

        try:
            model = models.load(served_model(self.config.model))
            batcher = Batcher(model, max_batch=self.config.max_batch)
        except Exception as e:  # a checkpoint or device the user got wrong: status and every route say so
            self.state, self.error = "failed", f"{type(e).__name__}: {e}" if not str(e) else str(e)
            return
        room = max(1, min(MAX_CANVAS, model.max_positions - models.MIN_CONTEXT))
        caps = model.capabilities
        memory = self.config.memory if caps.memory else None
        self.limits = Limits(room, self.config.max_extra, self.config.sampler, memory, grows=caps.grows)
        self.model, self.batcher = model, batcher
        self.info = {**models.describe(model), "model": self.config.model_name,
                     "max_positions": model.max_positions, "max_canvas": room}
        self.state = "ready"

    def __del__(self):
        if self.batcher is not None:
            self.batcher.close()

    # ---- for the launcher (through a DeploymentHandle)

    async def readiness(self) -> dict:
        return {"state": self.state, "error": self.error, "replica": self.replica}

    # ---- routes

    @app.get("/health")
    async def health(self) -> Response:
        """llama.cpp's health check (llama.vscode calls it): open without the token, 503 until ready."""
        if self.state == "ready":
            return JSONResponse({"status": "ok"})
        return http.error(RequestRefused(503, self.error or "loading model"))

    @app.get("/v1/status")
    async def status(self, request: Request) -> Response:
        try:
            http.check_token(request, self.config.token)
        except RequestRefused as e:
            return http.error(e)
        stats = self.batcher.stats() if self.batcher is not None else {}
        return JSONResponse({
            "state": self.state,
            **({"error": self.error} if self.error else {}),
            "model": self.info,
            "replicas": self.config.replicas,
            "replica": self.replica,
            "max_batch": self.config.max_batch,
            "queue": stats.get("queue", 0),
            "active": stats.get("active", 0),
            "batch_sizes": stats.get("batch_sizes", {}),
            "forwards": stats.get("forwards", 0),
            "completed": stats.get("completed", 0),
            "cancelled": stats.get("cancelled", 0),
            "failed": stats.get("failed", 0),
            "latency_ms": self.latency.summary(),
        })

    @app.get("/v1/models")
    async def models(self, request: Request) -> Response:
        async def answer(_body, _arrived):
            return JSONResponse({"object": "list", "data": [
                {"id": self.config.model_name, "object": "model", "created": 0, "owned_by": "unmask"}]})

        return await self._handle(request, None, answer)

    @app.post("/v1/infill")
    async def infill(self, request: Request) -> Response:
        async def answer(body: native.NativeInfillBody, arrived: float) -> Response:
            outcome, results = await self._run(native.job(body, self.limits), arrived)
            if outcome.answers[0].finish == "deadline":
                raise RequestRefused(504, "deadline_ms passed before the completion was done", "deadline_ms")
            return JSONResponse(native.response(results[0]))

        return await self._handle(request, native.NativeInfillBody, answer)

    @app.post("/infill")
    async def llama_infill(self, request: Request) -> Response:
        async def answer(body: llama.LlamaInfillBody, arrived: float) -> Response:
            job, truncated = llama.job(body, self.limits)
            outcome, _ = await self._run(job, arrived)
            if body.stream:
                return http.sse(llama.stream_events(outcome, truncated))
            return JSONResponse(llama.response(outcome, truncated, body.response_fields))

        return await self._handle(request, llama.LlamaInfillBody, answer)

    @app.post("/v1/completions")
    async def completions(self, request: Request) -> Response:
        async def answer(body: openai.CompletionBody, arrived: float) -> Response:
            outcome, _ = await self._run(openai.job(body, self.limits), arrived)
            if body.stream:
                return http.sse(openai.stream_events(outcome, body))
            return JSONResponse(openai.response(outcome, body))

        return await self._handle(request, openai.CompletionBody, answer)

    @app.post("/v1/fim/completions")
    async def fim_completions(self, request: Request) -> Response:
        async def answer(body: mistral.FimBody, arrived: float) -> Response:
            outcome, _ = await self._run(mistral.job(body, self.limits), arrived)
            return http.sse(mistral.stream_events(outcome)) if body.stream else JSONResponse(
                mistral.response(outcome))

        return await self._handle(request, mistral.FimBody, answer)

    # ---- shared

    async def _handle(self, request: Request, kind: type | None,
                      answer: Callable[[object, float], Awaitable[Response]]) -> Response:
        """Token, readiness, body, JSON shape, then the route's answer; every failure is an error body."""
        arrived = time.monotonic()
        try:
            http.check_token(request, self.config.token)
            if self.state != "ready":
                raise RequestRefused(503, f"the model failed to load: {self.error}" if self.error else
                              "the model is still loading; GET /v1/status says when it is ready")
            body = None
            if kind is not None:
                body = http.decode(await http.read_body(request, self.config.max_body), kind)
            return await answer(body, arrived)
        except RequestRefused as e:
            return http.error(e)
        except Exception as e:  # a bug, not the client: answer 500 and keep serving
            return http.error(RequestRefused(500, f"internal error: {type(e).__name__}: {e}"))

    async def _run(self, job: Job, arrived: float) -> tuple[Outcome, list]:
        """Submit the job's engine requests and wait for them; the client going away (the task cancelled)
        cancels them. Returns the Outcome and the engine results (None for an answer that has none)."""
        if job.canvas == 0:
            answers = [JobAnswer("", "stop")] * job.n
            return Outcome(answers, self.config.model_name, 0, 0, 0.0, 0.0), [None] * job.n
        tickets, gone = [], threading.Event()

        def submit() -> None:  # tokenizing and the memory's index cost milliseconds: off the event loop
            for request in job.requests(arrived):
                ticket = self.batcher.submit(request)
                tickets.append(ticket)
                if gone.is_set():
                    ticket.cancel()

        try:
            await asyncio.to_thread(submit)
            results = await asyncio.gather(*(asyncio.wrap_future(t.future) for t in tickets),
                                            return_exceptions=True)
        except asyncio.CancelledError:
            gone.set()
            for ticket in tickets:
                ticket.cancel()
            raise
        except ValueError as e:  # a request the engine refuses (InfillRequest's or prepare's checks)
            for ticket in tickets:
                ticket.cancel()
            raise RequestRefused(422, str(e)) from None
        for r in results:
            if isinstance(r, Cancelled) and job.deadline_ms is None:
                raise RequestRefused(503, "the server is shutting down")
            if isinstance(r, BaseException) and not isinstance(r, Cancelled):
                raise r
        done = [r for r in results if not isinstance(r, BaseException)]
        answers, prompt, completion = await asyncio.to_thread(self._answers, job, results)
        queue_ms = max((r.stats.queue_ms for r in done), default=0.0)
        ms = (time.monotonic() - arrived) * 1000
        if done:
            self.latency.add(ms)
        outcome = Outcome(answers, self.config.model_name, prompt, completion, ms, queue_ms)
        return outcome, [None if isinstance(r, BaseException) else r for r in results]

    def _answers(self, job: Job, results: list) -> tuple[list[JobAnswer], int, int]:
        """The answers, prompt tokens and completion tokens (a worker thread: the tokenizer takes a few ms
        on a long prefix)."""
        count = self.model.count_tokens
        answers = [JobAnswer("", "deadline") if isinstance(r, BaseException)
                   else job.answer(r.text, count(r.text)) for r in results]
        prompt = count(job.prefix) + count(job.suffix)
        return answers, prompt, sum(count(a.text) for a in answers if a.text)
