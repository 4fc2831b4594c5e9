"""Single-line latency while the server adapts the model in the background, against the same server idle.

    python -m bench.latency_adapting [--workspace DIR] [--rounds 3] [--requests 20] [--threads 0]

One `python -m lsp_server` (the embedded model) with DIR as its workspace (default: this repository) and a
fresh cache. Rounds alternate: `adapt.enabled: false` (idle), then `true` with a long budget (the adaptation
process running, checked in `unmask/status` before and after the block); each block asks --requests
single-line completions (bench/bench_lsp.py `single_line`: stdlib lines cut at random, invoked). Prints the
p50/p95 of each condition over all its blocks and their ratio, measured in this one run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.bench_lsp import ROOT, Client, cursors, inline_params, open_doc, percentile  # noqa: E402


async def block(client: Client, n: int, seed: int) -> list[float]:
    out = []
    for i, (text, line, col, _) in enumerate(cursors(n, seed)):
        uri = f"file:///bench/adapting_{seed}_{i}.py"
        open_doc(client, uri, text)
        await asyncio.sleep(0.2)
        t0 = time.perf_counter()
        t1, _ = await client.request("textDocument/inlineCompletion", inline_params(uri, line, col, False))
        out.append((t1 - t0) * 1000)
        client.notify("textDocument/didClose", {"textDocument": {"uri": uri}})
    return out


async def status(client: Client) -> dict:
    return (await client.request("unmask/status"))[1]["result"]


async def until(client: Client, test, limit_s: float = 300) -> dict:
    t0 = time.monotonic()
    while time.monotonic() - t0 < limit_s:
        if test(s := await status(client)):
            return s
        await asyncio.sleep(0.2)
    raise SystemExit(f"the server never got there: {json.dumps(s)[:500]}")


async def main(args: argparse.Namespace) -> dict:
    with tempfile.TemporaryDirectory(prefix="latency_adapting_") as cache:
        command = [sys.executable, "-m", "lsp_server", "--threads", str(args.threads)]
        process = await asyncio.create_subprocess_exec(
            *command, cwd=ROOT, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            env={**__import__("os").environ, "XDG_CACHE_HOME": cache})
        client = Client(process)
        caps = {"textDocument": {"inlineCompletion": {}}, "general": {"positionEncodings": ["utf-16"]}}
        await client.request("initialize", {"capabilities": caps, "processId": None,
                                            "rootUri": args.workspace.resolve().as_uri(),
                                            "initializationOptions": {"adapt": {"enabled": False}}})
        client.notify("initialized", {})
        await until(client, lambda s: s["state"] == "ready")
        await block(client, 3, 99)  # warm-up
        times: dict[str, list[float]] = {"idle": [], "adapting": []}
        for r in range(args.rounds):
            for condition in ("idle", "adapting"):
                on = condition == "adapting"
                client.notify("workspace/didChangeConfiguration",
                              {"settings": {"adapt": {"enabled": on, "minutes": 60}}})
                await asyncio.sleep(0.5)
                await until(client, lambda s, on=on: s["state"] == "ready" and (
                    s["adaptation"]["state"] == "running" if on else s["adaptation"]["state"] == "off"))
                if on:
                    await asyncio.sleep(args.after_start_s)  # past the process's start (imports, tokenizing)
                times[condition] += await block(client, args.requests, 1000 * r + on)
                if on and (await status(client))["adaptation"]["state"] != "running":
                    raise SystemExit("the adaptation stopped during the block")
        await client.request("shutdown")
        client.notify("exit", {})
        await process.wait()
    report = {c: {"requests": len(v), "p50_ms": round(statistics.median(v), 1),
                  "p95_ms": round(percentile(v, 0.95), 1)} for c, v in times.items()}
    report["p50_ratio"] = round(report["adapting"]["p50_ms"] / report["idle"]["p50_ms"], 3)
    return report


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workspace", type=Path, default=ROOT)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--requests", type=int, default=20)
    p.add_argument("--after-start-s", type=float, default=20.0)
    p.add_argument("--threads", type=int, default=0, help="server's torch threads (0: its default)")
    print(json.dumps(asyncio.run(main(p.parse_args())), indent=2))
