"""The last step of a completion on the engine thread: infill.complete over a model with these options.

`make_filler` wraps a model (engine.DiffusionLM or remote.remote.RemoteModel) as an infill.Filler;
`context_budget` is the context infill may choose; `complete` feeds the memory, plans, prompts and fills
through infill, and keeps the document's newlines. Loading the model is lsp_server/models.py's.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import re
from collections.abc import Callable
from pathlib import Path

import infill
from engine.params import InfillParams

from ..models import MIN_CONTEXT, memory_config, sampler_for
from ..options import Options

log = logging.getLogger(__name__)
# Default context budget on the CPU, where the first forward of every completion runs over the whole context.
# With the embedded model (512 positions, so 382 tokens otherwise) single-line edit similarity to the deleted
# text did not drop (0.163 either way; `python -m bench.eval_options`, bench/RESULTS.md).
CPU_CONTEXT_TOKENS = 256


def make_filler(model, sampler, cancel: Callable[[], bool] | None = None, memory=None) -> infill.Filler:
    """infill's Filler over a model (engine.api.CompletionModel): sampler a SamplerConfig or None, memory a
    MemoryConfig or None. infill's max_canvas reaches only a model that grows its canvas."""
    grows = model.capabilities.grows

    def fill(prefix: str, suffix: str, canvas: int, max_canvas: int, single_line: bool) -> tuple[str, float]:
        params = InfillParams(canvas=canvas, max_canvas=max_canvas if grows else None,
                              single_line=single_line, sampler=sampler, memory=memory)
        r = model.infill(prefix, suffix, params, cancel)
        return r.text, r.confidence

    return fill


def context_budget(options: Options, room: int, device: str) -> int:
    """Tokens of context infill may choose: the option (or the device's default), within `room`, what the
    model can see beside the largest canvas; infill picks them by syntax, where the engine would cut
    blindly."""
    want = options.completion.context_tokens
    if want is None:
        want = CPU_CONTEXT_TOKENS if device.split(":")[0] == "cpu" else options.infill().context_tokens
    return max(MIN_CONTEXT, min(want, room))


TRUST_FILE = "trust.json"  # beside the checkpoint: the calibration its candidates are judged by


@functools.cache
def _calibration(path: str, mtime: float) -> infill.Calibration | None:
    try:
        return infill.Calibration.load(Path(path))
    except ValueError as e:  # a file of another version: completions are not judged, and the log says why
        log.warning("%s", e)
        return None


def calibration(model) -> infill.Calibration | None:
    """The checkpoint's trust.json (bench/fit_trust.py), None where it ships none."""
    folder = model.info.folder
    path = Path(folder) / TRUST_FILE if folder else None
    if path is None or not path.is_file():
        return None
    return _calibration(str(path), path.stat().st_mtime)


def judge(model, memory, cal: infill.Calibration | None = None) -> infill.Judge:
    """The evidence infill may ask of this model: the memory's proposals (with the memory on), the network's
    scores, the names the remembered project uses, and a calibration (default: the checkpoint's)."""
    cal = calibration(model) if cal is None else cal
    if cal is None:
        return infill.Judge()
    caps = model.capabilities

    def propose(prefix: str, suffix: str, single_line: bool) -> list[tuple[str, int, int, int]]:
        params = InfillParams(single_line=single_line, memory=memory)
        return [(p.text, p.length, p.count, p.total) for p in model.propose(prefix, suffix, params)]

    def score(prefix: str, suffix: str, middles: list[str]) -> list[float]:
        return model.score(prefix, suffix, middles)

    scored = caps.score and cal.uses("score")  # one more batched forward: only where the fit found it useful
    return infill.Judge(propose if memory is not None else None, score if scored else None,
                        model.memory.contains, cal)


def remember(model, options: Options, key: str, text: str, cursor: int):
    """The document in the model's repository memory, cut at the cursor, where the memory is on and the model
    has one; returns the engine.MemoryConfig the request mixes in (None: the network alone)."""
    memory = memory_config(options.memory) if model.capabilities.memory else None
    if memory is not None:
        model.memory.limit(options.memory.max_megabytes * 2**20)
        model.memory.update(key, text, cursor=cursor)
    return memory


def complete(
    model,
    doc: infill.Document,
    offset: int,
    options: Options,
    *,
    invoked: bool,
    cancel: Callable[[], bool] | None = None,
    others: tuple[infill.Document, ...] = (),
    key: str | None = None,
) -> infill.Completion | None:
    """infill.complete with this model and options; newlines follow the document's (CRLF stays CRLF) and the
    replaced range never splits a CRLF. With the memory on, the document (remembered under `key`, default
    a name of its own) is cut at the cursor first, so that it is matched against but never completes itself
    with the text after the cursor."""
    memory = remember(model, options, key or "<document>", doc.text, offset)
    fill = make_filler(model, sampler_for(options.sampler, model), cancel, memory)
    room = model.context_room(options.completion.max_tokens)
    budget = context_budget(options, room, model.info.device)
    infill_options = dataclasses.replace(options.infill(), context_tokens=budget)
    c = infill.complete(
        doc,
        offset,
        fill,
        count_tokens=model.count_tokens,
        invoked=invoked,
        options=infill_options,
        others=others,
        judge=judge(model, memory),
    )
    eol = re.search(r"\r\n|\r|\n", doc.text)
    if c is None or isinstance(c, infill.Withheld) or eol is None or eol.group() == "\n":
        return c
    end = (
        c.end - 1 if c.end > offset and doc.text[c.end - 1] == "\r" else c.end
    )  # infill counts CR as on the line
    return dataclasses.replace(c, end=end, text=re.sub(r"\r\n|\n", eol.group(), c.text))
