"""A blocking JSON-RPC client for `python -m lsp_server` over stdio that writes frames byte for byte, for
tests that drive the server from hypothesis (which runs examples synchronously)."""

from __future__ import annotations

import hashlib
import json
import queue
import subprocess
import sys
import threading

from tests.test_lsp_server import ENV, ROOT

TIMEOUT_S = 60.0


class RawServer:
    """The server process; server-to-client requests are answered with null by the reader thread."""

    def __init__(self, checkpoint, options: dict | None = None, root_uri: str | None = None,
                 env: dict | None = None):
        self.process = subprocess.Popen(
            [sys.executable, "-m", "lsp_server", "--model", str(checkpoint)], cwd=ROOT,
            env={**ENV, **(env or {})},
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        )
        self.messages: queue.Queue[dict | None] = queue.Queue()
        self.next_id = 0
        self.skipped: list[dict] = []  # responses that response() passed over, in order
        self._lock = threading.Lock()
        threading.Thread(target=self._read, daemon=True).start()
        caps = {"textDocument": {"inlineCompletion": {}}, "general": {"positionEncodings": ["utf-16"]}}
        self.request("initialize", {"capabilities": caps, "initializationOptions": options or {},
                                    "rootUri": root_uri})
        self.notify("initialized", {})

    def _read(self) -> None:
        out = self.process.stdout
        while True:
            length = None
            while (line := out.readline()) not in (b"\r\n", b""):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            if length is None:
                self.messages.put(None)  # the server closed its stdout
                return
            message = json.loads(out.read(length))
            if "method" in message and "id" in message:
                self.send({"jsonrpc": "2.0", "id": message["id"], "result": None})
            self.messages.put(message)

    def write(self, data: bytes) -> None:
        with self._lock:
            self.process.stdin.write(data)
            self.process.stdin.flush()

    def frame(self, body: bytes) -> None:
        self.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)

    def send(self, message) -> None:
        self.frame(json.dumps(message).encode())

    def notify(self, method: str, params) -> None:
        self.send({"jsonrpc": "2.0", "method": method, "params": params})

    def ask(self, method: str, params) -> int:
        """Send a request; its id."""
        self.next_id += 1
        self.send({"jsonrpc": "2.0", "id": self.next_id, "method": method, "params": params})
        return self.next_id

    def response(self, match) -> dict:
        """The next response (not a server request or notification) that match(response) accepts; the
        responses before it go to self.skipped."""
        while True:
            message = self.messages.get(timeout=TIMEOUT_S)
            if message is None:
                raise AssertionError(f"the server exited (status {self.process.poll()})")
            if "method" not in message:
                if match(message):
                    return message
                self.skipped.append(message)

    def request(self, method: str, params=None) -> dict:
        """The response to a request sent now."""
        rid = self.ask(method, params)
        return self.response(lambda m: m.get("id") == rid)

    def document(self, uri: str) -> dict | None:
        return self.request("unmask/document", {"textDocument": {"uri": uri}})["result"]

    def stop(self) -> int:
        self.request("shutdown")
        self.notify("exit", None)
        return self.process.wait(TIMEOUT_S)


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()
