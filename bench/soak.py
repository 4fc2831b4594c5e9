"""Soak: many requests through a real server over stdio, with edits, cancellations and documents opened and
closed, then checks that nothing was dropped, drifted or leaked.

    python -m bench.soak [--requests 10000] [--docs 50] [--open 12] [--window 4] [--seed 0] [--quick]

Spawns `python -m lsp_server` (embedded model, default options unless --options) and drives it from this
process with raw JSON-RPC. The documents (--docs, default 50) are real code in every language the server
serves: Python from this interpreter's standard library, the others from tests/data/infill, written to a
temporary folder (so the server reads their folder into its memory, as an editor's files). At most --open
are open at once. Each step is one of: typing (didChange inserting a character at the cursor, then an
automatic `textDocument/inlineCompletion` or `textDocument/completion` for the new cursor), a deletion, a
paste of several lines with non-ASCII and astral characters, an invoked request somewhere else in the
document, a `$/cancelRequest` for a request in flight, or closing a document and opening another (with the
client's current text). At most --window requests are in flight; --requests counts the completion requests.

Checks, all reported: every request answered with a result or an error (JSON-RPC), by outcome; after the
run, every open document's text in both of the server's copies equal to the client's (`unmask/document`);
resident memory (VmRSS of the server process) and the open documents' hashes after every --sample-every
(1,000) requests, memory against where it stood after the first 1,000 (pass: at the end within 10% of it);
the server's stderr by log level (pass: no ERROR line nor traceback). Exits 1 if a check fails.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import random
import re
import statistics
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.bench_lsp import ROOT, Client, percentile  # noqa: E402

LINE_BREAK = re.compile(r"\r\n|\r|\n")
EXTENSIONS = {"python": "py", "javascript": "js", "typescript": "ts", "tsx": "tsx", "go": "go", "rust": "rs",
              "java": "java", "c": "c", "cpp": "cpp"}
LANGUAGE_IDS = {"tsx": "typescriptreact"}
PASTES = ["x = ('é', '中', '😀')\n", "\n# 𝔘nicode ✓\n", "    total += 1\n    return total\n", "\r\n"]
TYPED = "for item in items: result.append(item)  # 𝔘 "


def position(text: str, offset: int) -> dict:
    """The LSP position (UTF-16) of a code-point offset."""
    line, start = 0, 0
    for m in LINE_BREAK.finditer(text, 0, offset):
        if m.end() > offset:
            break
        line, start = line + 1, m.end()
    units = len(text[start:offset].encode("utf-16-le")) // 2
    return {"line": line, "character": units}


def snap(text: str, offset: int) -> int:
    """offset, or the start of the CRLF it splits: no LSP position lies between "\r" and "\n" (an editor
    never puts a cursor there)."""
    return offset - 1 if 0 < offset < len(text) and text[offset - 1 : offset + 1] == "\r\n" else offset


def sources(n: int, rng: random.Random) -> list[tuple[str, str]]:
    """(language, text) for n documents: a third Python from the standard library, the rest spread over the
    other languages' golden files (cursor marker removed)."""
    golden = sorted(p for p in (ROOT / "tests/data/infill").glob("*/*") if p.suffix != ".toml")
    stdlib = sorted(Path(sysconfig.get_paths()["stdlib"]).glob("*.py"))
    out = []
    for i in range(n):
        if i % 3 == 0:
            path = rng.choice([p for p in stdlib if p.stat().st_size < 60_000])
            out.append(("python", path.read_text(encoding="utf-8", errors="replace")))
        else:
            path = golden[i % len(golden)]
            out.append((path.parent.name, path.read_text(encoding="utf-8").replace("<CURSOR>", "")))
    return out


class Doc:
    def __init__(self, path: Path, language: str, text: str):
        self.uri, self.language, self.text = path.as_uri(), language, text
        self.version, self.cursor, self.open = 0, len(text) // 2, False

    def change(self, start: int, end: int, new: str) -> dict:
        """The didChange params replacing text[start:end] with new, applied to the client's copy."""
        start, end = snap(self.text, start), snap(self.text, end)
        r = {"start": position(self.text, start), "end": position(self.text, end)}
        self.text = self.text[:start] + new + self.text[end:]
        self.version += 1
        self.cursor = start + len(new)
        return {"textDocument": {"uri": self.uri, "version": self.version},
                "contentChanges": [{"range": r, "text": new}]}


class Soak:
    def __init__(self, client: Client, docs: list[Doc], args: argparse.Namespace):
        self.client, self.docs, self.args = client, docs, args
        self.rng = random.Random(args.seed)
        self.inflight: dict[int, tuple[str, float, asyncio.Future]] = {}  # id -> (method, sent, future)
        self.outcomes: dict[str, int] = {}
        self.latency: dict[str, list[float]] = {}
        self.sent = 0
        self.cancels = 0
        self.drifts: list[dict] = []  # documents found drifted at a sample

    def notify(self, method: str, params: dict) -> None:
        self.client.notify(method, params)

    def open(self, doc: Doc) -> None:
        doc.version, doc.open = doc.version + 1, True
        lang = LANGUAGE_IDS.get(doc.language, doc.language)
        item = {"uri": doc.uri, "languageId": lang, "version": doc.version, "text": doc.text}
        self.notify("textDocument/didOpen", {"textDocument": item})

    def close(self, doc: Doc) -> None:
        doc.open = False
        self.notify("textDocument/didClose", {"textDocument": {"uri": doc.uri}})

    def ask(self, doc: Doc, automatic: bool) -> None:
        method = "textDocument/inlineCompletion" if self.rng.random() < 0.6 else "textDocument/completion"
        params = {"textDocument": {"uri": doc.uri}, "position": position(doc.text, doc.cursor)}
        if method.endswith("inlineCompletion"):
            params["context"] = {"triggerKind": 2 if automatic else 1}
        else:
            params["context"] = {"triggerKind": 3 if automatic else 1}  # 3: incomplete, re-asked while typing
        future = self.client.request(method, params)
        self.inflight[self.client.next_id] = (method, time.perf_counter(), future)
        self.sent += 1

    def step(self, doc: Doc) -> None:
        roll = self.rng.random()
        if roll < 0.55:  # typing at the cursor, then an automatic request
            ch = TYPED[self.rng.randrange(len(TYPED))]
            self.notify("textDocument/didChange", doc.change(doc.cursor, doc.cursor, ch))
            self.ask(doc, automatic=True)
        elif roll < 0.65 and doc.cursor > 0:  # backspace over a few characters
            self.notify("textDocument/didChange", doc.change(max(0, doc.cursor - self.rng.randint(1, 4)),
                                                             doc.cursor, ""))
        elif roll < 0.70:  # a paste somewhere
            at = self.rng.randrange(len(doc.text) + 1)
            self.notify("textDocument/didChange", doc.change(at, at, self.rng.choice(PASTES)))
        elif roll < 0.90:  # invoked elsewhere: the cursor jumps to the end of a random line
            line_ends = [m.start() for m in LINE_BREAK.finditer(doc.text)] or [len(doc.text)]
            doc.cursor = self.rng.choice(line_ends)
            self.ask(doc, automatic=False)
        elif self.inflight:  # cancel one in flight
            rid = self.rng.choice(list(self.inflight))
            self.notify("$/cancelRequest", {"id": rid})
            self.cancels += 1

    def settle(self, done: list[int]) -> None:
        for rid in done:
            method, sent, future = self.inflight.pop(rid)
            at, message = future.result()
            outcome = outcome_of(message)
            key = f"{method.split('/')[-1]}:{outcome}"
            self.outcomes[key] = self.outcomes.get(key, 0) + 1
            self.latency.setdefault(key, []).append((at - sent) * 1000)

    async def run(self, pid: int) -> list[dict]:
        """Samples every --sample-every requests: resident memory, and drift of the open documents."""
        samples, last_sample, t0 = [], 0, time.perf_counter()
        opened = [d for d in self.docs if d.open]
        while self.sent < self.args.requests or self.inflight:
            self.settle([rid for rid, (_, _, f) in self.inflight.items() if f.done()])
            if self.sent >= self.args.requests or len(self.inflight) >= self.args.window:
                await asyncio.sleep(0.002)
                continue
            if self.rng.random() < 0.01:  # switch files: close one, open another
                shut = self.rng.choice(opened)
                self.close(shut)
                fresh = self.rng.choice([d for d in self.docs if not d.open])
                self.open(fresh)
                opened = [d for d in self.docs if d.open]
            self.step(self.rng.choice(opened))
            await asyncio.sleep(0)  # let responses in
            if self.sent // self.args.sample_every > last_sample:
                last_sample = self.sent // self.args.sample_every
                drift = await check_documents(self.client, opened)
                t = round(time.perf_counter() - t0)
                samples.append({"requests": self.sent, "rss_mb": rss_mb(pid), "t_s": t,
                                "drifted": len(drift["drifted"])})
                self.drifts += drift["drifted"]
                print(json.dumps(samples[-1]), file=sys.stderr, flush=True)
        return samples


def outcome_of(message: dict) -> str:
    if "error" in message:
        return f"error{message['error'].get('code')}"
    if "result" not in message:
        return "malformed"
    items = (message["result"] or {}).get("items")
    return "answered" if items else "empty"


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return float("nan")


async def check_documents(client: Client, docs: list[Doc]) -> dict:
    drifted = []
    for doc in docs:
        _, reply = await client.request("unmask/document", {"textDocument": {"uri": doc.uri}})
        held = reply.get("result")
        want = hashlib.sha256(doc.text.encode()).hexdigest()
        if held is None or held["sha256"] != want or held["engineSha256"] != want:
            drifted.append({"uri": doc.uri, "held": held, "client_length": len(doc.text)})
    return {"checked": len(docs), "drifted": drifted}


async def main(args: argparse.Namespace) -> dict:
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        docs = [Doc(Path(tmp) / f"doc{i}.{EXTENSIONS[lang]}", lang, text)
                for i, (lang, text) in enumerate(sources(args.docs, rng))]
        for doc in docs:
            Path(doc.uri.removeprefix("file://")).write_text(doc.text, encoding="utf-8")
        command = [sys.executable, "-m", "lsp_server"]
        log = (Path(tmp) / "server.log").open("wb")
        process = await asyncio.create_subprocess_exec(
            *command, cwd=ROOT, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=log)
        client = Client(process)
        caps = {"textDocument": {"inlineCompletion": {}}, "general": {"positionEncodings": ["utf-16"]}}
        await client.request("initialize", {"capabilities": caps, "processId": None, "rootUri": None,
                                            "initializationOptions": json.loads(args.options)})
        client.notify("initialized", {})
        while (await client.request("unmask/status"))[1]["result"]["state"] == "loading":
            await asyncio.sleep(0.1)
        soak = Soak(client, docs, args)
        for doc in docs[: args.open]:
            soak.open(doc)
        t0 = time.perf_counter()
        rss = await soak.run(process.pid)
        elapsed = time.perf_counter() - t0
        documents = await check_documents(client, [d for d in docs if d.open])
        status = (await client.request("unmask/status"))[1]["result"]
        rss_end = rss_mb(process.pid)
        await client.request("shutdown")
        client.notify("exit", {})
        exit_status = await process.wait()
        log.close()
        logged = log_levels((Path(tmp) / "server.log").read_text(errors="replace"))
    return report(args, soak, rss, rss_end, documents, status, elapsed, exit_status, logged)


def log_levels(text: str) -> dict:
    """Counts of the server's stderr lines by level, and its first ERROR lines and tracebacks."""
    counts: dict[str, int] = {}
    for line in text.splitlines():
        level = line.split(" ", 1)[0] if line[:1].isupper() else "other"
        counts[level] = counts.get(level, 0) + 1
    errors = [line for line in text.splitlines() if line.startswith(("ERROR", "CRITICAL", "Traceback"))]
    return {"lines": counts, "errors": errors[:5]}


def report(args, soak: Soak, rss, rss_end, documents, status, elapsed, exit_status, logged) -> dict:
    answered = sum(soak.outcomes.values())
    settled = rss[0]["rss_mb"] if rss else None
    growth = None if settled is None else round(rss_end / settled - 1, 4)
    return {
        "requests": soak.sent,
        "responses": answered,
        "cancel_notifications": soak.cancels,
        "outcomes": dict(sorted(soak.outcomes.items())),
        "latency_ms": {k: {"p50": round(statistics.median(v), 1), "p95": round(percentile(v, 0.95), 1)}
                       for k, v in sorted(soak.latency.items())},
        "seconds": round(elapsed, 1),
        "rss_mb": rss,
        "rss_end_mb": rss_end,
        "rss_growth_since_first_sample": growth,
        "documents": documents,
        "drift_during_run": soak.drifts[:5],
        "server_log": logged,
        "server_requests": status.get("requests"),
        "server_memory": status.get("memory"),
        "exit_status": exit_status,
        "pass": {
            "every_request_answered": answered == soak.sent and "malformed" not in str(soak.outcomes),
            "documents_equal": not documents["drifted"] and not any(s["drifted"] for s in rss),
            "no_errors_logged": not logged["errors"],
            "rss_within_10pct": growth is None or abs(growth) <= 0.10,
            "clean_exit": exit_status == 0,
        },
        "args": vars(args),
    }


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--requests", type=int, default=10_000)
    p.add_argument("--docs", type=int, default=50)
    p.add_argument("--open", type=int, default=12, help="documents open at once")
    p.add_argument("--window", type=int, default=4, help="requests in flight at most")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--sample-every", type=int, default=1000,
                   help="requests between samples of memory and document drift (the first is the baseline)")
    p.add_argument("--options", default="{}", help="initializationOptions JSON")
    p.add_argument("--quick", action="store_true", help="300 requests over 10 documents, sampled every 50")
    cli = p.parse_args()
    if cli.quick:
        cli.requests, cli.docs, cli.open, cli.sample_every = 300, 10, 5, 50
    result = asyncio.run(main(cli))
    print(json.dumps(result, indent=1))
    sys.exit(0 if all(result["pass"].values()) else 1)
