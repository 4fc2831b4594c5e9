"""The language server as an editor sees it: latency over stdio from a separate client process.

    python -m bench.bench_lsp [--model DIR] [--requests 50] [--burst 50] [--options JSON] [--threads N]
                              [--settle-ms 200]

Spawns `python -m lsp_server` (the embedded model unless --model) and speaks raw JSON-RPC to it.

- Single line: at --requests cursors in this interpreter's standard library (seeded), the rest of a code
  line is deleted and the cursor left at a random point of it; each cursor is its own freshly opened
  document (no cache hits), asked with an invoked `textDocument/inlineCompletion` --settle-ms after the
  didOpen (as when a file is opened and then edited; with 0 the server's parse of the new document falls
  inside the first request's latency). Latency is measured by the client, request written to response
  read; p50/p95 over all requests, answered or empty.
- Burst: in one document a line is typed one character at a time, each keystroke a didChange and an
  automatic inline request, sent back to back (--burst keystrokes). Checks that every older request was
  answered (superseded: empty) no later than the newest one, and reports the newest's latency.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import sysconfig
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


class Client:
    """Raw JSON-RPC over a server's stdio; server-to-client requests are answered with null."""

    def __init__(self, process: asyncio.subprocess.Process):
        self.process, self.next_id, self.pending = process, 0, {}
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        while True:
            length = None
            while (line := await self.process.stdout.readline()) not in (b"\r\n", b""):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            if length is None:
                return
            message = json.loads(await self.process.stdout.readexactly(length))
            self.received(message)
            if "method" in message and "id" in message:
                self.notify_raw({"jsonrpc": "2.0", "id": message["id"], "result": None})
            elif "id" in message and message["id"] in self.pending:
                self.pending.pop(message["id"]).set_result((time.perf_counter(), message))

    def received(self, message: dict) -> None:
        """Every message from the server, before it is answered or matched to its request."""

    def notify_raw(self, message: dict) -> None:
        body = json.dumps(message).encode()
        self.process.stdin.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)

    def notify(self, method: str, params: dict) -> None:
        self.notify_raw({"jsonrpc": "2.0", "method": method, "params": params})

    def request(self, method: str, params: dict | None = None) -> asyncio.Future:
        """Future of (time read, response); sent at once."""
        self.next_id += 1
        future = asyncio.get_running_loop().create_future()
        self.pending[self.next_id] = future
        self.notify_raw({"jsonrpc": "2.0", "id": self.next_id, "method": method, "params": params})
        return future


def inline_params(uri: str, line: int, character: int, automatic: bool) -> dict:
    return {
        "textDocument": {"uri": uri},
        "position": {"line": line, "character": character},
        "context": {"triggerKind": 2 if automatic else 1},
    }


def open_doc(client: Client, uri: str, text: str) -> None:
    client.notify(
        "textDocument/didOpen",
        {"textDocument": {"uri": uri, "languageId": "python", "version": 1, "text": text}},
    )


def cursors(n: int, seed: int) -> list[tuple[str, int, int, str]]:
    """(document text, line, character, deleted text): a code line cut at a random point, the rest of it
    deleted."""
    rng = random.Random(seed)
    files = sorted(Path(sysconfig.get_paths()["stdlib"]).glob("*.py"))
    out = []
    while len(out) < n:
        lines = rng.choice(files).read_text(encoding="utf-8", errors="replace").split("\n")
        row = rng.randrange(len(lines))
        code = lines[row].strip()
        if len(code) < 12 or code.startswith(("#", '"', "'")):
            continue
        indent = len(lines[row]) - len(lines[row].lstrip())
        col = indent + rng.randrange(4, len(code) - 2)
        deleted, lines[row] = lines[row][col:], lines[row][:col]
        out.append(("\n".join(lines), row, col, deleted))
    return out


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def single_line(client: Client, n: int, seed: int, settle_s: float) -> dict:
    latencies, answered = [], 0
    for i, (text, line, col, _) in enumerate(cursors(n, seed)):
        uri = f"file:///bench/single_{i}.py"
        open_doc(client, uri, text)
        await asyncio.sleep(settle_s)
        t0 = time.perf_counter()
        t1, response = await client.request(
            "textDocument/inlineCompletion", inline_params(uri, line, col, False)
        )
        latencies.append((t1 - t0) * 1000)
        answered += bool(response["result"]["items"])
        client.notify("textDocument/didClose", {"textDocument": {"uri": uri}})
    return {
        "requests": n,
        "answered": answered,
        "p50_ms": round(statistics.median(latencies), 1),
        "p95_ms": round(percentile(latencies, 0.95), 1),
        "max_ms": round(max(latencies), 1),
    }


async def burst(client: Client, keystrokes: int) -> dict:
    head = "import os\n\n\ndef walk_sizes(root):\n    total = 0\n    "
    typed = "for name in os.listdir(root): total += os.path.getsize(os.path.join(root, name))  # sum"
    typed = (typed * (keystrokes // len(typed) + 1))[:keystrokes]
    uri, line = "file:///bench/burst.py", head.count("\n")
    open_doc(client, uri, head + "\n    return total\n")
    sent, futures = [], []
    for i, ch in enumerate(typed):
        change = {
            "range": {"start": {"line": line, "character": 4 + i}, "end": {"line": line, "character": 4 + i}},
            "text": ch,
        }
        client.notify(
            "textDocument/didChange",
            {"textDocument": {"uri": uri, "version": i + 2}, "contentChanges": [change]},
        )
        sent.append(time.perf_counter())
        futures.append(client.request("textDocument/inlineCompletion", inline_params(uri, line, 5 + i, True)))
    results = await asyncio.gather(*futures)
    newest_at = results[-1][0]
    late = sum(at > newest_at for at, _ in results[:-1])
    empty_older = sum(not r["result"]["items"] for _, r in results[:-1])
    return {
        "keystrokes": keystrokes,
        "older_answered_after_newest": late,
        "older_empty": empty_older,
        "newest_answered": bool(results[-1][1]["result"]["items"]),
        "newest_ms_after_last_keystroke": round((newest_at - sent[-1]) * 1000, 1),
        "burst_ms": round((newest_at - sent[0]) * 1000, 1),
    }


async def main(args: argparse.Namespace) -> dict:
    command = [
        sys.executable,
        "-m",
        "lsp_server",
        *(["--model", args.model] if args.model else []),
        "--threads",
        str(args.threads),
    ]
    process = await asyncio.create_subprocess_exec(
        *command, cwd=ROOT, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE
    )
    client = Client(process)
    caps = {"textDocument": {"inlineCompletion": {}}, "general": {"positionEncodings": ["utf-16"]}}
    options = json.loads(args.options) if args.options else {}
    await client.request(
        "initialize",
        {"capabilities": caps, "initializationOptions": options, "processId": None, "rootUri": None},
    )
    client.notify("initialized", {})
    while (status := (await client.request("unmask/status"))[1]["result"])["state"] == "loading":
        await asyncio.sleep(0.1)
    if status["state"] != "ready":
        raise SystemExit(f"model failed to load: {status['error']}")
    settle_s = args.settle_ms / 1000
    await single_line(client, 3, args.seed + 1, settle_s)  # warm-up, not counted
    report = {
        "server": status | {"latencies_ms": None, "requests": None},
        "settle_ms": args.settle_ms,
        "single_line": await single_line(client, args.requests, args.seed, settle_s),
        "burst": await burst(client, args.burst),
    }
    report["server_latencies_ms"] = (await client.request("unmask/status"))[1]["result"]["latencies_ms"]
    await client.request("shutdown")
    client.notify("exit", {})
    await process.wait()
    return report


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", help="checkpoint folder (default: the embedded model)")
    p.add_argument("--requests", type=int, default=50)
    p.add_argument("--burst", type=int, default=50)
    p.add_argument("--settle-ms", type=float, default=200, help="pause between didOpen and the request")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=0, help="server's torch threads (0: its default)")
    p.add_argument(
        "--options", help='initializationOptions JSON, e.g. \'{"completion": {"debounceMs": 50}}\''
    )
    print(json.dumps(asyncio.run(main(p.parse_args())), indent=2))
