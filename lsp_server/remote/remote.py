"""A team server as the model (engine.api.CompletionModel) where lsp_server uses one (`unmask serve --remote
URL`, option model.remote): tree-sitter planning, context and post-processing stay here; only the infill goes
out.

Wire (JSON): `POST {url}/v1/infill` {prefix, suffix, canvas, max_canvas, single_line, sampler: SamplerConfig's
fields, seed, deadline_ms, extra: [{filename, text}]} -> {text, confidence, stats}; `GET {url}/v1/status`
-> {state: "ready" | "loading", model: {name (or model), max_positions, max_canvas, device, family, dtype,
quantize}} (the facts the planning needs, asked for again after each failure). With a token, every request
carries `Authorization: Bearer`.

No answer (refused, timed out, a 5xx, a server still loading) raises RemoteError(Unreachable), a 401, 403 or
other 4xx RemoteError(RemoteRefused); after either, requests fail at once for a backoff (0.5 s, doubling to
15 s) and the next one asks the server again. Engine thread only, like the model it replaces.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from typing import NoReturn

import msgspec

from engine.api import (
    Cancel,
    Capabilities,
    InfillResult,
    InfillStats,
    ModelInfo,
    Proposal,
    refuse_unsupported,
)
from engine.errors import Cancelled, Unsupported
from engine.params import InfillParams

from .. import __version__
from ..outcomes import RemoteRefused, Trouble, Unreachable
from .http_json import Aborted, Connection, ConnectionFailed
from .remote_memory import RemoteMemory

CONNECT_S = 3.0
STATUS_S = 5.0
ANSWER_S = 30.0  # also sent as deadline_ms: the server may give up when nobody waits any more
BACKOFF_S = (0.5, 15.0)  # first and longest wait before a server that failed is asked again
# extra: the document and other open documents of its language (remote_memory.py) go with every request;
# 256 KiB is a few milliseconds on a LAN, and holds a large file with several others
EXTRA_BYTES = 256 * 2**10
# count_tokens without the server's tokenizer: ceil(UTF-8 bytes / 3). The embedded tokenizer averages 2.95
# bytes per token on this repository's Python; larger vocabularies pack more, so there the context is a
# little shorter than it could be. A prompt that still overflows is cut at its start by the server.
BYTES_PER_TOKEN = 3
FALLBACK_POSITIONS = 2048  # a status without model.max_positions
RESERVED = 2  # positions for a BOS and an EOS around the context (DiffusionLM.context_room counts its own)
# what a team server does for this client: the memory's texts go along and max_canvas goes through (the team
# server applies its own model's capabilities); no context-cache settings, no scoring, one request per call
CAPABILITIES = Capabilities(cache=False, memory=True, grows=True, batching=False, score=False, sampler=True)


class RemoteError(Exception):
    def __init__(self, trouble: Trouble):
        super().__init__(trouble.message)
        self.trouble = trouble


class ModelFacts(msgspec.Struct, frozen=True):
    name: str | None = None  # a Hub id or a folder: the catalogue's sampler recommendation is looked up by it
    model: str | None = None  # the same, as models.describe names it
    max_positions: int | None = None
    max_canvas: int | None = None  # the most canvas tokens the server takes; a larger canvas is cut to it
    device: str | None = None  # "cpu" sets the CPU's smaller default context (filler.context_budget)
    family: str | None = None
    dtype: str | None = None
    quantize: str | None = None


class StatusAnswer(msgspec.Struct, frozen=True):
    state: str
    model: ModelFacts = ModelFacts()


class RemoteInfillRequest(msgspec.Struct, frozen=True):
    prefix: str
    suffix: str
    canvas: int
    max_canvas: int | None
    single_line: bool
    sampler: dict
    seed: int
    deadline_ms: int | None
    extra: list[dict[str, str]]


class RemoteStats(msgspec.Struct, frozen=True):
    """engine.InfillStats as the team server sends it; a field it leaves out reads as zero."""

    forward_passes: int = 0
    tokens_per_forward: float = 0.0
    canvas: int = 0
    ms: float = 0.0
    queue_ms: float = 0.0
    batch: float = 1.0

    def result(self) -> InfillStats:
        return InfillStats(**msgspec.structs.asdict(self))


class RemoteInfillAnswer(msgspec.Struct, frozen=True):
    text: str
    confidence: float
    stats: RemoteStats = RemoteStats()


class RemoteModel:
    """engine.api.CompletionModel over a team server's HTTP API."""

    capabilities = CAPABILITIES

    def __init__(self, url: str, token: str | None = None, memory: RemoteMemory | None = None):
        self.url, self.has_token = url, token is not None
        self.memory = RemoteMemory() if memory is None else memory
        headers = {"Accept": "application/json", "User-Agent": f"unmask/{__version__}"}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        self._http = Connection(url, headers, CONNECT_S)
        self._facts: ModelFacts | None = None
        self._trouble: Trouble | None = None
        self._retry_at, self._backoff = 0.0, BACKOFF_S[0]

    # ---- the model contract (engine/api.py); the facts are asked for when not known (RemoteError)

    @property
    def info(self) -> ModelInfo:
        f = self.facts()
        return ModelInfo(f.name or f.model or self.url, f.family or "unknown", f.device or "cpu",
                         f.dtype or "unknown", f.quantize or "none", self.max_positions)

    @property
    def max_positions(self) -> int:
        return self.facts().max_positions or FALLBACK_POSITIONS

    def context_room(self, canvas: int) -> int:
        return self.max_positions - canvas - RESERVED

    def count_tokens(self, text: str) -> int:
        return -(-len(text.encode("utf-8", "replace")) // BYTES_PER_TOKEN)

    def infill(self, prefix: str, suffix: str, params: InfillParams = InfillParams(),
               cancel: Cancel | None = None) -> InfillResult:
        """The infill on the team server. params.sampler None: the team server's own sampler; params.memory
        set: the memory's texts go along (the team server weighs them its own way); cancel() is polled while
        the server works and raises engine.errors.Cancelled, closing the connection. The team server cuts a
        canvas past its model's room to fit."""
        refuse_unsupported("a team server", CAPABILITIES, params)
        most = self.facts().max_canvas or 2**31
        canvas, max_canvas = min(params.canvas, most), params.max_canvas and min(params.max_canvas, most)
        sampler = params.sampler
        request = RemoteInfillRequest(
            prefix=prefix, suffix=suffix, canvas=canvas, max_canvas=max_canvas,
            single_line=params.single_line, seed=params.seed, deadline_ms=int(ANSWER_S * 1000),
            sampler=dataclasses.asdict(sampler) if sampler is not None else {},  # {}: the team server's own
            extra=self.memory.extra(EXTRA_BYTES) if params.memory is not None else [],
        )
        body = self._ask("POST", "/v1/infill", msgspec.json.encode(request), ANSWER_S, cancel)
        answer = self._decode(body, RemoteInfillAnswer, "an infill answer")
        return InfillResult(answer.text, answer.confidence, answer.stats.result())

    def propose(self, prefix: str, suffix: str, params: InfillParams = InfillParams(),
                limit: int = 4) -> list[Proposal]:
        return []  # the team server's API has no proposals yet

    def score(self, prefix: str, suffix: str, candidates: Sequence[str],
              params: InfillParams = InfillParams()) -> list[float]:
        raise Unsupported("a team server does not score candidates (capabilities.score is False)")

    # ----

    def facts(self) -> ModelFacts:
        if self._facts is None:
            status = self._decode(self._ask("GET", "/v1/status", None, STATUS_S), StatusAnswer, "a status")
            if status.state != "ready":
                what = "still loading its model" if status.state == "loading" else f"{status.state!r}"
                self._fail(Unreachable(f"team server {self.url} is {what}"))
            self._facts = status.model
        return self._facts

    def describe(self) -> dict:
        """The status fields (server.ModelState's) of the team server's model, None where not known yet."""
        f = self._facts or ModelFacts()
        return {"model": f.name or f.model, "family": f.family, "device": f.device, "dtype": f.dtype,
                "quantize": f.quantize, "threads": None, "remote": self.url}

    def close(self) -> None:
        self._http.close()

    def _ask(self, method: str, path: str, body: bytes | None, timeout_s: float, cancel=None) -> bytes:
        if self._trouble is not None and time.monotonic() < self._retry_at:
            raise RemoteError(self._trouble)
        try:
            answer = self._http.request(method, path, body, timeout_s=timeout_s, cancel=cancel)
        except Aborted:
            raise Cancelled() from None
        except ConnectionFailed as e:
            self._fail(Unreachable(f"team server {self.url}: {e}"))
        if answer.status == 200:
            self._trouble = None
            return answer.body
        said = _detail(answer.body)
        if answer.status in (401, 403):
            self._fail(RemoteRefused(self._token_message(answer.status)))
        if 400 <= answer.status < 500:
            self._fail(RemoteRefused(f"team server {self.url} refused the request ({answer.status}{said})"))
        self._fail(Unreachable(f"team server {self.url} answered {answer.status}{said}"))

    def _decode(self, body: bytes, kind: type, what: str):
        try:
            return msgspec.json.decode(body, type=kind)
        except msgspec.DecodeError as e:  # ValidationError too: a server of another version
            self._fail(Unreachable(f"team server {self.url} did not send {what} ({e})"))

    def _fail(self, trouble: Trouble) -> NoReturn:
        self._backoff = BACKOFF_S[0] if self._trouble is None else min(2 * self._backoff, BACKOFF_S[1])
        self._trouble, self._retry_at = trouble, time.monotonic() + self._backoff
        self._facts = None  # the server may come back with another model
        raise RemoteError(trouble)

    def _token_message(self, status: int) -> str:
        if not self.has_token:
            return (f"team server {self.url} wants a token ({status}): set the option model.token, or "
                    "start with `unmask serve --token T` or UNMASK_TEAM_TOKEN")
        return (f"team server {self.url} refused the token ({status}): check the option model.token "
                "(--token, UNMASK_TEAM_TOKEN)")


def _detail(body: bytes) -> str:
    """': message' from an error body ({"detail": ...}, {"error": ...} or {"error": {"message": ...}}), one
    line; '' if there is none."""
    try:
        data = msgspec.json.decode(body)
    except msgspec.DecodeError:
        data = None
    said = data.get("detail", data.get("error")) if isinstance(data, dict) else None
    if isinstance(said, dict):  # OpenAI's shape: {"error": {"message": ..., "type": ..., "code": ...}}
        said = said.get("message", said)
    if isinstance(said, list):  # FastAPI's validation errors: [{"loc": [...], "msg": "..."}, ...]
        said = "; ".join(str(e.get("msg", e)) if isinstance(e, dict) else str(e) for e in said)
    if said is None:
        return ""
    return ": " + " ".join(str(said).split())[:200]
