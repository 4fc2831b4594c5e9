"""POST /v1/fim/completions, Mistral's FIM endpoint (Codestral; mistralai client-python
FIMCompletionRequest / FIMCompletionResponse): the answer comes back chat-shaped, choices[0].message.content,
or choices[0].delta.content in the stream's chunks (object "chat.completion.chunk").

What clients send: Continue's mistral provider, and its openai provider for FIM (core/llm/llms/OpenAI.ts
`_streamFim`, packages/openai-adapters/src/apis/OpenAI.ts `fimStream`): model, prompt, suffix, max_tokens,
max_completion_tokens, temperature, top_p, frequency_penalty, presence_penalty, stop, stream true; it reads
each chunk's choices[0].delta.content until [DONE]. minuet-ai.nvim's codestral provider
(lua/minuet/backends/codestral.lua): model, prompt, suffix, stream, its `optional` table (stop, max_tokens);
it reads message.content, or delta.content when streaming. Mistral's own client may send null for the
optional fields. min_tokens and the penalties are accepted and ignored."""

from __future__ import annotations

import time
import uuid

import msgspec

from .job import Job, Limits, Outcome, fim_canvas, given, sampler, single_line, stops
from .openai import split, usage


class FimBody(msgspec.Struct):
    prompt: str
    model: str | None = None
    suffix: str | None = None
    max_tokens: int | None = None
    max_completion_tokens: int | None = None
    min_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    stream: bool | None = False
    stop: str | list[str] | None = None
    random_seed: int | None = None


def job(body: FimBody, limits: Limits) -> Job:
    prefix, suffix = split(body.prompt, body.suffix)
    stop = stops(body.stop)
    config = sampler(limits, given(temperature=body.temperature, top_p=body.top_p))
    tokens = body.max_tokens if body.max_tokens is not None else body.max_completion_tokens
    seed = 0 if body.random_seed is None else body.random_seed % 2**63
    return Job(prefix, suffix, fim_canvas(tokens, limits), config, limits.memory,
               single_line=single_line(stop), seed=seed, stop=stop)


def _reason(outcome: Outcome) -> str:
    return "length" if outcome.answers[0].finish == "length" else "stop"


def response(outcome: Outcome) -> dict:
    message = {"role": "assistant", "content": outcome.answers[0].text, "prefix": False, "tool_calls": None}
    return {"id": uuid.uuid4().hex, "object": "chat.completion", "model": outcome.model,
            "created": int(time.time()), "usage": usage(outcome),
            "choices": [{"index": 0, "message": message, "finish_reason": _reason(outcome)}]}


def stream_events(outcome: Outcome) -> list[dict | str]:
    """One chunk with the whole text (and the finish reason and usage), then [DONE]."""
    delta = {"role": "assistant", "content": outcome.answers[0].text}
    chunk = {"id": uuid.uuid4().hex, "object": "chat.completion.chunk", "model": outcome.model,
             "created": int(time.time()), "usage": usage(outcome),
             "choices": [{"index": 0, "delta": delta, "finish_reason": _reason(outcome)}]}
    return [chunk, "[DONE]"]
