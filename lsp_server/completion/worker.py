"""The engine thread: the only thread that touches the model and the parsed documents.

Jobs run one at a time in submission order. Every job that reads a document carries the state of its text it
was made for (documents.DocumentText, owned by the event loop); the parses kept here are derived from those
states (documents/parsed.py), so a failed job can cost a re-parse but never leave the engine with other text.
A completion's cancel flag is polled between denoising steps (engine.Cancelled), or while a team server works
(remote/remote.py).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import msgspec

import infill

from .. import models
from ..documents import workspace
from ..documents.documents import DocumentText
from ..documents.parsed import ParsedDocuments
from ..models import ModelOptions
from ..options import Options
from ..outcomes import Interrupted, Loaded, LoadFailed, NoModel, NoSuggestion, Suggestion
from ..remote.remote_memory import RemoteMemory
from . import filler

log = logging.getLogger(__name__)
MAX_OTHERS = 8  # other open documents of the same language offered as context, most recently edited first


class Worker:
    def __init__(self):
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="unmask-engine")
        self.model = None
        self._docs = ParsedDocuments()  # engine thread only
        # engine.RepositoryMemory, or for a team server the texts to send (RemoteMemory); engine thread only
        # (created there: the engine's imports torch)
        self._memory = None
        self._remote = False  # which of the two documents and workspace files go to
        self._indexed: set[Path] = set()  # folders whose files were read (scan threads)
        self._indexed_lock = threading.Lock()
        self.memory_report: dict = {"sources": 0, "bytes": 0, "max_bytes": 0, "update_ms": None}
        self.base: str | None = None  # the folder of the model loaded from the options (adapted or not)
        self._opts: ModelOptions | None = None  # those options

    def open(self, content: DocumentText) -> None:
        self._submit_logged(self._open, content)

    def edit(self, before: DocumentText, after: DocumentText, start: int, end: int, text: str) -> None:
        """The change from before to after replaced code points [start, end) with text."""
        self._submit_logged(self._edit, before, after, start, end, text)

    def close(self, uri: str) -> None:
        self._submit_logged(self._close, uri)

    def text(self, uri: str) -> Future:
        """Future of the text the engine thread would complete in uri after every job submitted so far (None
        if not kept)."""
        return self._pool.submit(self._docs.text, uri)

    def memory_for(self, remote: bool) -> None:
        """From now on keep the texts for a local model (False) or a team server (True): set before the
        documents come, with the options, so that nothing is remembered in the wrong kind of memory."""
        self._submit_logged(self._memory_for, remote)

    def load(self, opts: ModelOptions, progress=None) -> Future:
        """Future of Loaded or LoadFailed; progress(done, total) in bytes while a Hugging Face id downloads,
        from download threads."""
        return self._pool.submit(self._load, opts, progress)

    def adopt(self, folder: Path, base: str) -> Future:
        """Future of Loaded or LoadFailed: the checkpoint in folder (adapted from the base model `base`) loads
        on a thread of its own with the base's options, then replaces the model between two engine jobs, so
        every completion runs on one whole model; refused if another base model was loaded meanwhile."""
        done: Future = Future()
        opts = self._opts

        def load() -> None:
            from engine import CheckpointError

            try:
                model = models.load(msgspec.structs.replace(opts, path=str(folder)))
                filler.make_filler(model, None)("def f(", "):\n", 4, 4, True)  # warm-up, not on the engine's
            except (CheckpointError, OSError) as e:
                done.set_result(LoadFailed(str(e), kept_previous=True))
                return
            self._pool.submit(self._adopt, model, base, done).add_done_callback(_log_failure)

        if opts is None or self.base != base:
            done.set_result(LoadFailed("the model changed before the adapted one loaded", kept_previous=True))
        else:
            threading.Thread(target=load, name="unmask-adopt", daemon=True).start()
        return done

    def complete(
        self, content: DocumentText, offset: int, options: Options, invoked: bool, cancel: threading.Event
    ) -> Future:
        """Future of a Suggestion, NoSuggestion, Interrupted, NoModel, or with a team server Unreachable or
        RemoteRefused, for offset in this state of the text."""
        return self._pool.submit(self._complete, content, offset, options, invoked, cancel)

    def run(self, job: Callable, content: DocumentText, *args, **kwargs) -> Future:
        """Future of job(model, parse, *args, **kwargs) on the engine thread, parse being this state of the
        text's (which the job must not change) and model None until one loads (the code actions' jobs)."""
        return self._pool.submit(lambda: job(self.model, self._docs.get(content), *args, **kwargs))

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
        if self._memory is None and self._remote:
            self._memory = RemoteMemory()
        elif self._memory is None:
            from engine import RepositoryMemory

            self._memory = RepositoryMemory()
        return self._memory

    def _memory_for(self, remote: bool) -> None:
        if remote == self._remote:
            return
        # a switch at run time keeps the open documents; workspace files read before are not read again
        self._remote, self._memory = remote, None
        for content in self._docs.contents():
            self._remember(content.uri, content.text)

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

    def _open(self, content: DocumentText) -> None:
        try:
            self._docs.open(content)
        finally:  # the memory learns the text even where the parse failed
            self._remember(content.uri, content.text)

    def _edit(self, before: DocumentText, after: DocumentText, start: int, end: int, text: str) -> None:
        try:
            self._docs.edit(before, after, start, end, text)
        finally:
            self._remember(after.uri, after.text)

    def _close(self, uri: str) -> None:
        # the memory keeps the last text: a closed file is still part of the project
        self._docs.close(uri)

    def _load(self, opts: ModelOptions, progress=None) -> Loaded | LoadFailed:
        if opts.remote is not None:
            return self._load_remote(opts)
        from torch.cuda import OutOfMemoryError

        from engine import CheckpointError, DeviceUnavailable

        try:
            opts = models.fetch(opts, progress)
        except CheckpointError as e:  # a Hub id that cannot be fetched leaves the old model in place
            return LoadFailed(str(e), kept_previous=self.model is not None)
        self._drop_model()  # free the old weights before loading the new ones
        try:
            self.model = models.load(opts)
        except (CheckpointError, DeviceUnavailable) as e:  # the folder, its size, or the device named
            return LoadFailed(str(e), kept_previous=False)
        except OutOfMemoryError:  # engine.fit let it through, but the device ran out while loading
            return LoadFailed(f"{opts.path or 'the embedded model'}: out of memory on {opts.device}", False)
        self._memory_for(False)
        self.model.memory = self._memory_here()  # what documents and workspace taught survives a reload
        self.base, self._opts = self.model.info.folder or None, opts
        filler.make_filler(self.model, None)("def f(", "):\n", 4, 4, True)  # warm-up: first forwards are slow
        return Loaded(models.describe(self.model))

    def _adopt(self, model, base: str, done: Future) -> None:
        if self.base != base or self.model is None:
            done.set_result(LoadFailed("the model changed before the adapted one loaded", kept_previous=True))
            return
        model.memory = self._memory_here()
        self.model = model
        done.set_result(Loaded(models.describe(model)))

    def _drop_model(self) -> None:
        from ..remote.remote import RemoteModel

        if isinstance(self.model, RemoteModel):
            self.model.close()
        self.model = self.base = self._opts = None

    def _load_remote(self, opts: ModelOptions) -> Loaded:
        """A team server is loaded whether or not it answers now: a server that is down is asked again."""
        from ..remote.remote import RemoteError, RemoteModel

        self._drop_model()
        self._memory_for(True)
        self.model = RemoteModel(opts.remote, opts.token, self._memory_here())
        try:
            self.model.facts()
        except RemoteError as e:
            return Loaded(self.model.describe(), e.trouble)
        return Loaded(self.model.describe())

    def _complete(
        self, content: DocumentText, offset: int, options: Options, invoked: bool, cancel: threading.Event
    ):
        from engine.errors import Cancelled as Stopped

        from ..remote.remote import RemoteError

        if cancel.is_set():
            return Interrupted()
        if self.model is None:
            return NoModel()
        doc = self._docs.get(content)
        try:
            c = filler.complete(
                self.model,
                doc,
                offset,
                options,
                invoked=invoked,
                cancel=cancel.is_set,
                others=self._docs.others(content, MAX_OTHERS),
                key=content.uri,
            )
        except Stopped:
            return Interrupted()
        except RemoteError as e:
            return e.trouble
        if c is None:
            return NoSuggestion()
        if isinstance(c, infill.Withheld):
            return NoSuggestion(withheld=c.probability)
        start, end = min(c.start, offset), max(c.end, offset)
        return Suggestion(doc.text[start:offset], doc.text[offset:end], c.text, c.kind, c.confidence,
                          c.probability, c.source)


def _log_failure(future: Future) -> None:
    if not future.cancelled() and future.exception() is not None:
        log.error("engine thread job failed", exc_info=future.exception())
