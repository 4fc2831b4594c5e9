"""Code actions end to end: `python -m lsp_server` with the tiny checkpoint, driven by pytest-lsp with the
recorded Neovim (edits as `changes`) and VS Code (versioned `documentChanges`) capabilities, and Emacs's
(no resolve support: the action runs as a command that sends workspace/applyEdit). Cancellation runs on
the wider, slower checkpoint of test_lsp_cancel.py."""

import asyncio
import time

import pytest
import pytest_asyncio
from lsprotocol import types
from pygls.exceptions import JsonRpcInvalidParams, JsonRpcRequestCancelled

from lsp_server.actions import actions
from lsp_server.actions.actions import BODY, FILL, REWRITE
from lsp_server.protocol import convert
from tests.test_lsp_cancel import SLOW, slow_checkpoint  # noqa: F401 (a fixture)
from tests.test_lsp_server import FAST, insert, open_doc, plain, serving, status, wait_for

pytestmark = pytest.mark.asyncio(loop_scope="module")
HOLE = "<|fill|>"
PY = "import os\n\ndef add(a, b):\n    return a + b\n\nprint(add(1, 2))\n"
EMPTY_BODY = "import os\n\ndef add(a, b):\n\nprint(add(1, 2))\n"
MARKED = f"import os\n\ntotal = {HOLE}\n\ndef add(a, b):\n    {HOLE}\n\nprint(add({HOLE}, 2))\n"


@pytest_asyncio.fixture(scope="module", loop_scope="module", params=["neovim", "visual-studio-code"])
async def client(request, tiny_checkpoint):
    async with serving(tiny_checkpoint, request.param, FAST) as c:
        yield c


def at(text: str, offset: int, client) -> types.Position:
    return convert.position_at(text, convert.line_starts(text), offset, encoding(client))


def encoding(client) -> str:
    return client.init_result.capabilities.position_encoding or types.PositionEncodingKind.Utf16


def span(text: str, start: int, end: int, client) -> types.Range:
    return types.Range(at(text, start, client), at(text, end, client))


async def ask(client, uri: str, r: types.Range, only=None) -> list[types.CodeAction]:
    context = types.CodeActionContext([], only=only)
    params = types.CodeActionParams(types.TextDocumentIdentifier(uri), r, context)
    return list(await client.text_document_code_action_async(params))


def text_edits(edit: types.WorkspaceEdit, uri: str, version: int) -> list[types.TextEdit]:
    """The edits for uri, from either form; a versioned one must name the version the action was made for."""
    if edit.document_changes is not None:
        (change,) = edit.document_changes
        assert change.text_document.uri == uri and change.text_document.version == version
        return list(change.edits)
    assert list(edit.changes) == [uri]
    return list(edit.changes[uri])


def offsets(text: str, r: types.Range, client) -> tuple[int, int]:
    starts = convert.line_starts(text)
    return tuple(convert.offset_at(text, starts, p, encoding(client)) for p in (r.start, r.end))


def applied(text: str, edits: list[types.TextEdit], client) -> str:
    spans = sorted((offsets(text, e.range, client), e.new_text) for e in edits)
    assert all(a[0][1] <= b[0][0] for a, b in zip(spans, spans[1:])), "overlapping edits"
    for (start, end), new in reversed(spans):
        text = text[:start] + new + text[end:]
    return text


async def resolved(client, uri: str, r: types.Range, kind: str) -> types.CodeAction:
    (action,) = [a for a in await ask(client, uri, r) if a.kind == kind]
    assert action.edit is None and action.command is None  # computed in the resolve, not before
    return await client.code_action_resolve_async(action)


# ---- where the actions are offered


async def test_capabilities_advertise_lazy_refactor_rewrite_actions(client):
    provider = client.init_result.capabilities.code_action_provider
    assert provider.resolve_provider is True
    assert set(provider.code_action_kinds) == {REWRITE, FILL, BODY}
    assert all(k.startswith("refactor.rewrite.") for k in provider.code_action_kinds)


async def test_offered_only_where_they_apply(client):
    uri = open_doc(client, "offer.py", PY)
    body = PY.index("return")
    assert await ask(client, uri, span(PY, body, body, client)) == []  # a cursor in a full body
    blank = PY.index("\nprint") + 1
    assert await ask(client, uri, span(PY, blank - 1, blank, client)) == []  # only whitespace selected
    selection = span(PY, body, body + len("return a + b"), client)
    (rewrite,) = await ask(client, uri, selection)
    assert rewrite.kind == REWRITE and rewrite.title.startswith("Rewrite selection")
    data = plain(rewrite.data)
    assert data["uri"] == uri and data["version"] == 1 and data["kind"] == REWRITE

    empty = open_doc(client, "offer_body.py", EMPTY_BODY)
    header = EMPTY_BODY.index("def add")
    assert [a.kind for a in await ask(client, empty, span(EMPTY_BODY, header, header, client))] == [BODY]
    for elsewhere in (0, EMPTY_BODY.index("print")):
        assert await ask(client, empty, span(EMPTY_BODY, elsewhere, elsewhere, client)) == []

    marked = open_doc(client, "offer_holes.py", MARKED)
    assert [a.kind for a in await ask(client, marked, span(MARKED, 0, 0, client))] == [FILL]
    everything = span(MARKED, MARKED.index("def"), len(MARKED), client)
    assert {a.kind for a in await ask(client, marked, everything, only=["refactor"])} == {REWRITE, FILL}
    assert await ask(client, marked, everything, only=["quickfix", "refactor.extract"]) == []
    assert [a.kind for a in await ask(client, marked, everything, only=[FILL])] == [FILL]


# ---- what a resolve does


async def test_rewrite_selection_replaces_exactly_the_selection(client):
    uri = open_doc(client, "rewrite.py", PY)
    start, end = PY.index("a + b"), PY.index("a + b") + len("a + b")
    action = await resolved(client, uri, span(PY, start, end, client), REWRITE)
    assert action.edit is not None, [m.message for m in client.messages]
    (edit,) = text_edits(action.edit, uri, 1)
    assert edit.range == span(PY, start, end, client)
    assert edit.new_text.strip() and "\n" not in edit.new_text  # a one-line selection stays one line
    result = applied(PY, [edit], client)
    assert result.startswith(PY[:start]) and result.endswith(PY[end:])


async def test_rewrite_keeps_the_whitespace_around_the_selection(client):
    uri = open_doc(client, "rewrite_line.py", PY)
    line = PY.index("    return")
    action = await resolved(client, uri, span(PY, line, PY.index("\n\nprint") + 1, client), REWRITE)
    (edit,) = text_edits(action.edit, uri, 1)
    kept = span(PY, PY.index("return"), PY.index("\n\nprint"), client)  # without indentation and newline
    assert edit.range == kept


async def test_fill_holes_replaces_each_marker_where_it_was(client):
    uri = open_doc(client, "holes.py", MARKED)
    client.progress_reports.clear()
    action = await resolved(client, uri, span(MARKED, 0, 0, client), FILL)
    # work-done progress: begun with the action's name, ended once the edit was made (the end may arrive
    # just after the resolve's answer; a loaded CI machine gets 20 s)
    reports: list = []
    for _ in range(400):
        ours = [rs for rs in client.progress_reports.values() if rs and getattr(rs[0], "message", None)
                == "fill holes"]
        reports = ours[0] if ours else []
        if reports and reports[-1].kind == "end":
            break
        await asyncio.sleep(0.05)
    assert reports and reports[0].kind == "begin" and reports[-1].kind == "end"
    edits = text_edits(action.edit, uri, 1)
    lines = MARKED.split("\n")
    holes = [i for i, line in enumerate(lines) if HOLE in line]
    assert len(edits) == len(holes)  # one per hole, each on its hole's line, each covering its marker
    for edit, row in zip(sorted(edits, key=lambda e: (e.range.start.line, e.range.start.character)), holes):
        start, end = offsets(MARKED, edit.range, client)
        assert edit.range.start.line == edit.range.end.line == row
        assert MARKED.index(HOLE, start) + len(HOLE) <= end
    result = applied(MARKED, edits, client)
    assert HOLE not in result
    # every line without a hole is still there, in order, and the text before each marker on its line
    kept = iter(result.split("\n"))
    for line in lines:
        if HOLE not in line:
            assert any(got == line for got in kept), line
    assert result.split("\n")[2].startswith("total = ") and "print(add(" in result


async def test_complete_body_opens_the_empty_body(client):
    uri = open_doc(client, "body.py", EMPTY_BODY)
    header = EMPTY_BODY.index("def add")
    action = await resolved(client, uri, span(EMPTY_BODY, header, header, client), BODY)
    (edit,) = text_edits(action.edit, uri, 1)
    colon = header + len("def add(a, b):")
    assert edit.range == span(EMPTY_BODY, colon, colon, client)
    result = applied(EMPTY_BODY, [edit], client)
    head, body_and_rest = result.split("def add(a, b):\n", 1)
    assert head == "import os\n\n" and body_and_rest.endswith("\n\nprint(add(1, 2))\n")
    body = body_and_rest[: -len("\n\nprint(add(1, 2))\n")]
    assert body.strip() and all(line.startswith("    ") for line in body.split("\n") if line.strip())


async def test_a_stale_version_gets_no_edit(client):
    uri = open_doc(client, "stale.py", PY)
    start = PY.index("a + b")
    (action,) = await ask(client, uri, span(PY, start, start + 5, client))
    insert(client, uri, 2, types.Position(0, 0), "# changed\n")
    client.messages.clear()
    result = await client.code_action_resolve_async(action)
    assert result.edit is None
    assert any("changed since the action was offered" in m.message for m in client.messages)


async def test_data_that_is_not_ours_is_an_error_not_a_crash(client):
    negative = {"start": {"line": -1, "character": 0}, "end": {"line": 0, "character": 0}}
    for data in (None, {"uri": 1}, {"uri": "file:///x.py", "version": 1, "range": {}, "kind": REWRITE},
                 {"uri": "file:///x.py", "version": 1, "range": negative, "kind": REWRITE},
                 {"uri": "file:///x.py", "version": 1, "range": {**negative, "start": negative["end"]},
                  "kind": "quickfix"}):
        with pytest.raises(JsonRpcInvalidParams):
            await client.code_action_resolve_async(types.CodeAction("x", data=data))
    assert (await status(client))["state"] == "ready"


# ---- clients without resolve support


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def emacs(tiny_checkpoint):
    async with serving(tiny_checkpoint, "emacs", FAST) as c:
        c.applied = []

        @c.feature(types.WORKSPACE_APPLY_EDIT)
        def apply_edit(params: types.ApplyWorkspaceEditParams):
            c.applied.append(params)
            return types.ApplyWorkspaceEditResult(applied=True)

        yield c


async def test_without_resolve_support_the_action_runs_as_a_command(emacs, monkeypatch):
    uri = open_doc(emacs, "command.py", PY)
    start, end = PY.index("a + b"), PY.index("a + b") + 5
    # read the answer untyped: the client's converter takes any object with a "command" field for a Command
    monkeypatch.setattr(emacs.protocol, "get_result_type", lambda method: None)
    params = types.CodeActionParams(types.TextDocumentIdentifier(uri), span(PY, start, end, emacs),
                                    types.CodeActionContext([]))
    (action,) = plain(await emacs.protocol.send_request_async(types.TEXT_DOCUMENT_CODE_ACTION, params))
    assert action["kind"] == REWRITE and "edit" not in action
    command = action["command"]
    assert command["command"] == actions.COMMAND and command["arguments"] == [action["data"]]
    monkeypatch.undo()
    run = types.ExecuteCommandParams(command["command"], command["arguments"])
    await emacs.workspace_execute_command_async(run)
    (applied,) = emacs.applied
    (edit,) = text_edits(applied.edit, uri, 1)
    assert edit.range == span(PY, start, end, emacs) and applied.label == action["title"]
    assert edit.new_text.strip() and "\n" not in edit.new_text


# ---- cancellation, on a model slow enough to tell a stopped job from a finished one

LONG = "def add(a, b):\n" + "".join(f"    v{i} = a * {i} + b\n" for i in range(12)) + "    return v0\n"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def slow(slow_checkpoint):  # noqa: F811
    async with serving(slow_checkpoint, "visual-studio-code", SLOW) as c:
        yield c


def resolve_later(client, action: types.CodeAction, msg_id: str):
    return asyncio.ensure_future(
        client.protocol.send_request_async(types.CODE_ACTION_RESOLVE, action, msg_id=msg_id)
    )


async def test_a_cancelled_resolve_stops_the_engine_and_the_server_keeps_working(slow):
    uri = open_doc(slow, "cancel_action.py", LONG)
    start, end = LONG.index("v0 ="), LONG.index("    return")
    (action,) = await ask(slow, uri, span(LONG, start, end, slow))
    t0 = time.monotonic()
    await resolve_later(slow, action, "full")
    full_s = time.monotonic() - t0
    assert full_s > 1.0

    pending = resolve_later(slow, action, "to-cancel")
    await wait_for(slow, lambda s: s["running"] == 1, timeout=10)
    await asyncio.sleep(0.2)
    t0 = time.monotonic()
    slow.protocol.notify(types.CANCEL_REQUEST, types.CancelParams(id="to-cancel"))
    with pytest.raises(JsonRpcRequestCancelled):
        await pending
    await wait_for(slow, lambda s: s["running"] == 0, timeout=30)
    assert time.monotonic() - t0 < full_s / 3

    short = open_doc(slow, "after_cancel.py", PY)
    s = PY.index("a + b")
    after = await resolved(slow, short, span(PY, s, s + 5, slow), REWRITE)
    assert after.edit is not None


async def test_an_edit_while_the_model_works_gets_no_edit(slow):
    uri = open_doc(slow, "edit_while.py", LONG)
    start, end = LONG.index("v0 ="), LONG.index("    return")
    (action,) = await ask(slow, uri, span(LONG, start, end, slow))
    slow.messages.clear()
    pending = resolve_later(slow, action, "outdated")
    await wait_for(slow, lambda s: s["running"] == 1, timeout=10)
    insert(slow, uri, 2, types.Position(0, 0), "# typed meanwhile\n")
    result = await pending
    assert result.edit is None
    assert any("changed since the action was offered" in m.message for m in slow.messages)
