"""Property: random incremental edits (UTF-16 positions, astral characters, CRLF, lone CR, positions past a
line's or the document's end) leave the server's text equal to the client's, in both of its copies: the event
loop's (lsp_server/documents/documents.py) and the engine thread's parsed infill.Document, which receives the
code-point edits the first one reports. Checked on the document store directly (many examples) and through a
real server over stdio (fewer), where `unmask/document` hashes both copies."""

import itertools

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lsprotocol import types

import infill
from lsp_server.documents.documents import OpenDocument
from tests import lsp_edits
from tests.lsp_raw import RawServer, sha256

ENCODINGS = {"utf-16": types.PositionEncodingKind.Utf16, "utf-8": types.PositionEncodingKind.Utf8,
             "utf-32": types.PositionEncodingKind.Utf32}
LANGUAGES = ["python", "javascript", "go", "rust", "c"]
DOC_NUMBERS = itertools.count()  # a fresh uri per example
STORE = settings(max_examples=250, deadline=None, derandomize=True, database=None)
STDIO = settings(max_examples=25, deadline=None, derandomize=True, database=None,
                 suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


def lsp_change(change: dict) -> types.TextDocumentContentChangeEvent:
    if "range" not in change:
        return types.TextDocumentContentChangeWholeDocument(text=change["text"])
    (a, b) = (types.Position(**change["range"][k]) for k in ("start", "end"))
    return types.TextDocumentContentChangePartial(range=types.Range(a, b), text=change["text"])


@pytest.mark.parametrize("encoding", ENCODINGS)
@STORE
@given(data=st.data(), text=lsp_edits.texts, language=st.sampled_from(LANGUAGES))
def test_store_follows_the_client(encoding, data, text, language):
    doc = OpenDocument(types.TextDocumentItem("file:///p/a.x", language, 1, text))
    engine = infill.Document(text, language, chunk_bytes=64)  # small chunks: edits cross chunk borders
    client = text
    for _ in range(data.draw(st.integers(1, 12), label="edits")):
        change = data.draw(lsp_edits.changes(client, encoding))
        client = lsp_edits.apply(client, change, encoding)
        engine.apply_edit(*doc.apply(lsp_change(change), ENCODINGS[encoding]))
        assert doc.text == client
        assert engine.text == client
        assert engine.data == client.encode()


@pytest.fixture(scope="module")
def server(tiny_checkpoint):
    s = RawServer(tiny_checkpoint)
    yield s
    assert s.stop() == 0


@STDIO
@given(data=st.data(), text=lsp_edits.texts, language=st.sampled_from(LANGUAGES))
def test_server_follows_the_client(server, data, text, language):
    uri = f"file:///p/doc{next(DOC_NUMBERS)}.{language}"
    item = {"uri": uri, "languageId": language, "version": 1, "text": text}
    server.notify("textDocument/didOpen", {"textDocument": item})
    client, n = text, data.draw(st.integers(1, 12), label="edits")
    for version in range(2, n + 2):
        batch = []
        for _ in range(data.draw(st.integers(1, 3))):  # one didChange's changes apply in order
            batch.append(data.draw(lsp_edits.changes(client)))
            client = lsp_edits.apply(client, batch[-1])
        server.notify("textDocument/didChange",
                      {"textDocument": {"uri": uri, "version": version}, "contentChanges": batch})
    held = server.document(uri)
    server.notify("textDocument/didClose", {"textDocument": {"uri": uri}})
    assert held["sha256"] == sha256(client), (held["length"], len(client))
    assert held["engineSha256"] == held["sha256"]
    assert held["version"] == n + 1
