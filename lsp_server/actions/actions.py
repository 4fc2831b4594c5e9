"""Code actions: fill-in-the-middle refactors, offered by `textDocument/codeAction` where they apply and
computed in `codeAction/resolve` on the engine thread (refactors.py), with work-done progress.

- *Rewrite selection* (`refactor.rewrite.unmask.rewriteSelection`): a selection with code in it.
- *Fill holes* (`...fillHoles`): the document holds the hole marker (option actions.holeMarker).
- *Complete this body* (`...completeBody`): an empty body on the selection's lines.

An action's data names the document's uri and version, the range and the kind. A resolve for a version that is
gone, or one the document leaves while the model works, returns the action without an edit and says why
(window/showMessage): never an edit made for other text. `$/cancelRequest` cancels the resolve's task, and its
CancelledError sets the engine's cancel flag, as for completions (completion.scheduler.CancelToken). Clients
that declare no resolve support get a command (`unmask.runAction`) instead, which applies the same edit
through `workspace/applyEdit`.
"""

from __future__ import annotations

import asyncio
import functools
from typing import Annotated, Literal

import attrs
import msgspec
from lsprotocol import types
from pygls.exceptions import JsonRpcInvalidParams
from pygls.lsp.server import LanguageServer

from ..completion.progress import LoadProgress
from ..completion.scheduler import CancelToken
from ..outcomes import Interrupted, NoModel, Trouble
from . import refactors

BASE = f"{types.CodeActionKind.RefactorRewrite.value}.unmask"
REWRITE, FILL, BODY = f"{BASE}.rewriteSelection", f"{BASE}.fillHoles", f"{BASE}.completeBody"
TITLES = {
    REWRITE: "Rewrite selection (unmask)", FILL: "Fill holes (unmask)", BODY: "Complete this body (unmask)"
}
JOBS = {REWRITE: refactors.rewrite, FILL: refactors.fill_holes, BODY: refactors.complete_body}
COMMAND = "unmask.runAction"
STALE = "the document changed since the action was offered; ask for it again"


class _Position(msgspec.Struct):
    line: Annotated[int, msgspec.Meta(ge=0)]
    character: Annotated[int, msgspec.Meta(ge=0)]


class _Range(msgspec.Struct):
    start: _Position
    end: _Position


class ActionData(msgspec.Struct):
    uri: str
    version: int
    range: _Range
    kind: Literal[REWRITE, FILL, BODY]  # type: ignore[valid-type]

    def lsp_range(self) -> types.Range:
        s, e = self.range.start, self.range.end
        return types.Range(types.Position(s.line, s.character), types.Position(e.line, e.character))


# `ls` is server.UnmaskServer (its docs, worker, options, status): annotated as its base, because server.py
# imports this module and pygls resolves a command handler's annotations at call time
def register(server: LanguageServer) -> None:
    options = types.CodeActionOptions(code_action_kinds=[REWRITE, FILL, BODY], resolve_provider=True)
    server.feature(types.TEXT_DOCUMENT_CODE_ACTION, options)(code_action)
    server.feature(types.CODE_ACTION_RESOLVE)(resolve)
    server.command(COMMAND)(run_action)


def wanted(kind: str, only: list[str] | None) -> bool:
    """Whether `only` (a code action request's filter, hierarchical by dots) lets kind through."""
    return not only or any(kind == o or kind.startswith(f"{o}.") for o in only)


def _offsets(ls: LanguageServer, doc, r: types.Range) -> tuple[int, int]:
    start, end = (doc.offset_at(p, ls.encoding) for p in (r.start, r.end))
    return min(start, end), max(start, end)


async def code_action(ls: LanguageServer, params: types.CodeActionParams) -> list[types.CodeAction]:
    uri, only = params.text_document.uri, params.context.only
    doc = ls.docs.get(uri)
    if doc is None or not doc.parseable or not ls.options.enabled(doc.language):
        return []
    if not ls.status.model.serving:
        return []
    start, end = _offsets(ls, doc, params.range)
    version, content = doc.version, doc.content
    offered = []
    if wanted(REWRITE, only) and start < end and content.text[start:end].strip():
        offered.append(REWRITE)
    if wanted(FILL, only) and ls.options.actions.hole_marker in content.text:
        offered.append(FILL)
    if wanted(BODY, only):
        job = ls.worker.run(refactors.has_body, content, start, end)
        if await asyncio.wrap_future(job):
            offered.append(BODY)
    return [_action(ls, kind, ActionData(uri, version, _data_range(params.range), kind)) for kind in offered]


def _data_range(r: types.Range) -> _Range:
    return _Range(_Position(r.start.line, r.start.character), _Position(r.end.line, r.end.character))


def _action(ls: LanguageServer, kind: str, data: ActionData) -> types.CodeAction:
    raw = msgspec.to_builtins(data)
    caps = ls.client_capabilities.text_document
    support = caps.code_action.resolve_support if caps and caps.code_action else None
    if support is not None and "edit" in support.properties:
        return types.CodeAction(TITLES[kind], kind=kind, data=raw)
    command = types.Command(TITLES[kind], COMMAND, arguments=[raw])  # eglot, for one, runs it instead
    return types.CodeAction(TITLES[kind], kind=kind, data=raw, command=command)


async def resolve(ls: LanguageServer, action: types.CodeAction) -> types.CodeAction:
    edit = await compute(ls, read_data(action.data))
    return attrs.evolve(action, edit=edit)


async def run_action(ls: LanguageServer, *arguments) -> None:
    """The command clients without resolve support run: compute the edit, then ask the client to apply it."""
    data = read_data(arguments[0] if len(arguments) == 1 else None)
    edit = await compute(ls, data)
    if edit is not None:
        await ls.workspace_apply_edit_async(types.ApplyWorkspaceEditParams(edit, label=TITLES[data.kind]))


def read_data(raw) -> ActionData:
    try:
        return msgspec.convert(_plain(raw), ActionData)
    except msgspec.ValidationError as e:
        raise JsonRpcInvalidParams(f"not an unmask code action's data: {e}") from None


def _plain(value):
    """pygls hands untyped JSON objects over as namedtuples: back to dicts and lists."""
    if hasattr(value, "_asdict"):
        return {k: _plain(v) for k, v in value._asdict().items()}
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return [_plain(v) for v in value] if isinstance(value, (list, tuple)) else value


async def compute(ls: LanguageServer, data: ActionData) -> types.WorkspaceEdit | None:
    """The action's edit for the document as it is now; None (the reason shown) when there is none."""
    doc = ls.docs.get(data.uri)
    if doc is None or doc.version != data.version or not doc.parseable:
        return _tell(ls, STALE)
    if not ls.status.model.serving:
        return _tell(ls, f"the model is {ls.status.model.state}")
    start, end = _offsets(ls, doc, data.lsp_range())
    content, revision = doc.content, doc.revision
    ticket = CancelToken()
    progress = LoadProgress(ls, TITLES[data.kind].removesuffix(" (unmask)").lower(), _holes)
    job = ls.worker.run(JOBS[data.kind], content, start, end, ls.options, cancel=ticket.flag, key=data.uri,
                        **({"progress": progress.from_thread} if data.kind == FILL else {}))
    work = asyncio.wrap_future(ls.status.track(job))
    window = ls.client_capabilities.window
    if window is not None and window.work_done_progress:
        ls.spawn(progress.run(work))
    try:
        outcome = await work
    except asyncio.CancelledError:
        ticket.cancel()  # the engine stops at its next poll
        raise
    ls.note_remote(outcome, tell=False)  # told below
    if isinstance(outcome, Trouble):
        return _tell(ls, outcome.message)
    if isinstance(outcome, (Interrupted, NoModel)):
        return _tell(ls, "the model is not loaded" if isinstance(outcome, NoModel) else "cancelled")
    if ls.docs.get(data.uri) is not doc or doc.revision != revision:
        return _tell(ls, STALE)
    if outcome.note:
        _tell(ls, outcome.note)
    if not outcome.edits:
        return None
    at = functools.partial(doc.position_at, encoding=ls.encoding)
    edits = [types.TextEdit(types.Range(at(e.start), at(e.end)), e.text) for e in outcome.edits]
    return _workspace_edit(ls, data.uri, data.version, edits)


def _holes(done: int, total: int) -> str:
    return f"hole {done + 1} of {total}"


def _workspace_edit(ls: LanguageServer, uri: str, version: int, edits: list) -> types.WorkspaceEdit:
    caps = ls.client_capabilities.workspace
    versioned = caps is not None and caps.workspace_edit is not None and caps.workspace_edit.document_changes
    if versioned:  # the client itself refuses the edit if the document moved on before it arrives
        identifier = types.OptionalVersionedTextDocumentIdentifier(uri, version)
        return types.WorkspaceEdit(document_changes=[types.TextDocumentEdit(identifier, edits)])
    return types.WorkspaceEdit(changes={uri: edits})


def _tell(ls: LanguageServer, message: str) -> None:
    ls.window_show_message(types.ShowMessageParams(types.MessageType.Info, f"unmask: {message}"))
    return None
