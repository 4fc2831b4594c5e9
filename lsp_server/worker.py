"""The engine thread: the only thread that touches the model and the parsed documents.

Jobs run one at a time in submission order, so a completion sees exactly the edits submitted before it and
never a half-applied one. A completion's cancel flag is polled between denoising steps (engine.Cancelled).
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import infill

from . import filler, workspace
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
        self._memory = None  # engine.RepositoryMemory, engine thread only (created there: it imports torch)
        self._indexed: set[Path] = set()  # folders whose files were read (scan threads)
        self._indexed_lock = threading.Lock()
        self.memory_report: dict = {"sources": 0, "bytes": 0, "max_bytes": 0, "update_ms": None}

    def open(self, uri: str, text: str, language: str) -> None:
        self._submit_logged(self._open, uri, text, language)

    def edit(self, uri: str, start: int, end: int, text: str) -> None:
        self._submit_logged(self._edit, uri, start, end, text)

    def close(self, uri: str) -> None:
        self._submit_logged(self._close, uri)

    def load(self, opts: ModelOptions, progress=None) -> Future:
        """Future of the loaded model's description (see filler.describe); progress(done, total) in bytes
        while a Hugging Face id downloads, from download threads."""
        return self._pool.submit(self._load, opts, progress)

    def complete(
        self, uri: str, offset: int, options: Options, invoked: bool, cancel: threading.Event
    ) -> Future:
        """Future of a Suggestion, None (nothing to suggest here) or CANCELLED (no answer this time)."""
        return self._pool.submit(self._complete, uri, offset, options, invoked, cancel)

    def shutdown(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    def index_workspace(self, folders: list[Path], extensions: set[str], budget: int,
                        projects: bool = False) -> threading.Thread:
        """Read the folders' source files on a thread of their own and remember them on the engine thread,
        a batch at a time, so completions are never queued behind the whole workspace. With `projects`, each
        folder stands for the project it is in (its git work tree); a project is read once."""
        def scan() -> None:
            roots = [workspace.project_of(f) if projects else f for f in folders]
            with self._indexed_lock:
                roots = [r for r in roots if not any(r == d or d in r.parents for d in self._indexed)]
                self._indexed.update(roots)
            if not roots:
                return
            found = list(workspace.source_files(roots, extensions, budget))
            found.reverse()  # the most recently modified last: the memory evicts the least recent first
            for i in range(0, len(found), 64):
                batch = [(path.resolve().as_uri(), text) for path, text in found[i : i + 64]]
                self._submit_logged(self._remember_files, batch)

        thread = threading.Thread(target=scan, name="unmask-workspace", daemon=True)
        thread.start()
        return thread

    def _submit_logged(self, fn, *args) -> None:
        self._pool.submit(fn, *args).add_done_callback(_log_failure)

    def _memory_here(self):
        if self._memory is None:
            from engine import RepositoryMemory

            self._memory = RepositoryMemory()
        return self._memory

    def _remember(self, key: str, text: str | None) -> None:
        self._memory_here()
        t0 = time.perf_counter()
        if text is None:
            self._memory.remove(key)
        else:
            self._memory.update(key, text)
        ms = round((time.perf_counter() - t0) * 1000, 3)
        self.memory_report = {**self._memory.report(), "update_ms": ms}

    def _remember_files(self, batch: list[tuple[str, str]]) -> None:
        for key, text in batch:
            if key not in self._docs:  # an open document's text is newer than the file's
                self._remember(key, text)

    def _open(self, uri: str, text: str, language: str) -> None:
        self._docs.pop(uri, None)
        self._docs[uri] = infill.Document(text, language)
        self._remember(uri, text)

    def _edit(self, uri: str, start: int, end: int, text: str) -> None:
        doc = self._docs.pop(uri)
        doc.apply_edit(start, end, text)
        self._docs[uri] = doc
        self._remember(uri, doc.text)

    def _close(self, uri: str) -> None:
        # the memory keeps the last text: a closed file is still part of the project
        self._docs.pop(uri, None)

    def _load(self, opts: ModelOptions, progress=None) -> dict:
        opts = filler.fetch(opts, progress)  # a Hub id that cannot be fetched leaves the old model in place
        self.model = None  # free the old weights before loading the new ones
        self.model = filler.load(opts)
        self.model.memory = self._memory_here()  # what documents and workspace taught survives a reload
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
                key=uri,
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
