"""One owner for each document: the engine thread's parses follow the event loop's text even when an edit job
fails or never arrives (lsp_server/documents/parsed.py), checked on the store and through a real server whose
incremental re-parse is made to fail once."""

import sys
from contextlib import asynccontextmanager

import pytest
from lsprotocol import types
from pytest_lsp import ClientServerConfig, client_capabilities

import infill
from lsp_server.documents.documents import OpenDocument
from lsp_server.documents.parsed import ParsedDocuments
from tests.test_lsp_server import ENV, ROOT, insert, plain, wait_for

TEXT = "def add(a, b):\n    total = a + b\n    return total\n"


def opened(text: str = TEXT, uri: str = "file:///p/a.py") -> OpenDocument:
    return OpenDocument(types.TextDocumentItem(uri, "python", 1, text))


def change(doc: OpenDocument, line: int, character: int, text: str):
    """Type text at (line, character): the states before and after and the code-point edit, as did_change
    hands them to the worker."""
    before, at = doc.content, types.Position(line, character)
    edit = doc.apply(types.TextDocumentContentChangePartial(types.Range(at, at), text), "utf-16")
    return before, doc.content, *edit


def spy_edits(monkeypatch, fail_first: bool) -> list:
    """The incremental edits the store makes; with fail_first, the first one fails half done (the text
    changed, the re-parse did not happen)."""
    real, calls = infill.Document.apply_edit, []

    def apply_edit(self, *args):
        calls.append(args)
        if fail_first and len(calls) == 1:
            self._text = "half-applied"
            raise RuntimeError("injected re-parse failure")
        return real(self, *args)

    monkeypatch.setattr(infill.Document, "apply_edit", apply_edit)
    return calls


def same_trees(a: infill.Document, b: infill.Document) -> bool:
    return [str(t.root_node) for t in a.trees] == [str(t.root_node) for t in b.trees]


def test_edits_reparse_incrementally(monkeypatch):
    doc, docs = opened(), ParsedDocuments()
    docs.open(doc.content)
    parsed, calls = docs.get(doc.content), spy_edits(monkeypatch, fail_first=False)
    docs.edit(*change(doc, 2, 16, " * 2"))
    assert docs.get(doc.content) is parsed and len(calls) == 1  # the same parse, edited in place
    assert parsed.text == doc.text == TEXT.replace("total\n", "total * 2\n")


def test_a_failed_edit_leaves_the_owners_text(monkeypatch):
    doc, docs = opened(), ParsedDocuments()
    docs.open(doc.content)
    calls = spy_edits(monkeypatch, fail_first=True)
    with pytest.raises(RuntimeError, match="injected"):
        docs.edit(*change(doc, 2, 16, " * 2"))
    assert docs.text(doc.uri) == doc.text
    parsed = docs.get(doc.content)
    assert same_trees(parsed, infill.Document(doc.text, "python"))
    docs.edit(*change(doc, 0, 0, "import os\n"))  # and the next edit is incremental again
    assert docs.get(doc.content) is parsed and parsed.text == doc.text and len(calls) == 2


def test_a_missed_edit_is_repaired_by_the_next_one():
    doc, docs = opened(), ParsedDocuments()
    docs.open(doc.content)
    change(doc, 2, 16, " * 2")  # its job never reached the engine thread
    docs.edit(*change(doc, 0, 0, "import os\n"))
    assert docs.text(doc.uri) == doc.text
    assert same_trees(docs.get(doc.content), infill.Document(doc.text, "python"))


def test_others_are_the_same_language_newest_first():
    a, b, c = (opened(TEXT, f"file:///p/{n}.py") for n in "abc")
    js = OpenDocument(types.TextDocumentItem("file:///p/d.js", "javascript", 1, "let x = 1;\n"))
    docs = ParsedDocuments()
    for d in (a, b, js, c):
        docs.open(d.content)
    docs.edit(*change(a, 0, 0, "# a\n"))
    assert [o.text for o in docs.others(b.content, 8)] == [a.text, c.text]
    assert len(docs.others(b.content, 1)) == 1


# ---- through the server: the first incremental re-parse on the engine thread fails

FAILING_SERVER = """
import sys
import infill
real = infill.Document.apply_edit
def apply_edit(self, *args):
    infill.Document.apply_edit = real
    self._text = "half-applied"
    raise RuntimeError("injected re-parse failure")
infill.Document.apply_edit = apply_edit
from lsp_server.cli import main
sys.exit(main(["serve", "--model", sys.argv[1], *sys.argv[2:]]))
"""


@asynccontextmanager
async def failing_server(checkpoint):
    command = [sys.executable, "-c", FAILING_SERVER, str(checkpoint)]
    client = await ClientServerConfig(server_command=command, server_env=ENV).start()
    caps = client_capabilities("visual-studio-code")
    options = {"completion": {"maxTokens": 8, "debounceMs": 0}}
    await client.initialize_session(
        types.InitializeParams(capabilities=caps, initialization_options=options, root_uri=ROOT.as_uri())
    )
    await wait_for(client, lambda s: s["state"] == "ready")
    try:
        yield client
    finally:
        await client.shutdown_session()
        await client.stop()


async def engine_copy(client, uri: str) -> dict:
    params = {"textDocument": {"uri": uri}}
    return plain(await client.protocol.send_request_async("unmask/document", params))


async def test_after_a_failed_edit_completions_see_the_clients_text(tiny_checkpoint):
    async with failing_server(tiny_checkpoint) as client:
        uri = (ROOT / "tests" / "data" / "lsp" / "drift.py").as_uri()
        line = "    x = '😀😀' + "
        client.text_document_did_open(types.DidOpenTextDocumentParams(
            types.TextDocumentItem(uri, "python", 1, f"def add(a, b):\n{line}\n    return x\n")
        ))
        insert(client, uri, 2, types.Position(1, len(line) + 2), "abc")  # its re-parse fails
        copy = await engine_copy(client, uri)
        assert copy["engineSha256"] == copy["sha256"]
        end = types.Position(1, len(line) + 2 + 3)  # UTF-16: each emoji is two units
        invoked = types.CompletionContext(types.CompletionTriggerKind.Invoked)
        result = await client.text_document_completion_async(
            types.CompletionParams(types.TextDocumentIdentifier(uri), end, context=invoked)
        )
        edit = result.items[0].text_edit  # the engine completes the word the failed edit typed
        assert edit.new_text.startswith("abc") and edit.range.start == types.Position(1, len(line) + 2)
