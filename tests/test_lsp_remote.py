"""Remote (team) mode: a fake team server on 127.0.0.1 (stdlib http.server in a thread) that records every
request and can be made slow, down, 401 or 500; RemoteModel driven directly, then the real language server
(`python -m lsp_server --remote URL --token T`) over pytest-lsp, and the CLI."""

import asyncio
import dataclasses
import json
import select
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import pytest_asyncio
from lsprotocol import types
from pygls.exceptions import JsonRpcRequestCancelled
from pytest_lsp import ClientServerConfig, client_capabilities

import engine
from engine.params import InfillParams
from lsp_server.cli import main
from lsp_server.options import parse
from lsp_server.outcomes import RemoteRefused, Unreachable
from lsp_server.remote.remote import EXTRA_BYTES, RemoteError, RemoteModel
from lsp_server.remote.remote_memory import AFTER_CURSOR, RemoteMemory, cut_at_cursor
from tests.test_lsp_server import ENV, PY, RETURN, inline, open_doc, status, wait_for

TOKEN = "s3cret-token"
# as lsp_server/team/app.py answers: models.describe's fields, the name under "model", the limits
FACTS = {"model": "fake/coder", "max_positions": 1024, "max_canvas": 24, "device": "cuda:0",
         "family": "dream", "dtype": "bfloat16", "quantize": "none", "threads": 4}
SLOW_S = 10.0  # how long a slow request is held when the client never leaves


class Quiet(ThreadingHTTPServer):
    def handle_error(self, request, client_address):
        pass  # a client gone mid-request (the point of some tests), or the server stopped under it


class FakeTeam:
    """A team server: /v1/status and /v1/infill as the real one answers them, each request recorded."""

    def __init__(self):
        self.requests: list[dict] = []  # {"method", "path", "headers", "body"}
        self.token: str | None = TOKEN
        self.answer = "a + b"
        self.state = "ready"
        self.fail: int | None = None  # answer /v1/infill with this status
        self.slow = 0  # hold the next this many infill requests until the client leaves
        self.left = threading.Event()  # a held request's client closed its connection
        self._server, self.port = None, 0
        self.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def infills(self) -> list[dict]:
        return [r for r in self.requests if r["path"] == "/v1/infill"]

    def start(self) -> None:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as a real server

            def log_message(self, *args):
                pass

            def setup(self):
                super().setup()
                fake.connections.add(self.connection)

            def do_GET(self):
                self._record(None)
                if self._authorized():
                    self._send(200, {"state": fake.state, "model": FACTS, "queue": 0})

            def do_POST(self):
                self._record(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
                if not self._authorized():
                    return
                if fake.slow:
                    fake.slow -= 1
                    if self._client_left_within(SLOW_S):
                        fake.left.set()
                        return
                if fake.fail is not None:  # the team server's (OpenAI's) error shape
                    self._send(fake.fail, {"error": {"message": "the engine fell over", "code": fake.fail}})
                else:
                    self._send(200, {"text": fake.answer, "confidence": 0.9, "stats": {"forward_passes": 2}})

            def _record(self, body):
                request = {"method": self.command, "path": self.path, "headers": dict(self.headers)}
                fake.requests.append({**request, "body": body})

            def _authorized(self) -> bool:
                if fake.token is None or self.headers.get("Authorization") == f"Bearer {fake.token}":
                    return True
                self._send(401, {"detail": "missing or wrong token"})
                return False

            def _client_left_within(self, seconds: float) -> bool:
                readable, _, _ = select.select([self.connection], [], [], seconds)
                return bool(readable) and self.connection.recv(1, socket.MSG_PEEK) == b""

            def _send(self, code: int, data: dict):
                body = json.dumps(data).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.connections: set[socket.socket] = set()
        self._server = Quiet(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        """Down: the port refuses connections, and the ones kept alive are closed."""
        self._server.shutdown()
        self._server.server_close()
        for connection in self.connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


@pytest.fixture
def team():
    fake = FakeTeam()
    yield fake
    fake.stop()


def sampler():
    return engine.SamplerConfig(tokens_per_step=3)


# ---- RemoteModel, directly


def test_infill_sends_the_planned_request_and_returns_the_answer(team):
    model = RemoteModel(team.url, TOKEN)
    doc = "def add(a, b):\n    x = 1\n    return \n\nprint(add(1, 2))\n# end\n"
    model.memory.update("file:///p/other.py", "def sub(a, b):\n    return a - b\n")
    model.memory.update("file:///p/main.go", "package main\n")
    model.memory.update("file:///p/add.py", doc, cursor=doc.index("return ") + 7)
    answer = model.infill("def add(a, b):\n    return ", "\n",
            InfillParams(canvas=16, max_canvas=32, sampler=sampler(), single_line=True,
                         memory=engine.MemoryConfig()))
    assert (answer.text, answer.confidence) == ("a + b", 0.9)
    request = team.infills()[-1]
    assert request["headers"]["Authorization"] == f"Bearer {TOKEN}"
    body = request["body"]
    assert (body["prefix"], body["suffix"], body["canvas"], body["max_canvas"]) == (
        "def add(a, b):\n    return ", "\n", 16, 24)  # cut to the server's max_canvas
    assert body["single_line"] is True and body["seed"] == 0 and body["deadline_ms"] == 30_000
    assert body["sampler"] == dataclasses.asdict(sampler())
    # the document last (the newest source), cut at the cursor without its neighbouring lines; the other
    # Python document before it; the Go one left out
    names = [e["filename"] for e in body["extra"]]
    assert names == ["file:///p/other.py", "file:///p/add.py", "file:///p/add.py" + AFTER_CURSOR]
    before, after = body["extra"][1]["text"], body["extra"][2]["text"]
    assert before == "def add(a, b):\n" and after == "\nprint(add(1, 2))\n# end\n"
    memory_off = model.infill("x = ", "\n", InfillParams(canvas=4, sampler=sampler(), memory=None))
    assert memory_off.text == "a + b" and team.infills()[-1]["body"]["extra"] == []


def test_the_planning_facts_come_from_the_status(team):
    model = RemoteModel(team.url, TOKEN)
    assert isinstance(model, engine.CompletionModel)
    info = model.info
    assert (info.name, info.family, info.device) == ("fake/coder", "dream", "cuda:0")
    assert model.max_positions == 1024 and not model.capabilities.score
    assert model.context_room(48) == 1024 - 48 - 2
    assert model.count_tokens("abcdef") == 2 and model.count_tokens("abcdefg") == 3
    assert model.describe()["model"] == "fake/coder" and model.describe()["remote"] == team.url
    assert [r["path"] for r in team.requests] == ["/v1/status"]  # asked once


def test_the_document_is_cut_where_the_local_memory_goes_blind():
    text = "a\nb\nc = |\nd\ne\n"
    assert cut_at_cursor(text, text.index("|")) == ("a\n", "\ne\n")
    assert cut_at_cursor("x = ", 4) == ("", "")


def test_extra_stays_within_its_budget_keeping_the_text_nearest_the_cursor():
    memory = RemoteMemory()
    line = "value = compute(value) + 1\n"
    for i in range(20):
        memory.update(f"file:///p/m{i}.py", line * 1000)  # 27 KB each
    doc = line * 20_000 + "x = |\n" + line * 20_000
    memory.update("file:///p/doc.py", doc, cursor=doc.index("|"))
    extra = memory.extra(EXTRA_BYTES)
    assert sum(len(e["text"].encode()) for e in extra) <= EXTRA_BYTES
    assert [e["filename"] for e in extra] == ["file:///p/doc.py", "file:///p/doc.py" + AFTER_CURSOR]
    before = extra[0]["text"]  # the end of the text before the cursor, up to the line before the cursor's
    assert len(before.encode()) > EXTRA_BYTES // 2 and doc[: doc.index("x = |") - len(line)].endswith(before)
    assert doc[doc.index("|") + 1 + len(line) :].startswith(extra[1]["text"])  # after the line after


def test_a_cancelled_request_closes_its_connection(team):
    model = RemoteModel(team.url, TOKEN)
    model.facts()
    team.slow, cancel = 1, threading.Event()
    threading.Timer(0.2, cancel.set).start()
    t0 = time.monotonic()
    with pytest.raises(engine.Cancelled):
        model.infill("x = ", "\n", InfillParams(canvas=4, sampler=sampler()), cancel=cancel.is_set)
    assert time.monotonic() - t0 < 2.0  # the server would hold it SLOW_S
    assert team.left.wait(5.0)  # the server saw the client go
    assert model.infill("x = ", "\n",
            InfillParams(canvas=4, sampler=sampler())).text == "a + b"  # a new connection


def test_a_server_that_is_down_fails_at_once_then_is_asked_again(team):
    model = RemoteModel(team.url, TOKEN)
    model.facts()
    team.stop()
    with pytest.raises(RemoteError) as failed:
        model.infill("x = ", "\n", InfillParams(canvas=4, sampler=sampler()))
    assert isinstance(failed.value.trouble, Unreachable) and "connection refused" in str(failed.value)
    team.start()  # the same port
    t0 = time.monotonic()
    with pytest.raises(RemoteError):  # within the backoff: not asked
        model.infill("x = ", "\n", InfillParams(canvas=4, sampler=sampler()))
    assert time.monotonic() - t0 < 0.3 and not team.infills()
    time.sleep(0.6)
    assert model.info.name == "fake/coder"  # asked again: the facts first, the server may have changed
    assert model.infill("x = ", "\n", InfillParams(canvas=4, sampler=sampler())).text == "a + b"


@pytest.mark.parametrize("token, says", [(None, "wants a token"), ("wrong", "refused the token")])
def test_401_names_the_token_option(team, token, says):
    with pytest.raises(RemoteError) as failed:
        RemoteModel(team.url, token).facts()
    assert isinstance(failed.value.trouble, RemoteRefused)
    message = str(failed.value)
    assert says in message and "model.token" in message and "UNMASK_TEAM_TOKEN" in message
    assert "\n" not in message and (token is None or token not in message)


def test_5xx_and_loading_are_outages_with_the_servers_words(team):
    model = RemoteModel(team.url, TOKEN)
    team.state = "loading"
    with pytest.raises(RemoteError, match="still loading its model"):
        model.facts()
    team.state, team.fail = "ready", 500
    time.sleep(0.6)
    model.facts()
    with pytest.raises(RemoteError) as failed:
        model.infill("x = ", "\n", InfillParams(canvas=4, sampler=sampler()))
    assert isinstance(failed.value.trouble, Unreachable)
    assert str(failed.value) == f"team server {team.url} answered 500: the engine fell over"


# ---- options and the CLI


@pytest.mark.parametrize("raw, option", [
    ({"model": {"remote": "ftp://gpu-box"}}, "model.remote"),
    ({"model": {"remote": "http://user:pw@gpu-box"}}, "model.remote"),
    ({"model": {"remote": 8000}}, "model.remote"),
    ({"model": {"token": "two words"}}, "model.token"),
])
def test_bad_remote_options_are_one_line_each(raw, option):
    options, messages = parse(raw)
    assert options.model.remote is None and options.model.token is None
    assert len(messages) == 1 and f"'{option}'" in messages[0] and "\n" not in messages[0]
    assert "two words" not in messages[0]  # a token is never echoed


def test_camel_case_remote_options():
    options, messages = parse({"model": {"remote": "https://gpu-box:8443/unmask", "token": TOKEN}})
    assert messages == [] and options.model.remote == "https://gpu-box:8443/unmask"


@pytest.fixture
def source(tmp_path):
    path = tmp_path / "add.py"
    path.write_text(PY)
    return path


def test_cli_complete_through_the_team_server(team, source, monkeypatch, capsys):
    monkeypatch.setenv("UNMASK_TEAM_TOKEN", TOKEN)
    team.answer = "a + b\nprint('a second line')"
    assert main(["complete", str(source), "--line", "4", "--col", "12", "--remote", team.url]) == 0
    assert capsys.readouterr().out == "a + b\n"  # the single line kept here
    extra = team.infills()[-1]["body"]["extra"]
    assert [e["filename"] for e in extra] == ["<document>", "<document>" + AFTER_CURSOR]


def test_cli_one_line_errors(team, source, monkeypatch):
    monkeypatch.delenv("UNMASK_TEAM_TOKEN", raising=False)
    at = ["complete", str(source), "--line", "4", "--col", "12"]
    with pytest.raises(SystemExit, match=r"^unmask: --remote must be an http:// or https:// URL"):
        main([*at, "--remote", "gpu-box:8000"])
    with pytest.raises(SystemExit, match=r"^unmask: team server .* wants a token \(401\)"):
        main([*at, "--remote", team.url])
    team.stop()
    with pytest.raises(SystemExit, match=r"^unmask: team server .*: connection refused$"):
        main([*at, "--remote", team.url, "--token", TOKEN])


# ---- the language server


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def served():
    fake = FakeTeam()
    command = [sys.executable, "-m", "lsp_server", "--remote", fake.url, "--token", TOKEN]
    client = await ClientServerConfig(server_command=command, server_env=ENV).start()
    caps = client_capabilities("visual-studio-code")
    caps.text_document.inline_completion = types.InlineCompletionClientCapabilities()
    # no workspace: the extra texts are the open documents alone
    options = {"completion": {"maxTokens": 8, "debounceMs": 0, "items": None}, "memory": {"workspace": False}}
    await client.initialize_session(types.InitializeParams(capabilities=caps, initialization_options=options))
    await wait_for(client, lambda s: s["state"] == "ready")
    yield client, fake
    await client.shutdown_session()
    await client.stop()
    fake.stop()


def request_inline(client, msg_id: str, uri: str, position: types.Position):
    params = types.InlineCompletionParams(
        types.InlineCompletionContext(types.InlineCompletionTriggerKind.Invoked),
        types.TextDocumentIdentifier(uri), position,
    )
    return asyncio.ensure_future(
        client.protocol.send_request_async(types.TEXT_DOCUMENT_INLINE_COMPLETION, params, msg_id=msg_id)
    )


def warnings(client) -> list[str]:
    return [m.message for m in client.messages if m.type <= types.MessageType.Warning]


module_loop = pytest.mark.asyncio(loop_scope="module")  # the served fixture's loop


@module_loop
async def test_status_names_the_team_servers_model(served):
    client, fake = served
    s = await status(client)
    assert s["state"] == "ready" and s["remote"] == fake.url and s["model"] == "fake/coder"
    assert s["device"] == "cuda:0" and s["error"] is None
    assert s["options"]["model"]["token"] == "(set)"  # never shown


@module_loop
async def test_completions_come_from_the_team_server_post_processed_here(served):
    client, fake = served
    fake.answer = "a + b\nprint('a second line')"
    open_doc(client, "remote_other.py", "def sub(a, b):\n    return a - b\n")
    open_doc(client, "remote_other.go", "package main\n", "go")
    uri = open_doc(client, "remote.py", PY)
    result = await inline(client, uri, RETURN)
    assert [item.insert_text for item in result.items] == ["a + b"]  # the single line kept here
    body = fake.infills()[-1]["body"]
    assert body["prefix"].endswith("def add(a, b):\n    return ") and body["suffix"].startswith("\n")
    assert body["single_line"] and 1 <= body["canvas"] <= 8 and body["sampler"]["tokens_per_step"] == 3
    extra = {e["filename"].rsplit("/", 1)[-1]: e["text"] for e in body["extra"]}
    assert set(extra) == {"remote_other.py", "remote.py", "remote.py" + AFTER_CURSOR}
    assert extra["remote.py"] == "import os\n\n"  # cut where the local memory goes blind
    assert extra["remote.py" + AFTER_CURSOR] == "\nprint(add(1, 2))\n"
    fake.answer = "a + b"


@module_loop
async def test_cancel_and_newer_requests_abort_the_http_request(served):
    client, fake = served
    uri = open_doc(client, "remote_cancel.py", PY.replace("add", "add_c"))
    fake.slow, fake.left = 1, threading.Event()
    pending = request_inline(client, "remote-cancel", uri, RETURN)
    await asyncio.sleep(0.3)
    t0 = time.monotonic()
    client.protocol.notify(types.CANCEL_REQUEST, types.CancelParams(id="remote-cancel"))
    with pytest.raises(JsonRpcRequestCancelled):
        await pending
    assert await asyncio.to_thread(fake.left.wait, 5.0) and time.monotonic() - t0 < 3.0  # not SLOW_S

    uri = open_doc(client, "remote_newer.py", PY.replace("add", "add_n"))
    fake.slow, fake.left = 1, threading.Event()
    older = request_inline(client, "remote-older", uri, RETURN)
    await asyncio.sleep(0.3)
    t0 = time.monotonic()
    newer = request_inline(client, "remote-newer", uri, types.Position(RETURN.line, RETURN.character - 1))
    assert not (await older).items and time.monotonic() - t0 < 3.0
    assert await asyncio.to_thread(fake.left.wait, 5.0)
    await newer


@module_loop
async def test_an_outage_is_reported_once_and_completions_resume(served):
    client, fake = served
    uri = open_doc(client, "remote_outage.py", PY.replace("add", "add_o"))
    told = len(warnings(client))
    fake.stop()
    assert not (await inline(client, uri, RETURN)).items
    s = await status(client)
    assert s["state"] == "unreachable" and "connection refused" in s["error"]
    assert not (await inline(client, uri, types.Position(RETURN.line, 4))).items
    assert len(warnings(client)) == told + 1 and fake.url in warnings(client)[-1]
    fake.start()
    for _ in range(40):
        await asyncio.sleep(0.1)
        if (await inline(client, uri, RETURN)).items:
            break
    s = await status(client)
    assert s["state"] == "ready" and s["error"] is None and s["model"] == "fake/coder"
    assert len(warnings(client)) == told + 1
    assert any("answers again" in m.message for m in client.log_messages)


@module_loop
async def test_a_refused_token_is_one_message_naming_the_option(served):
    client, fake = served
    uri = open_doc(client, "remote_token.py", PY.replace("add", "add_t"))
    told = len(warnings(client))
    fake.token = "rotated"
    await asyncio.sleep(0.6)  # past the backoff of the outage before, if any
    assert not (await inline(client, uri, RETURN)).items
    s = await status(client)
    assert s["state"] == "refused" and "model.token" in s["error"]
    assert len(warnings(client)) == told + 1 and "model.token" in warnings(client)[-1]
    fake.token = TOKEN
    await asyncio.sleep(0.6)
    assert (await inline(client, uri, RETURN)).items
    assert (await status(client))["state"] == "ready"


@module_loop
async def test_a_bad_remote_setting_is_one_warning_and_keeps_the_server(served):
    client, fake = served
    told = len(warnings(client))
    client.workspace_did_change_configuration(
        types.DidChangeConfigurationParams({"unmask": {"model": {"remote": "gpu-box:8000"}}})
    )
    s = await wait_for(client, lambda s: len(warnings(client)) > told, timeout=5)
    assert len(warnings(client)) == told + 1 and "'model.remote'" in warnings(client)[-1]
    assert s["state"] == "ready" and s["remote"] == fake.url
