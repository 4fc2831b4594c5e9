"""The code actions' jobs on the engine thread: infill.refactor with this model and these options.

Each job gets the model (None until one loads) and the engine thread's parse of the document, which it reads
and never changes, and returns an infill.refactor.Refactor or Filled (edits against that text), or NoModel,
or Interrupted once its cancel flag is set (polled between denoising steps), or a team server's Unreachable
or RemoteRefused.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable

import infill
from infill import refactor

from .. import models
from ..completion import filler
from ..options import Options
from ..outcomes import Interrupted, NoModel, Trouble

# The longest rewrite, in canvas tokens: beyond this a rewrite costs more than retyping the code. Models that
# see fewer positions get half of theirs (lm.max_positions), the other half being context.
REWRITE_MAX_TOKENS = 512
Outcome = refactor.Refactor | refactor.Filled | Interrupted | NoModel | Trouble


def _guarded(job: Callable[..., refactor.Refactor | refactor.Filled]) -> Callable[..., Outcome]:
    @functools.wraps(job)
    def run(model, doc: infill.Document, *args, cancel: threading.Event, **kwargs) -> Outcome:
        from engine.errors import Cancelled as Stopped

        from ..remote.remote import RemoteError

        if cancel.is_set():
            return Interrupted()
        if model is None:
            return NoModel()
        try:
            return job(model, doc, *args, cancel=cancel, **kwargs)
        except Stopped:
            return Interrupted()
        except RemoteError as e:
            return e.trouble

    return run


def _completer(model, options: Options, cancel: threading.Event, key: str) -> refactor.Complete:
    def complete(doc: infill.Document, offset: int) -> infill.Completion | None:
        return filler.complete(model, doc, offset, options, invoked=True, cancel=cancel.is_set, key=key)

    return complete


@_guarded
def rewrite(model, doc: infill.Document, start: int, end: int, options: Options, *,
            cancel: threading.Event, key: str) -> refactor.Refactor:
    text = doc.text
    core = refactor.selection_core(text, start, end)
    memory = models.memory_config(options.memory) if model.capabilities.memory else None
    if core is not None:  # without the selection: the memory would vote for writing it back as it was
        filler.remember(model, options, key, text[: core[0]] + text[core[1] :], core[0])
    sampler = models.sampler_for(options.sampler, model)
    fill = filler.make_filler(model, sampler, cancel.is_set, memory)
    # the memory knows the selected code from elsewhere too; the network alone may say it another way
    again = filler.make_filler(model, sampler, cancel.is_set, None) if memory is not None else None

    def context_tokens(canvas: int) -> int:
        return filler.context_budget(options, model.context_room(canvas), model.info.device)

    return refactor.rewrite(
        text, doc.language, start, end, fill, count_tokens=model.count_tokens, context_tokens=context_tokens,
        max_tokens=min(REWRITE_MAX_TOKENS, model.max_positions // 2), again=again,
    )


@_guarded
def fill_holes(model, doc: infill.Document, start: int, end: int, options: Options, *,
               cancel: threading.Event, key: str, progress: Callable[[int, int], None] | None = None
               ) -> refactor.Filled:
    complete = _completer(model, options, cancel, key)
    return refactor.fill_holes(doc.text, doc.language, complete, options.actions.hole_marker, progress)


@_guarded
def complete_body(model, doc: infill.Document, start: int, end: int, options: Options, *,
                  cancel: threading.Event, key: str) -> refactor.Refactor:
    complete = _completer(model, options, cancel, key)
    return refactor.complete_body(doc.text, doc.language, start, end, complete)


def has_body(model, doc: infill.Document, start: int, end: int) -> bool:
    """Whether complete_body would find an empty body on the lines of [start, end]."""
    return refactor.body_at(doc, start, end) is not None
