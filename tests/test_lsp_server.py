"""End to end: `python -m lsp_server` with the tiny checkpoint, driven by pytest-lsp with recorded client
capabilities (Neovim 0.11 offers utf-8 first, VS Code 1.65 nothing (utf-16), Emacs 29 utf-32 first)."""

import asyncio
import os
import sys
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import pytest_asyncio
from lsprotocol import types
from pytest_lsp import ClientServerConfig, client_capabilities

from engine.quantize import FBGEMM
from lsp_server.documents.documents import MAX_BYTES

pytestmark = pytest.mark.asyncio(loop_scope="module")
ROOT = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}
FAST = {"completion": {"maxTokens": 8, "debounceMs": 0}}
SERVED = {**FAST, "model": {"dtype": "float32"}}  # not "auto", whose answer is the machine's
PY = "import os\n\ndef add(a, b):\n    return \n\nprint(add(1, 2))\n"
RETURN = types.Position(3, 11)  # after "return "
INVOKED = types.InlineCompletionContext(types.InlineCompletionTriggerKind.Invoked)
AUTOMATIC = types.InlineCompletionContext(types.InlineCompletionTriggerKind.Automatic)


@asynccontextmanager
async def serving(checkpoint, client_name: str, options: dict, root_uri: str = ROOT.as_uri(),
                  env: dict | None = None):
    command = [sys.executable, "-m", "lsp_server", "--model", str(checkpoint)]
    client = await ClientServerConfig(server_command=command, server_env={**ENV, **(env or {})}).start()
    caps = client_capabilities(client_name)
    caps.text_document.inline_completion = types.InlineCompletionClientCapabilities()
    client.init_result = await client.initialize_session(
        types.InitializeParams(capabilities=caps, initialization_options=options, root_uri=root_uri)
    )
    await wait_for(client, lambda s: s["state"] == "ready")
    try:
        yield client
    finally:
        await client.shutdown_session()
        await client.stop()


def plain(value):
    """pygls hands untyped results over as namedtuples: back to dicts and lists."""
    if hasattr(value, "_asdict"):
        return {k: plain(v) for k, v in value._asdict().items()}
    return [plain(v) for v in value] if isinstance(value, list) else value


async def status(client) -> dict:
    return plain(await client.protocol.send_request_async("unmask/status", None))


async def wait_for(client, condition, timeout: float = 60.0) -> dict:
    for _ in range(int(timeout / 0.05)):
        if condition(s := await status(client)):
            return s
        await asyncio.sleep(0.05)
    raise AssertionError(f"status never satisfied the condition: {s}")


def open_doc(client, name: str, text: str, language_id: str = "python") -> str:
    uri = (ROOT / "tests" / "data" / "lsp" / name).as_uri()
    client.text_document_did_open(
        types.DidOpenTextDocumentParams(types.TextDocumentItem(uri, language_id, 1, text))
    )
    return uri


def inline(client, uri: str, position: types.Position, context=INVOKED):
    return client.text_document_inline_completion_async(
        types.InlineCompletionParams(context, types.TextDocumentIdentifier(uri), position)
    )


def complete(client, uri: str, position: types.Position, kind=types.CompletionTriggerKind.Invoked):
    return client.text_document_completion_async(
        types.CompletionParams(
            types.TextDocumentIdentifier(uri), position, context=types.CompletionContext(kind)
        )
    )


def insert(client, uri: str, version: int, position: types.Position, text: str) -> None:
    change = types.TextDocumentContentChangePartial(types.Range(position, position), text)
    client.text_document_did_change(
        types.DidChangeTextDocumentParams(types.VersionedTextDocumentIdentifier(version, uri), [change])
    )


@pytest_asyncio.fixture(scope="module", loop_scope="module", params=["neovim", "visual-studio-code", "emacs"])
async def client(request, tiny_checkpoint):
    async with serving(tiny_checkpoint, request.param, SERVED) as c:
        yield c


# ---- capabilities, status


async def test_capabilities_advertise_both_completion_methods(client):
    caps = client.init_result.capabilities
    assert caps.inline_completion_provider is not None
    assert caps.completion_provider is not None and "." in caps.completion_provider.trigger_characters
    assert caps.text_document_sync.change == types.TextDocumentSyncKind.Incremental
    offered = client.capabilities.general.position_encodings if client.capabilities.general else None
    assert caps.position_encoding == (offered[0] if offered else types.PositionEncodingKind.Utf16)


async def test_status_reports_the_loaded_model(client, tiny_checkpoint):
    s = await status(client)
    assert s["state"] == "ready" and s["error"] is None
    assert Path(s["model"]) == tiny_checkpoint and s["family"] == "dream"
    assert s["device"] == "cpu" and s["dtype"] == "float32" and s["threads"] >= 1
    assert s["quantize"] == ("int8" if FBGEMM else "none")  # quantize "auto", fp32 on the CPU
    assert s["options"]["completion"]["maxTokens"] == 8
    assert set(s["latencies_ms"]) == {"p50", "p95", "count"}


async def test_progress_was_reported_for_the_model_load(client):
    kinds = [v.kind for reports in client.progress_reports.values() for v in reports]
    assert kinds[:1] == ["begin"] and kinds[-1:] == ["end"]


# ---- completions


async def test_inline_completion_at_the_cursor(client):
    uri = open_doc(client, "inline.py", PY)
    result = await inline(client, uri, RETURN)
    assert len(result.items) == 1
    item = result.items[0]
    assert item.insert_text and item.range.start == RETURN and item.range.end == RETURN


async def test_completion_item_with_a_text_edit(client):
    uri = open_doc(client, "completion.py", PY)
    result = await complete(client, uri, RETURN)
    assert result.is_incomplete and len(result.items) == 1
    item = result.items[0]
    assert item.text_edit.range == types.Range(RETURN, RETURN)
    assert item.text_edit.new_text and item.label and item.filter_text == item.text_edit.new_text


async def test_positions_use_the_negotiated_encoding(client):
    """The text edit starts at the typed word "abc", after two characters outside the BMP."""
    line = "    x = '😀😀' + abc"
    uri = open_doc(client, "encoding.py", f"def add(a, b):\n{line}\n    return x\n")
    encoding = client.init_result.capabilities.position_encoding
    width = {"utf-8": len(line.encode()), "utf-16": len(line) + 2, "utf-32": len(line)}[encoding]
    result = await complete(client, uri, types.Position(1, width))
    edit = result.items[0].text_edit
    assert edit.new_text.startswith("abc")
    assert edit.range.start == types.Position(1, width - 3) and edit.range.end == types.Position(1, width)


async def test_typing_along_a_suggestion_is_served_from_the_cache(client):
    uri = open_doc(client, "typing.py", PY)
    first = (await inline(client, uri, RETURN)).items[0].insert_text
    before = (await status(client))["requests"].get("cached", 0)
    insert(client, uri, 2, RETURN, first[0])
    after_typing = types.Position(RETURN.line, RETURN.character + len(first[0].encode("utf-16-le")) // 2)
    if client.init_result.capabilities.position_encoding == "utf-8":
        after_typing = types.Position(RETURN.line, RETURN.character + len(first[0].encode()))
    second = await inline(client, uri, after_typing)
    assert second.items[0].insert_text == first[1:]
    assert (await status(client))["requests"]["cached"] == before + 1


async def test_crlf_documents_keep_their_line_endings(client):
    uri = open_doc(client, "crlf.py", "def add(a, b):\r\n    x = 1\r\n    \r\n    return x\r\n")
    result = await inline(client, uri, types.Position(2, 4))
    item = result.items[0]
    assert item.range.end.line == 2 and item.range.end.character <= 4  # never between CR and LF
    assert "\n" not in item.insert_text.replace("\r\n", "")


# ---- inputs that must get an empty answer, not an error


async def test_documents_never_opened(client):
    uri = (ROOT / "nowhere.py").as_uri()
    assert not (await inline(client, uri, RETURN)).items
    assert not (await complete(client, uri, RETURN)).items


async def test_out_of_range_positions_clamp(client):
    uri = open_doc(client, "range.py", PY)
    result = await inline(client, uri, types.Position(3, 10_000))
    assert all(item.range.start == RETURN for item in result.items)
    end = types.Position(PY.count("\n"), 0)  # a line past the last: the document's end
    assert all(
        i.text_edit.range.end == end for i in (await complete(client, uri, types.Position(10_000, 0))).items
    )


@pytest.mark.parametrize(
    "name, text, language_id",
    [
        ("huge.py", "x = 1\n" * (MAX_BYTES // 6 + 1), "python"),
        ("binary.py", "def f():\n    return \x00\x01\x02\x03\n", "python"),
        ("notes.txt", "some notes\n", "plaintext"),
    ],
)
async def test_documents_that_never_complete(client, name, text, language_id):
    uri = open_doc(client, name, text, language_id)
    assert not (await inline(client, uri, types.Position(1, 11))).items
    insert(client, uri, 2, types.Position(0, 0), "# edited\n")
    assert not (await complete(client, uri, types.Position(0, 3))).items
    assert (await status(client))["state"] == "ready"  # still alive


async def test_requests_for_several_documents_at_once(client):
    uris = [open_doc(client, f"many{i}.py", PY.replace("add", f"add{i}")) for i in range(4)]
    before = (await status(client))["requests"]
    results = await asyncio.gather(
        *(inline(client, u, RETURN) for u in uris[:2]), *(complete(client, u, RETURN) for u in uris[2:])
    )
    after = (await status(client))["requests"]
    # each reached the model and none superseded another (a random model may still have nothing to show)
    assert after.get("model", 0) == before.get("model", 0) + 4
    assert after.get("cancelled", 0) == before.get("cancelled", 0)
    assert all(len(r.items) <= 1 for r in results)
