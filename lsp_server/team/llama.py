"""POST /infill, llama.cpp server's infill endpoint (tools/server/README.md), as llama.vim and llama.vscode
call it.

What they send (llama.vim autoload/llama.vim `llama#fim`, llama.vscode src/llama-server.ts
`createRequestPayload`): input_prefix (the lines before the cursor's), prompt (the cursor line up to the
cursor: the start of the middle), input_suffix, input_extra [{text, time, filename}] (a ring of chunks from
other buffers, newest last), n_predict, n_indent, top_k, top_p, stream false, samplers, cache_prompt,
t_max_prompt_ms, t_max_predict_ms, response_fields; and, to warm llama.cpp's cache, the same with n_predict
0. Every other llama.cpp option is accepted and ignored. They read `content` (llama.vim also tokens_cached,
truncated and timings/* through response_fields).

Differences: without `temperature` the server's sampler decides (argmax by default; llama.cpp's default is
0.8); t_max_predict_ms is a hard deadline (past it the answer is empty, stop_type "limit"), llama.cpp keeps
what it generated; input_extra beyond the server's limit drops its oldest chunks (truncated: true)."""

from __future__ import annotations

from typing import Annotated

import msgspec
from msgspec import Meta

from .job import Job, Limits, Outcome, extra_pairs, fim_canvas, given, sampler, single_line, stops


class Chunk(msgspec.Struct):
    text: str
    filename: str = ""


class LlamaInfillBody(msgspec.Struct):
    input_prefix: str = ""
    input_suffix: str = ""
    input_extra: list[Chunk] = []
    prompt: str = ""
    n_predict: int | None = None
    n_indent: Annotated[int, Meta(ge=0)] | None = None
    temperature: float | None = None
    top_k: int | None = None
    top_p: float | None = None
    seed: int | None = None
    stop: str | list[str] | None = None
    stream: bool | None = False
    t_max_predict_ms: float | None = None
    response_fields: list[str] | None = None


def job(body: LlamaInfillBody, limits: Limits) -> tuple[Job, bool]:
    """The Job and whether input_extra was truncated."""
    chunks = [(c.filename, c.text) for c in body.input_extra]
    extra = extra_pairs(chunks, limits, "input_extra", keep_last=True)
    stop = stops(body.stop)
    temperature = None if body.temperature is None else max(body.temperature, 0.0)  # llama.cpp: <= 0 greedy
    top_k = None if body.top_k is None else max(body.top_k, 0)  # llama.cpp: <= 0 the whole vocabulary
    config = sampler(limits, given(temperature=temperature, top_k=top_k, top_p=body.top_p))
    deadline = body.t_max_predict_ms if body.t_max_predict_ms and body.t_max_predict_ms > 0 else None
    seed = 0 if body.seed is None or body.seed < 0 else body.seed % 2**63  # llama.cpp: -1 random
    job = Job(body.input_prefix + body.prompt, body.input_suffix, fim_canvas(body.n_predict, limits), config,
              limits.memory, single_line=single_line(stop), seed=seed, deadline_ms=deadline, extra=extra,
              stop=stop, indent=body.n_indent or 0)
    return job, len(extra) < len(chunks)


def response(outcome: Outcome, truncated: bool, fields: list[str] | None) -> dict:
    answer = outcome.answers[0]
    kind = {"stop": "word" if answer.stop_word else "eos", "length": "limit", "deadline": "limit"}
    prompt_ms = outcome.queue_ms
    predicted_ms = max(outcome.ms - prompt_ms, 0.0)
    body = {
        "index": 0,
        "content": answer.text,
        "model": outcome.model,
        "stop": True,
        "stop_type": kind[answer.finish],
        "stopping_word": answer.stop_word or "",
        "has_new_line": "\n" in answer.text,
        "tokens_predicted": outcome.completion_tokens,
        "tokens_evaluated": outcome.prompt_tokens,
        "tokens_cached": 0,
        "truncated": truncated,
        "timings": {
            "prompt_n": outcome.prompt_tokens,
            "prompt_ms": prompt_ms,
            "prompt_per_token_ms": prompt_ms / max(outcome.prompt_tokens, 1),
            "prompt_per_second": 1000 * outcome.prompt_tokens / max(prompt_ms, 1e-3),
            "predicted_n": outcome.completion_tokens,
            "predicted_ms": predicted_ms,
            "predicted_per_token_ms": predicted_ms / max(outcome.completion_tokens, 1),
            "predicted_per_second": 1000 * outcome.completion_tokens / max(predicted_ms, 1e-3),
        },
    }
    return body if fields is None else select(body, fields)


def select(body: dict, fields: list[str]) -> dict:
    """llama.cpp's response_fields: only these paths, each under its own path as the key
    ("timings/prompt_n" -> {"timings/prompt_n": ...}); paths that name nothing are left out."""
    out = {}
    for path in fields:
        value, found = body, bool(path)
        for key in path.split("/"):
            if not (found and isinstance(value, dict) and key in value):
                found = False
                break
            value = value[key]
        if found:
            out[path] = value
    return out


def stream_events(outcome: Outcome, truncated: bool) -> list[dict]:
    """llama.cpp's stream: the text in one event with stop false, then the final event (no [DONE])."""
    final = response(outcome, truncated, None)
    return [{"index": 0, "content": final["content"], "stop": False}, {**final, "content": ""}]
