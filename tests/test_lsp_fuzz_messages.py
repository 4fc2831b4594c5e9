"""The message layer against garbage, through a real server over stdio: truncated frames, wrong or missing
Content-Length, bytes that are not JSON, JSON that is not JSON-RPC, and a wrong type in every params field
of every method the server handles. A request is answered (an error where its params are wrong), a
notification is never answered and never applied, and afterwards the server still serves: an open
document's text is intact in both of its copies and a completion request gets its answer."""

import copy
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.lsp_raw import RawServer, sha256

URI = "file:///p/a.py"
TEXT = "import os\n\ndef add(a, b):\n    return \n\nprint(add(1, 2))\n"
FILLER = b"\r\n" * 80  # ends a frame that still waits for body bytes; blank header lines otherwise
MAX_EXCESS = 2 * 80 - 1
FUZZ = settings(max_examples=120, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

POS = {"line": 3, "character": 11}
RANGE = {"start": POS, "end": POS}
DOC = {"uri": URI}
REQUESTS = {
    "textDocument/inlineCompletion": {
        "textDocument": DOC, "position": POS,
        "context": {"triggerKind": 1, "selectedCompletionInfo": {"range": RANGE, "text": "a"}},
    },
    "textDocument/completion": {
        "textDocument": DOC, "position": POS, "context": {"triggerKind": 1, "triggerCharacter": "."},
    },
    "unmask/document": {"textDocument": DOC},
}
NOTIFICATIONS = {
    "textDocument/didOpen": {"textDocument": {"uri": URI, "languageId": "python", "version": 9, "text": "x"}},
    "textDocument/didChange": {
        "textDocument": {"uri": URI, "version": 9},
        "contentChanges": [{"range": RANGE, "rangeLength": 0, "text": "x"}],
    },
    "textDocument/didClose": {"textDocument": DOC},
    "workspace/didChangeConfiguration": {"settings": {"completion": {"maxTokens": 8}}},
    "$/cancelRequest": {"id": 10**9},
}
OPTIONAL = {"selectedCompletionInfo", "triggerCharacter", "rangeLength", "context"}  # may also be null
UINTEGERS = {"line", "character", "rangeLength"}  # LSP uinteger: 0 to 2**31 - 1
ENUMS = {"triggerKind"}  # integers outside an enum's values are tolerated (the LSP adds values over time)
ANY = {"settings"}  # LSPAny: every value is valid


def leaves(value, path=()):
    """Every path into value (objects and arrays too), with the value there."""
    yield path, value
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, inner in items:
        yield from leaves(inner, (*path, key))


def wrong_values(path, value) -> list:
    """JSON values of another type than value's (out of range for LSP integers)."""
    name = path[-1] if path else None
    if name in ANY:
        return []
    wrong = [] if name in OPTIONAL else [None]
    if isinstance(value, bool) or not isinstance(value, int):
        wrong.append(1)
    if isinstance(value, int):
        wrong += ["1", 1.5, True] + ([] if name in ENUMS else [2**31]) + ([-1] if name in UINTEGERS else [])
    if not isinstance(value, str):
        wrong.append("s")
    return wrong + [v for v in ([], {}) if type(v) is not type(value)]


def replaced(params, path, value):
    if not path:
        return value
    params = copy.deepcopy(params)
    inner = params
    for key in path[:-1]:
        inner = inner[key]
    inner[path[-1]] = value
    return params


def cases(templates):
    return [(m, p, w) for m, t in templates.items() for p, v in leaves(t) for w in wrong_values(p, v)]


@pytest.fixture(scope="module")
def server(tiny_checkpoint):
    s = RawServer(tiny_checkpoint, {"completion": {"maxTokens": 8, "debounceMs": 0}})
    s.notify("textDocument/didOpen", {"textDocument": {"uri": URI, "languageId": "python", "version": 1,
                                                       "text": TEXT}})
    while s.request("unmask/status")["result"]["state"] == "loading":
        pass
    yield s
    assert s.stop() == 0


def assert_serving(server: RawServer, after=None) -> None:
    held = server.document(URI)
    assert held is not None, f"the open document was lost after {after}"
    assert held["sha256"] == held["engineSha256"] == sha256(TEXT), after


def test_a_wrong_type_in_any_request_field_is_an_invalid_params_error(server):
    for method, path, value in cases(REQUESTS):
        response = server.request(method, replaced(REQUESTS[method], path, value))
        assert response.get("error", {}).get("code") == -32602, (method, path, value, response)
    assert_serving(server)
    inline = server.request("textDocument/inlineCompletion", REQUESTS["textDocument/inlineCompletion"])
    assert inline["result"]["items"]


def test_a_wrong_type_in_any_notification_field_is_ignored(server):
    server.skipped.clear()
    for method, path, value in cases(NOTIFICATIONS):
        server.notify(method, replaced(NOTIFICATIONS[method], path, value))
        assert_serving(server, (method, path, value))  # neither applied nor closed
        assert server.skipped == [], (method, path, value)  # and never answered


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8,
)
methods = st.sampled_from([*REQUESTS, *NOTIFICATIONS, "unmask/status", "x/unknown"]) | st.text(max_size=12)
# never a positive integer: the client's own requests use those
ids = st.text(max_size=4).map("fuzz".__add__) | json_values.filter(lambda v: not isinstance(v, int) or v < 1)
messages = st.fixed_dictionaries(
    {},
    optional={"jsonrpc": st.just("2.0") | json_values, "method": methods | json_values, "id": ids,
              "params": json_values, "result": json_values},
)
bodies = messages.map(lambda m: json.dumps(m).encode()) | st.binary(max_size=40) | json_values.map(
    lambda v: json.dumps(v).encode())


@st.composite
def frames(draw) -> bytes:
    """One frame as a broken client might write it."""
    body = draw(bodies)
    length = b"%d" % (len(body) + draw(st.integers(-len(body), MAX_EXCESS)))  # too short, exact or truncated
    if draw(st.integers(0, 20)) == 0:
        length = draw(st.sampled_from([b"%d" % 2**40, b"9" * 5000]))  # beyond anything it may allocate
    header = draw(st.sampled_from([b"Content-Length: %s\r\n", b"content-length:%s\n", b"Content-Length: %s\n",
                                   b"Content-Type: x\r\nContent-Length: %s\r\n", b"",
                                   b"Content-Length: x%s\r\n"]))
    return (header % length if b"%s" in header else header) + b"\r\n" + body


@FUZZ
@given(garbage=st.lists(frames(), min_size=1, max_size=4))
def test_garbage_frames_never_crash_the_server_nor_lose_a_document(server, garbage):
    for frame in garbage:
        if b"exit" in frame or b"shutdown" in frame:
            continue  # a well-formed exit would end the server, as it should
        server.write(frame + FILLER)
    assert server.process.poll() is None
    assert_serving(server)
    assert "result" in server.request("unmask/status")
