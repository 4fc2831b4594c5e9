"""The engine thread: the only thread that touches the model and the parsed documents.

Jobs run one at a time in submission order, so a completion sees exactly the edits submitted before it and
never a half-applied one. A completion's cancel flag is polled between denoising steps (engine.Cancelled).
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import Future, ThreadPoolExecutor

import infill

from . import filler
from .cache import Suggestion
from .options import ModelOptions, Options

log = logging.getLogger(__name__)
MAX_OTHERS = 8  # other open documents of the same language offered as context, most recently edited first
CANCELLED = "cancelled"


class Worker:
    def __init__(self):
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="unmask-engine")
        self.model = None
        self._docs: dict[str, infill.Document] = {}  # engine thread only; most recently edited last

    def open(self, uri: str, text: str, language: str) -> None:
        self._submit_logged(self._open, uri, text, language)

    def edit(self, uri: str, start: int, end: int, text: str) -> None:
        self._submit_logged(self._edit, uri, start, end, text)

    def close(self, uri: str) -> None:
        self._submit_logged(self._docs.pop, uri, None)

    def load(self, opts: ModelOptions) -> Future:
        """Future of the loaded model's description (see filler.describe)."""
        return self._pool.submit(self._load, opts)

    def complete(
        self, uri: str, offset: int, options: Options, invoked: bool, cancel: threading.Event
    ) -> Future:
        """Future of a Suggestion, None (nothing to suggest here) or CANCELLED (no answer this time)."""
        return self._pool.submit(self._complete, uri, offset, options, invoked, cancel)

    def shutdown(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _submit_logged(self, fn, *args) -> None:
        self._pool.submit(fn, *args).add_done_callback(_log_failure)

    def _open(self, uri: str, text: str, language: str) -> None:
        self._docs.pop(uri, None)
        self._docs[uri] = infill.Document(text, language)

    def _edit(self, uri: str, start: int, end: int, text: str) -> None:
        doc = self._docs.pop(uri)
        doc.apply_edit(start, end, text)
        self._docs[uri] = doc

    def _load(self, opts: ModelOptions) -> dict:
        self.model = None  # free the old weights before loading the new ones
        self.model = filler.load(opts)
        filler.make_filler(self.model, None)("def f(", "):\n", 4, 4, True)  # warm-up: first forwards are slow
        return filler.describe(self.model)

    def _complete(self, uri: str, offset: int, options: Options, invoked: bool, cancel: threading.Event):
        from engine import Cancelled

        doc = self._docs.get(uri)
        if cancel.is_set() or doc is None or self.model is None:  # closed, or no model: nothing to cache
            return CANCELLED
        others = tuple(d for u, d in reversed(self._docs.items()) if u != uri and d.language == doc.language)
        try:
            c = filler.complete(
                self.model,
                doc,
                offset,
                options,
                invoked=invoked,
                cancel=cancel.is_set,
                others=others[:MAX_OTHERS],
            )
        except Cancelled:
            return CANCELLED
        if c is None:
            return None
        start, end = min(c.start, offset), max(c.end, offset)
        return Suggestion(doc.text[start:offset], doc.text[offset:end], c.text, c.kind, c.confidence)


def _log_failure(future: Future) -> None:
    if not future.cancelled() and future.exception() is not None:
        log.error("engine thread job failed", exc_info=future.exception())
