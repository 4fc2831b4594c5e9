"""What every API shape becomes (a Job: engine requests plus how their text is cut), the limits a request is
checked against, what the response builders get back (Outcome), and the one error a client can cause
(RequestRefused)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from engine.batch import InfillRequest
from engine.params import InfillParams, MemoryConfig, SamplerConfig

# Tokens an editor's FIM request may ask for (max_tokens, n_predict) are an upper bound written for
# autoregressive decoders, which stop early (Continue, llama.vim and llama.vscode send 128 to 256). A masked
# diffusion canvas costs forwards in proportion to its size whether or not the answer fills it, so those
# requests are clamped to FIM_CANVAS; the native API takes any canvas up to the model's room.
FIM_CANVAS = 64
DEFAULT_CANVAS = 32  # a FIM request that names no length (engine.params.DEFAULT_CANVAS)
MAX_STOPS = 64  # stop strings per request (Continue sends its template's stop words, a dozen or so)
MAX_N = 8  # OpenAI's `n`: completions per request, each its own engine request


class RequestRefused(Exception):
    """A request answered with an HTTP error; `message` names the field, `param` is the field itself."""

    def __init__(self, status: int, message: str, param: str | None = None):
        super().__init__(message)
        self.status, self.message, self.param = status, message, param


@dataclass(frozen=True)
class Limits:
    """What requests are checked against: the loaded model's room and the server's defaults."""

    max_canvas: int  # the largest canvas the native API accepts (the model's positions less some context)
    max_extra_bytes: int  # UTF-8 bytes of per-request memory texts (extra / input_extra), all items together
    sampler: SamplerConfig  # the server's sampler; requests override single fields
    memory: MemoryConfig | None  # how a request's extra texts are mixed in (None: they are ignored)
    grows: bool = False  # the model grows a canvas up to max_canvas (engine.Capabilities.grows)

    @property
    def fim_canvas(self) -> int:
        return min(FIM_CANVAS, self.max_canvas)


@dataclass(frozen=True)
class JobAnswer:
    text: str
    finish: str  # "stop": the model ended it or a stop string cut it; "length": it filled the canvas;
    # "deadline": the request's deadline passed first (the text is empty)
    stop_word: str | None = None


@dataclass(frozen=True)
class Outcome:
    """What the response builders get: one JobAnswer per engine request and the usage around them."""

    answers: list[JobAnswer]
    model: str  # the served model's name (responses name it; a request's `model` field is ignored)
    prompt_tokens: int
    completion_tokens: int
    ms: float  # from arrival to the last answer
    queue_ms: float  # the longest wait before a first forward


@dataclass(frozen=True)
class Job:
    """One request of any API shape, ready for the engine. canvas 0: answer empty without the engine
    (llama.cpp clients send n_predict 0 to warm a cache this server does not keep)."""

    prefix: str
    suffix: str
    canvas: int
    sampler: SamplerConfig
    memory: MemoryConfig | None
    max_canvas: int | None = None
    single_line: bool = False
    seed: int = 0
    deadline_ms: float | None = None  # from arrival; past it the engine request leaves (engine.Cancelled)
    extra: tuple[tuple[str, str], ...] = ()  # (name, text): this request's own repository memory
    stop: tuple[str, ...] = ()  # the text ends before the first of these
    indent: int = 0  # llama.cpp's n_indent: the text ends before a later line indented less than this
    n: int = 1  # engine requests, seeds seed, seed + 1, ...

    def requests(self, arrived: float) -> list[InfillRequest]:
        """The engine requests; `arrived` is the time.monotonic() the request came in."""
        deadline = None if self.deadline_ms is None else arrived + self.deadline_ms / 1000
        return [
            InfillRequest(self.prefix, self.suffix, InfillParams(
                canvas=self.canvas, max_canvas=self.max_canvas, single_line=self.single_line,
                sampler=self.sampler, seed=self.seed + i, memory=self.memory),
                deadline=deadline, extra=self.extra)
            for i in range(self.n)
        ]

    def answer(self, text: str, tokens: int) -> JobAnswer:
        """An engine result's text (of `tokens` tokens) as the client sees it: cut at the first stop string,
        or before a later line indented less than `indent`."""
        text, word = cut(text, self.stop)
        if self.indent:
            text = dedent_cut(text, self.indent)
        finish = "stop" if word is not None or tokens < self.canvas else "length"
        return JobAnswer(text, finish, word)


def sampler(limits: Limits, given: dict) -> SamplerConfig:
    """The server's sampler with the fields the request gives; SamplerConfig's own check names the field."""
    try:
        return dataclasses.replace(limits.sampler, **given)
    except ValueError as e:
        field = next((k for k in given if f".{k} " in str(e)), None)
        raise RequestRefused(422, str(e).replace("SamplerConfig.", ""), field) from None


def given(**fields) -> dict:
    """The fields a FIM request sets: there, null means not given."""
    return {k: v for k, v in fields.items() if v is not None}


def fim_canvas(tokens: int | None, limits: Limits) -> int:
    """max_tokens / n_predict as a canvas: None or negative (llama.cpp's -1, no limit) is the default, 0 stays
    0, the rest is clamped to the FIM canvas."""
    if tokens is None or tokens < 0:
        return min(DEFAULT_CANVAS, limits.fim_canvas)
    return min(tokens, limits.fim_canvas)


def stops(stop: str | list[str] | None, field: str = "stop") -> tuple[str, ...]:
    """A stop string or list as a tuple without empty strings (an empty stop would cut every text)."""
    items = [stop] if isinstance(stop, str) else list(stop or ())
    if len(items) > MAX_STOPS:
        raise RequestRefused(422, f"{field}: at most {MAX_STOPS} stop strings, got {len(items)}", field)
    return tuple(s for s in items if s)


def single_line(stop: tuple[str, ...]) -> bool:
    """A client that stops at a newline wants one line: the engine then stops denoising at it."""
    return "\n" in stop


def cut(text: str, stop: tuple[str, ...]) -> tuple[str, str | None]:
    """text up to the earliest stop string, and that string (None: no stop string in it)."""
    first, word = len(text), None
    for s in stop:
        i = text.find(s)
        if 0 <= i < first:
            first, word = i, s
    return text[:first], word


def dedent_cut(text: str, indent: int) -> str:
    """text before its first non-blank line after the first that is indented less than `indent` columns
    (llama.cpp's n_indent: the completion left the block it started in)."""
    lines = text.split("\n")
    for i, line in enumerate(lines[1:], 1):
        if line.strip() and len(line) - len(line.lstrip(" \t")) < indent:
            return "\n".join(lines[:i])
    return text


def extra_pairs(items: list[tuple[str, str]], limits: Limits, field: str, keep_last: bool) -> tuple:
    """(name, text) pairs within limits.max_extra_bytes. keep_last: drop the oldest items that do not fit
    (llama.cpp clients send a ring of chunks, newest last); else refuse the request (413)."""
    total, kept = 0, []
    for name, text in reversed(items) if keep_last else items:
        size = len(text.encode("utf-8", "surrogatepass")) + len(name.encode("utf-8", "surrogatepass"))
        if total + size > limits.max_extra_bytes:
            if keep_last:
                break
            raise RequestRefused(413, f"{field}: more than {limits.max_extra_bytes} bytes of text in all",
                                 field)
        total += size
        kept.append((name, text))
    return tuple(reversed(kept)) if keep_last else tuple(kept)
