"""POST /v1/completions, OpenAI's legacy completions with `suffix` (the shape DeepSeek's /beta/completions,
Ollama and vLLM also serve for FIM).

What clients send: minuet-ai.nvim's openai_fim_compatible provider (lua/minuet/backends/common.lua
`complete_openai_fim_base`): model, stream (true by default), prompt, suffix, plus its `optional` table
(max_tokens, top_p, stop); it reads choices[1].text, or each streamed chunk's choices[1].text.
Continue's inception provider (packages/openai-adapters/src/apis/Inception.ts `fimStream`): model,
prompt, suffix ("<|endoftext|>" for an empty one), max_tokens, temperature, top_p, frequency_penalty,
presence_penalty, stop (its own plus "\\n\\n"), stream true; it reads each chunk's choices[0].text.
Continue's openai provider with useLegacyCompletionsEndpoint sends a templated prompt and no suffix
(templates.py). Other fields (logprobs, best_of, user, stream_options, penalties) are accepted and ignored;
`logprobs` is always null."""

from __future__ import annotations

import time
import uuid
from typing import Annotated

import msgspec
from msgspec import Meta

from . import templates
from .job import MAX_N, Job, Limits, Outcome, RequestRefused, fim_canvas, given, sampler, single_line, stops

# Continue's Inception adapter sends this for an empty suffix
END_OF_TEXT = "<|endoftext|>"


class CompletionBody(msgspec.Struct):
    model: str | None = None
    prompt: str | list[str] = ""
    suffix: str | None = None
    max_tokens: int | None = None
    temperature: Annotated[float, Meta(ge=0, le=2)] | None = None
    top_p: float | None = None
    n: Annotated[int, Meta(ge=1, le=MAX_N)] | None = None
    stream: bool | None = False
    stop: str | list[str] | None = None
    echo: bool | None = False
    seed: int | None = None


def prompt_of(body: CompletionBody) -> str:
    if isinstance(body.prompt, str):
        return body.prompt
    if len(body.prompt) != 1:
        raise RequestRefused(422, f"prompt: one string per request, got a list of {len(body.prompt)}",
                             "prompt")
    return body.prompt[0]


def split(prompt: str, suffix: str | None) -> tuple[str, str]:
    """(prefix, suffix): the fields, or a FIM template's parts when the prompt comes without a suffix."""
    suffix = "" if suffix in (None, END_OF_TEXT) else suffix
    if not suffix and (parts := templates.split(prompt)) is not None:
        return parts
    return prompt, suffix


def job(body: CompletionBody, limits: Limits) -> Job:
    prefix, suffix = split(prompt_of(body), body.suffix)
    stop = stops(body.stop)
    config = sampler(limits, given(temperature=body.temperature, top_p=body.top_p))
    seed = 0 if body.seed is None else body.seed % 2**63
    return Job(prefix, suffix, fim_canvas(body.max_tokens, limits), config, limits.memory,
               single_line=single_line(stop), seed=seed, stop=stop, n=body.n or 1)


def choices(outcome: Outcome, echo: str) -> list[dict]:
    return [{"text": echo + a.text, "index": i, "logprobs": None,
             "finish_reason": "length" if a.finish == "length" else "stop"}
            for i, a in enumerate(outcome.answers)]


def usage(outcome: Outcome) -> dict:
    return {"prompt_tokens": outcome.prompt_tokens, "completion_tokens": outcome.completion_tokens,
            "total_tokens": outcome.prompt_tokens + outcome.completion_tokens}


def response(outcome: Outcome, body: CompletionBody) -> dict:
    echo = prompt_of(body) if body.echo else ""
    return {"id": f"cmpl-{uuid.uuid4().hex}", "object": "text_completion", "created": int(time.time()),
            "model": outcome.model, "choices": choices(outcome, echo), "usage": usage(outcome)}


def stream_events(outcome: Outcome, body: CompletionBody) -> list[dict | str]:
    """One chunk with every choice's whole text, then [DONE]: the answer exists only once denoised."""
    return [response(outcome, body), "[DONE]"]
