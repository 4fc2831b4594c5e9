"""POST /v1/infill, unmask's own shape: DiffusionLM.infill's arguments as JSON, its InfillResult back.

Unknown fields are refused (a typo would otherwise be silently ignored), unlike the FIM shapes, whose
clients send fields of their own servers."""

from __future__ import annotations

import dataclasses
from typing import Annotated

import msgspec
from msgspec import UNSET, Meta, UnsetType

from engine.api import InfillResult

from .job import Job, Limits, RequestRefused, extra_pairs, sampler

Positive = Annotated[int, Meta(ge=1)]


class ExtraFile(msgspec.Struct, forbid_unknown_fields=True):
    filename: str
    text: str


class SamplerFields(msgspec.Struct, forbid_unknown_fields=True):
    """engine.SamplerConfig's fields; those not given keep the server's values."""

    confidence: str | UnsetType = UNSET
    temperature: float | UnsetType = UNSET
    top_p: float | UnsetType = UNSET
    top_k: int | UnsetType = UNSET
    gumbel: bool | UnsetType = UNSET
    threshold: float | None | UnsetType = UNSET
    tokens_per_step: int | UnsetType = UNSET
    block_size: int | None | UnsetType = UNSET
    steps: int | None | UnsetType = UNSET


class NativeInfillBody(msgspec.Struct, forbid_unknown_fields=True):
    prefix: str
    suffix: str = ""
    canvas: Positive = 32
    max_canvas: Positive | None = None
    single_line: bool = False
    sampler: SamplerFields | None = None
    seed: Annotated[int, Meta(ge=0, le=2**63 - 1)] = 0
    deadline_ms: Annotated[float, Meta(gt=0)] | None = None
    extra: list[ExtraFile] = []


def job(body: NativeInfillBody, limits: Limits) -> Job:
    for name in ("canvas", "max_canvas"):
        value = getattr(body, name)
        if value is not None and value > limits.max_canvas:
            raise RequestRefused(422, f"{name}: at most {limits.max_canvas} for this model, got {value}",
                                 name)
    fields = {} if body.sampler is None else msgspec.structs.asdict(body.sampler)
    config = sampler(limits, {k: v for k, v in fields.items() if v is not UNSET})
    extra = extra_pairs([(f.filename, f.text) for f in body.extra], limits, "extra", keep_last=False)
    grows = body.max_canvas if limits.grows else None  # a fixed-canvas model fills `canvas` tokens
    return Job(body.prefix, body.suffix, body.canvas, config, limits.memory, max_canvas=grows,
               single_line=body.single_line, seed=body.seed, deadline_ms=body.deadline_ms, extra=extra)


def response(result: InfillResult) -> dict:
    return {"text": result.text, "confidence": result.confidence,
            "stats": dataclasses.asdict(result.stats)}
