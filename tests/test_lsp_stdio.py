"""Bad input over raw stdio: every request gets an answer, and the server keeps serving afterwards."""

import asyncio
import json
import sys

import pytest

from tests.test_lsp_server import ENV, PY

pytestmark = pytest.mark.asyncio(loop_scope="module")
URI = "file:///project/a.py"


class RawClient:
    """JSON-RPC over the server's stdio, with frames written byte for byte."""

    def __init__(self, process: asyncio.subprocess.Process):
        self.process = process
        self.received: list[dict] = []

    def write(self, body: bytes) -> None:
        self.process.stdin.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)

    def send(self, message) -> None:
        self.write(json.dumps(message).encode())

    async def read(self) -> dict:
        length = None
        while (line := await self.process.stdout.readline()) not in (b"\r\n", b""):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        message = json.loads(await self.process.stdout.readexactly(length))
        self.received.append(message)
        return message

    async def answer(self, match) -> dict:
        """The next response that match(response) accepts (server requests are answered with null)."""
        while True:
            message = await asyncio.wait_for(self.read(), 30)
            if "method" in message and "id" in message:
                self.send({"jsonrpc": "2.0", "id": message["id"], "result": None})
            elif "method" not in message and match(message):
                return message


async def test_bad_frames_get_errors_and_the_server_keeps_serving(tiny_checkpoint):
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "lsp_server",
        "--model",
        str(tiny_checkpoint),
        env=ENV,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    c = RawClient(process)
    c.send({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"capabilities": {}}})
    caps = (await c.answer(lambda m: m.get("id") == 1))["result"]["capabilities"]
    assert "completionProvider" in caps  # a client without inline completion gets completion items
    c.send({"jsonrpc": "2.0", "method": "initialized", "params": {}})

    c.write(b"{not json")
    reply = await c.answer(lambda m: True)
    assert reply["id"] is None and reply["error"]["code"] == -32700  # JSON-RPC: parse error, id null
    c.write(b'{"jsonrpc": "2.0", "id": 2, "method": "x", "params": "\xff\xfe"}')  # not UTF-8
    assert (await c.answer(lambda m: True))["error"]["code"] == -32700
    c.send([1, 2, 3])
    assert (await c.answer(lambda m: True))["error"]["code"] == -32600

    position = {"textDocument": {"uri": URI}, "position": {"line": -1, "character": 0}}
    c.send({"jsonrpc": "2.0", "id": 3, "method": "textDocument/completion", "params": position})
    error = (await c.answer(lambda m: m.get("id") == 3))["error"]
    assert error["code"] == -32602 and "Position.line" in error["message"]
    c.send({"jsonrpc": "2.0", "id": 4, "method": "unknown/method", "params": {}})
    assert (await c.answer(lambda m: m.get("id") == 4))["error"]["code"] == -32601
    c.send(
        {
            "jsonrpc": "2.0",
            "method": "textDocument/didChange",
            "params": {
                "textDocument": {"uri": "file:///never/opened.py", "version": 2},
                "contentChanges": [
                    {
                        "range": {"start": {"line": 0, "character": 0}, "end": {"line": 0, "character": 0}},
                        "text": "x",
                    }
                ],
            },
        }
    )

    c.send(
        {
            "jsonrpc": "2.0",
            "method": "textDocument/didOpen",
            "params": {"textDocument": {"uri": URI, "languageId": "python", "version": 1, "text": PY}},
        }
    )
    c.send({"jsonrpc": "2.0", "id": 5, "method": "unmask/status"})  # no params at all
    for _ in range(600):
        if (await c.answer(lambda m: m.get("id") == 5))["result"]["state"] == "ready":
            break
        await asyncio.sleep(0.05)
        c.send({"jsonrpc": "2.0", "id": 5, "method": "unmask/status"})
    inline = {
        "textDocument": {"uri": URI},
        "position": {"line": 3, "character": 11},
        "context": {"triggerKind": 1},
    }
    c.send({"jsonrpc": "2.0", "id": 6, "method": "textDocument/inlineCompletion", "params": inline})
    assert (await c.answer(lambda m: m.get("id") == 6))["result"]["items"]

    assert not [m for m in c.received if m.get("method") == "window/showMessage"]
    c.send({"jsonrpc": "2.0", "id": 7, "method": "shutdown"})
    await c.answer(lambda m: m.get("id") == 7)
    c.send({"jsonrpc": "2.0", "method": "exit"})
    assert await asyncio.wait_for(process.wait(), 30) == 0


async def test_stdio_flag_and_empty_array_options_are_accepted(tiny_checkpoint):
    # clients commonly pass --stdio; Neovim 0.7 encodes empty initializationOptions as []
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "lsp_server", "--stdio", "--model", str(tiny_checkpoint), env=ENV,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
    )
    c = RawClient(process)
    c.send({"jsonrpc": "2.0", "id": 1, "method": "initialize",
            "params": {"capabilities": {}, "initializationOptions": []}})
    assert "capabilities" in (await c.answer(lambda m: m.get("id") == 1))["result"]
    c.send({"jsonrpc": "2.0", "method": "initialized", "params": {}})
    c.send({"jsonrpc": "2.0", "id": 2, "method": "unmask/status", "params": {}})
    await c.answer(lambda m: m.get("id") == 2)
    warnings = [m for m in c.received if m.get("method") == "window/showMessage"]
    assert warnings == []
    process.kill()
    await process.wait()
