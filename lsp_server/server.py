"""The language server: one pygls server object, one handler per method.

Handlers run on the asyncio loop and never wait for the model: completions go through the Scheduler to the
engine thread (completion/worker.py), document changes are applied at once. Capabilities: incremental text
sync, `textDocument/inlineCompletion`, `unmask/status`, and `textDocument/completion` (one item with a
textEdit) (option completion.items: true, the default; false; null: only to clients without inline
completion).
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from dataclasses import dataclass, replace

import msgspec
from lsprotocol import types
from pygls.exceptions import JsonRpcException, JsonRpcInvalidRequest, JsonRpcParseError
from pygls.lsp.server import LanguageServer

from . import __version__
from .actions import actions
from .adaptation.runner import Adaptation
from .completion.cache import PREFIX_CHARS, SUFFIX_CHARS, SuggestionCache
from .completion.progress import LoadProgress
from .completion.scheduler import Scheduler
from .completion.worker import Worker
from .documents import probe, workspace
from .documents.documents import DocumentText, OpenDocument
from .options import Options, merge, parse
from .outcomes import LoadFailed, RemoteRefused, Suggestion, Trouble, Unanswered
from .protocol import convert, framing, strict
from .protocol.protocol import UnmaskProtocol
from .status import ModelState, Status

log = logging.getLogger(__name__)
STATUS = "unmask/status"
TRIGGER_CHARACTERS = [".", "(", "[", "{", ",", ":", "=", " "]


@dataclass(frozen=True, slots=True)
class Snapshot:
    """A request's view of its document, taken before its first await."""

    doc: OpenDocument
    revision: int
    content: DocumentText  # the text the engine completes in, whatever changes after
    offset: int
    at: types.Position  # the offset's position (a clamped request position)
    prefix: str
    suffix: str
    word: str  # identifier characters before the cursor


class UnmaskServer(LanguageServer):
    def __init__(self):
        super().__init__(
            "unmask",
            __version__,
            protocol_cls=UnmaskProtocol,
            converter_factory=strict.converter,  # wrong JSON types are errors, not coerced
            text_document_sync_kind=types.TextDocumentSyncKind.Incremental,
        )
        self.defaults = self.options = Options()  # defaults: the command line's; options: with the client's
        self.client_options: dict = {}
        self.docs: dict[str, OpenDocument] = {}
        self.worker = Worker()
        self.scheduler = Scheduler()
        self.cache = SuggestionCache()
        self.status = Status()
        self._tasks: set[asyncio.Task] = set()
        self.generation = 0  # counts option changes and model loads; cached suggestions name theirs
        self.has_workspace = False  # the client named a workspace; else each opened file's project is read
        self.folders_read: set = set()  # folders of opened files whose projects were handed to the worker
        self.adaptation = Adaptation(self)
        self.roots: list = []  # the workspace folders on disk
        self._loaded = asyncio.Event()  # set while no model load is under way

    @property
    def encoding(self) -> str:
        return self.workspace.position_encoding or types.PositionEncodingKind.Utf16

    def serve(self, defaults: Options, tcp: tuple[str, int] | None = None) -> None:
        """Serve over stdio (or TCP at (host, port)) until the client exits, with the command line's
        options under the client's."""
        self.defaults = self.options = defaults
        if tcp is None:
            self.start_io()
        else:
            self.start_tcp(*tcp)

    def configure(self, raw) -> bool:
        """Apply client options over the defaults, showing a message per invalid value; True if the model
        options changed."""
        if isinstance(raw, dict) and isinstance(raw.get("unmask"), dict):
            raw = raw["unmask"]  # a whole settings tree, as VS Code sends it
        if raw == []:
            raw = None  # Neovim 0.7 encodes an empty Lua table as a JSON array
        messages = []
        if raw is not None and not isinstance(raw, dict):
            messages.append(f"unmask options must be an object, got {type(raw).__name__}; ignored")
        options, invalid = parse(
            merge(self.client_options, raw if isinstance(raw, dict) else {}), self.defaults
        )
        for message in messages + invalid:
            self.window_show_message(types.ShowMessageParams(types.MessageType.Warning, message))
        self.client_options = msgspec.to_builtins(options)  # invalid values already replaced
        # the adaptation belongs to a model: turning it on or off reloads the base (then the cached one)
        changed = options.model != self.options.model or options.adapt != self.options.adapt
        self.options = options
        self.worker.memory_for(remote=options.model.remote is not None)
        self.cache.clear()
        self.generation += 1
        return changed

    def spawn(self, coro) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def model_loaded(self) -> None:
        """Returns once no model load is under way."""
        await self._loaded.wait()

    def extensions(self) -> set[str]:
        return self.options.source_extensions()

    def client_supports_progress(self) -> bool:
        window = self.client_capabilities.window
        return window is not None and bool(window.work_done_progress)

    def adopted(self) -> None:
        """The engine now serves other weights (an adapted checkpoint): cached suggestions are stale."""
        self.cache.clear()
        self.generation += 1

    def adapt(self, ready=None) -> None:
        """Start (or restart) adapting to the workspace folders, when the options ask for it."""
        if self.options.adapt.enabled and self.roots:
            self.adaptation.start(self.roots, ready)
        else:
            self.adaptation.stop("off")

    def reload(self) -> None:
        """Load the model the options name; whatever waits for model_loaded waits for this load."""
        self._loaded.clear()
        self.spawn(self.load_model())

    async def load_model(self) -> None:
        self._loaded.clear()
        try:
            await self._load_model()
        finally:
            self._loaded.set()

    async def _load_model(self) -> None:
        opts, previous = self.options.model, self.status.model
        if opts.remote is not None:
            self.status.model = ModelState(remote=opts.remote, state="loading")
        else:
            self.status.model = ModelState(
                model=opts.path or "embedded", device=opts.device, dtype=opts.dtype, quantize=opts.quantize,
                state="loading",
            )
        self.cache.clear()
        self.generation += 1
        name = opts.path or "the embedded model"
        progress = LoadProgress(self, f"connecting to {opts.remote}" if opts.remote else f"loading {name}")
        loading = asyncio.wrap_future(self.worker.load(opts, progress.from_thread))
        if self.client_supports_progress():
            self.spawn(progress.run(loading))
        outcome = await loading
        if isinstance(outcome, LoadFailed):
            # a Hub id that could not be fetched leaves the previous model loaded, and it keeps serving
            kept, message = previous.serving and outcome.kept_previous, outcome.message
            if self.options.model == opts:
                failed = replace(self.status.model, state="failed")
                self.status.model = replace(previous if kept else failed, error=message)
            still = f"; still using {previous.model}" if kept else ""
            error = types.ShowMessageParams(types.MessageType.Error, f"unmask: {message}{still}")
            self.window_show_message(error)
        elif self.options.model == opts:  # else a newer load is queued behind this one
            self.status.model = ModelState(**outcome.description, state="ready")
            if outcome.trouble is not None:
                self.note_remote(outcome.trouble)

    def note_remote(self, outcome, *, tell: bool = True) -> None:
        """A team server's health from an outcome of the engine thread: unmask/status follows it, and the
        user is told once when an outage begins (not per request) and, in the log, when it ends."""
        if isinstance(outcome, Trouble):
            if self.status.remote_failed(outcome) and tell:
                refused = isinstance(outcome, RemoteRefused)
                kind = types.MessageType.Error if refused else types.MessageType.Warning
                then = "" if refused else "; completions resume when it answers"
                self.window_show_message(types.ShowMessageParams(kind, f"unmask: {outcome.message}{then}"))
        elif not isinstance(outcome, Unanswered) and self.status.model.troubled:
            self.status.remote_answered(self.worker.model.describe())  # facts it may not have had before
            back = f"unmask: team server {self.status.model.remote} answers again"
            self.window_log_message(types.LogMessageParams(types.MessageType.Info, back))

    def snapshot(self, uri: str, position: types.Position) -> Snapshot | None:
        doc = self.docs.get(uri)
        if (
            doc is None
            or not doc.parseable
            or not self.options.enabled(doc.language)
            or not self.status.model.serving
        ):
            return None
        offset, text = doc.offset_at(position, self.encoding), doc.text
        return Snapshot(
            doc,
            doc.revision,
            doc.content,
            offset,
            doc.position_at(offset, self.encoding),
            text[max(0, offset - PREFIX_CHARS) : offset],
            text[offset : offset + SUFFIX_CHARS],
            convert.word_before(text, offset),
        )

    async def suggest(
        self, uri: str, position: types.Position, *, invoked: bool, debounce: bool
    ) -> tuple[Snapshot, Suggestion] | None:
        """The suggestion at position (from the cache or the engine); None if there is none, or no answer
        this time."""
        t0, snap = time.perf_counter(), self.snapshot(uri, position)  # before any await: later edits wait
        if snap is None:
            self.status.record("empty")
            return None
        scope, key = (snap.doc.language, self.generation), (snap.prefix, snap.suffix)
        if (hit := self.cache.get(scope, *key, invoked)) is not None:
            self.status.record("cached", (time.perf_counter() - t0) * 1000)
            return (snap, hit) if isinstance(hit, Suggestion) else None
        delay = self.options.completion.debounce_ms / 1000 if debounce else 0.0

        def ready() -> bool:
            return self.docs.get(uri) is snap.doc and snap.doc.revision == snap.revision

        def submit(flag):
            job = self.worker.complete(snap.content, snap.offset, self.options, invoked, flag)
            return self.status.track(job)

        result = await self.scheduler.run(uri, delay, ready, submit)
        self.note_remote(result)
        if isinstance(result, Unanswered):
            self.status.record("failed" if isinstance(result, Trouble) else "cancelled")
            return None
        if scope[1] == self.generation:  # else options or model changed while it ran
            self.cache.put(scope, *key, result, invoked)
        self.status.record("model", (time.perf_counter() - t0 - delay) * 1000)
        self.status.judged(result)
        return (snap, result) if isinstance(result, Suggestion) else None

    def start_io(self, stdin=None, stdout=None) -> None:
        super().start_io(framing.Resync(stdin or sys.stdin.buffer), stdout)  # finds the frame after a bad one

    def report_server_error(self, error: Exception, source) -> None:
        if source is JsonRpcException:  # the read loop could not parse or dispatch a message
            unreadable = JsonRpcParseError if isinstance(error, ValueError) else JsonRpcInvalidRequest
            self.protocol.answer_unreadable(unreadable(str(error)))
            return
        super().report_server_error(error, source)

    def shutdown(self) -> None:
        self.adaptation.stop()
        self.scheduler.cancel_all()
        self.worker.shutdown()
        super().shutdown()


server = UnmaskServer()


@server.feature(types.INITIALIZE)
def initialize(ls: UnmaskServer, params: types.InitializeParams) -> None:
    ls.configure(params.initialization_options)
    inline = params.capabilities.text_document and params.capabilities.text_document.inline_completion
    if ls.options.completion.items or (ls.options.completion.items is None and not inline):
        # a client asking both ways for the same cursor makes each request supersede its twin: clients
        # showing ghost text hide completion items (the editors/ plugins do), or set items to None
        options = types.CompletionOptions(trigger_characters=TRIGGER_CHARACTERS)
        ls.feature(types.TEXT_DOCUMENT_COMPLETION, options)(completion)


@server.feature(types.INITIALIZED)
def initialized(ls: UnmaskServer, params: types.InitializedParams) -> None:
    ls.reload()
    memory, scan = ls.options.memory, None
    uris = [f.uri for f in ls.workspace.folders.values()] or [ls.workspace.root_uri or ""]
    ls.roots = [f for f in map(workspace.folder_of, uris) if f is not None]
    if memory.enabled and memory.workspace and ls.roots:
        ls.has_workspace = True
        budget = memory.max_megabytes * 2**20
        thread = ls.worker.index_workspace(ls.roots, ls.options.source_extensions(), budget)
        scan = asyncio.ensure_future(asyncio.to_thread(thread.join))
    ls.adapt(scan)  # after the scan: the two would compete for the same cores


@server.feature(types.WORKSPACE_DID_CHANGE_CONFIGURATION)
def did_change_configuration(ls: UnmaskServer, params: types.DidChangeConfigurationParams) -> None:
    if params.settings is not None and ls.configure(params.settings):
        ls.reload()
        ls.adapt()


@server.feature(types.TEXT_DOCUMENT_DID_OPEN)
def did_open(ls: UnmaskServer, params: types.DidOpenTextDocumentParams) -> None:
    doc = OpenDocument(params.text_document)
    if (old := ls.docs.pop(doc.uri, None)) is not None and old.parseable:
        ls.worker.close(doc.uri)
    ls.docs[doc.uri] = doc
    if doc.parseable:
        ls.worker.open(doc.content)
        memory = ls.options.memory
        folder = workspace.folder_of(doc.uri.rsplit("/", 1)[0]) if doc.uri.startswith("file:") else None
        if (memory.enabled and memory.workspace and not ls.has_workspace and folder is not None
                and folder not in ls.folders_read):
            ls.folders_read.add(folder)
            # a client that names no workspace: the project of each opened file is read instead
            ls.worker.index_workspace([folder], ls.options.source_extensions(), memory.max_megabytes * 2**20,
                                      projects=True)


@server.feature(types.TEXT_DOCUMENT_DID_CHANGE)
def did_change(ls: UnmaskServer, params: types.DidChangeTextDocumentParams) -> None:
    uri = params.text_document.uri
    if (doc := ls.docs.get(uri)) is None:
        log.warning("didChange for a document never opened: %s", uri)
        return
    for change in params.content_changes:
        was, before = doc.parseable, doc.content
        start, end, text = doc.apply(change, ls.encoding)
        if was and doc.parseable:
            ls.worker.edit(before, doc.content, start, end, text)
        elif doc.parseable:
            ls.worker.open(doc.content)
        elif was:
            ls.worker.close(uri)
    doc.version = params.text_document.version


@server.feature(types.TEXT_DOCUMENT_DID_CLOSE)
def did_close(ls: UnmaskServer, params: types.DidCloseTextDocumentParams) -> None:
    if (doc := ls.docs.pop(params.text_document.uri, None)) is not None and doc.parseable:
        ls.worker.close(doc.uri)


@server.feature(types.TEXT_DOCUMENT_INLINE_COMPLETION, types.InlineCompletionOptions())
async def inline_completion(
    ls: UnmaskServer, params: types.InlineCompletionParams
) -> types.InlineCompletionList:
    automatic = params.context.trigger_kind == types.InlineCompletionTriggerKind.Automatic
    found = await ls.suggest(
        params.text_document.uri, params.position, invoked=not automatic, debounce=automatic
    )
    if found is None:
        return types.InlineCompletionList(items=[])
    snap, suggestion = found
    explain = ls.options.completion.explain
    return types.InlineCompletionList(items=[convert.inline_item(suggestion, snap.at, ls.encoding, explain)])


async def completion(ls: UnmaskServer, params: types.CompletionParams) -> types.CompletionList:
    kind = params.context.trigger_kind if params.context else types.CompletionTriggerKind.Invoked
    invoked = kind == types.CompletionTriggerKind.Invoked
    found = await ls.suggest(params.text_document.uri, params.position, invoked=invoked, debounce=not invoked)
    if found is None:  # incomplete: typing re-asks, and the cache answers typing along at once
        return types.CompletionList(is_incomplete=True, items=[])
    snap, suggestion = found
    return types.CompletionList(
        is_incomplete=True, items=[convert.completion_item(suggestion, snap.at, ls.encoding, snap.word)]
    )


@server.feature(STATUS)
def status(ls: UnmaskServer, params) -> dict:
    return ls.status.report(ls.options, ls.worker.memory_report, ls.adaptation.report())


server.feature(probe.DOCUMENT)(probe.document)  # the server's copies of a document, hashed
actions.register(server)  # code actions: rewrite selection, fill holes, complete body

