"""`unmask team-server` under concurrent editors: completions per second and latency, batched and not.

    python -m bench.bench_team [--batches 16 1] [--clients 1 4 16] [--seconds 20] [--dtype auto]
                               [--model DIR] [--threads 0] [--cases 64]

For each --batches value a server is started in turn (`unmask team-server --max-batch B`, one replica, the
embedded model unless --model), then for each --clients count that many HTTP clients (threads, one
keep-alive connection each) send POST /v1/infill back to back for --seconds, after a warm-up. Requests are
realistic single-line completions: a cursor in the middle of a code line of this interpreter's standard
library (seeded), about 200 tokens of the text before it as the prefix, the rest of the line and the next
three lines as the suffix, canvas 16, single_line. Reported per cell: completions/s (answered requests over
the wall time), p50/p95 latency measured by the client, and the mean rows per forward from the server's
batch_sizes. Then the two checks of the target: at the most clients, batching's completions/s over
unbatched, and its p95 over its own single-client p95.
"""

from __future__ import annotations

import argparse
import http.client
import json
import math
import os
import random
import signal
import socket
import subprocess
import sys
import sysconfig
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CLI = [sys.executable, "-c", "import sys; from lsp_server.cli import main; sys.exit(main())"]
PREFIX_TOKENS = 200
START_S = 300


def cases(n: int, seed: int, count_tokens) -> list[dict]:
    """n single-line requests from the standard library (see the module docstring)."""
    rng = random.Random(seed)
    files = sorted(Path(sysconfig.get_paths()["stdlib"]).glob("*.py"))
    out = []
    while len(out) < n:
        lines = rng.choice(files).read_text(encoding="utf-8", errors="replace").splitlines(keepends=True)
        code = [i for i, line in enumerate(lines) if i > 60 and len(line.strip()) > 20
                and not line.lstrip().startswith(("#", '"', "'"))]
        if not code:
            continue
        i = rng.choice(code)
        line = lines[i]
        indent = len(line) - len(line.lstrip())
        cut = indent + rng.randint(1, len(line.rstrip()) - indent - 1)
        before = [line[:cut]]
        for j in range(i - 1, -1, -1):  # whole lines back until about PREFIX_TOKENS
            if count_tokens("".join(before)) >= PREFIX_TOKENS:
                break
            before.insert(0, lines[j])
        out.append({"prefix": "".join(before), "suffix": line[cut:] + "".join(lines[i + 1 : i + 4]),
                    "canvas": 16, "single_line": True})
    return out


class TeamServerProcess:
    def __init__(self, args: argparse.Namespace, max_batch: int):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        cmd = [*CLI, "team-server", "--port", str(self.port), "--max-batch", str(max_batch), "--dtype",
               args.dtype, "--threads", str(args.threads)] + (["--model", args.model] if args.model else [])
        self.proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, start_new_session=True,
                                     env={k: v for k, v in os.environ.items() if k != "UNMASK_TEAM_TOKEN"})
        line = self.proc.stdout.readline().decode()  # the one line printed when every replica is ready
        if "ready at" not in line:
            raise SystemExit(f"bench_team: the server did not start ({self.proc.wait()}): {line}")
        print(f"# {line.strip()}", flush=True)

    def get(self, path: str) -> dict:
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        c.request("GET", path)
        return json.loads(c.getresponse().read())

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)


def client(port: int, requests: list[dict], until: float, latencies: list[float], errors: list[str]) -> None:
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    i = random.randrange(len(requests))
    while time.perf_counter() < until:
        body = json.dumps(requests[i % len(requests)])
        i += 1
        t0 = time.perf_counter()
        c.request("POST", "/v1/infill", body, {"Content-Type": "application/json"})
        r = c.getresponse()
        data = r.read()
        if r.status != 200:
            errors.append(f"{r.status} {data[:200]!r}")
            continue
        latencies.append((time.perf_counter() - t0) * 1000)
    c.close()


def measure(server: TeamServerProcess, requests: list[dict], clients: int, seconds: float) -> dict:
    before = server.get("/v1/status")["batch_sizes"]
    latencies: list[float] = []
    errors: list[str] = []
    t0 = time.perf_counter()
    threads = [threading.Thread(target=client, args=(server.port, requests, t0 + seconds, latencies, errors))
               for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    after = server.get("/v1/status")["batch_sizes"]
    sizes = {int(k): v - before.get(k, 0) for k, v in after.items()}
    forwards = sum(sizes.values())
    ordered = sorted(latencies)

    def q(p: float) -> float:
        return ordered[min(len(ordered) - 1, max(0, math.ceil(p * len(ordered)) - 1))] if ordered else 0.0

    return {"clients": clients, "done": len(latencies), "errors": len(errors), "per_s": len(latencies) / wall,
            "p50": q(0.5), "p95": q(0.95), "rows": sum(k * v for k, v in sizes.items()) / max(forwards, 1),
            "first_error": errors[0] if errors else ""}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batches", type=int, nargs="+", default=[16, 1])
    p.add_argument("--clients", type=int, nargs="+", default=[1, 4, 16])
    p.add_argument("--seconds", type=float, default=20.0)
    p.add_argument("--warmup", type=int, default=8, help="requests per server before measuring")
    p.add_argument("--cases", type=int, default=64)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--model")
    p.add_argument("--dtype", default="auto")
    p.add_argument("--threads", type=int, default=0)
    args = p.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    from engine import load_model

    tokenizer_model = load_model(args.model, dtype="float32")
    requests = cases(args.cases, args.seed, tokenizer_model.count_tokens)
    del tokenizer_model
    rows = []
    for batch in args.batches:
        server = TeamServerProcess(args, batch)
        try:
            for r in requests[: args.warmup]:
                c = http.client.HTTPConnection("127.0.0.1", server.port, timeout=120)
                c.request("POST", "/v1/infill", json.dumps(r), {"Content-Type": "application/json"})
                c.getresponse().read()
            for n in args.clients:
                row = {"batch": batch, **measure(server, requests, n, args.seconds)}
                rows.append(row)
                print(f"# max batch {batch}, {n} clients: {row['done']} done, {row['per_s']:.2f}/s, "
                      f"p50 {row['p50']:.0f} ms, p95 {row['p95']:.0f} ms, {row['rows']:.2f} rows/forward"
                      + (f", {row['errors']} errors ({row['first_error']})" if row["errors"] else ""),
                      flush=True)
        finally:
            server.stop()
    print("\n| max batch | clients | completions/s | p50 ms | p95 ms | rows per forward | errors |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['batch']} | {r['clients']} | {r['per_s']:.2f} | {r['p50']:.0f} | {r['p95']:.0f} | "
              f"{r['rows']:.2f} | {r['errors']} |")
    cell = {(r["batch"], r["clients"]): r for r in rows}
    most, on, off = max(args.clients), max(args.batches), min(args.batches)
    if (on, most) in cell and (off, most) in cell and (on, min(args.clients)) in cell:
        speedup = cell[on, most]["per_s"] / max(cell[off, most]["per_s"], 1e-9)
        p95 = cell[on, most]["p95"] / max(cell[on, min(args.clients)]["p95"], 1e-9)
        print(f"\n{most} clients: batching gives {speedup:.2f}x the completions/s of max batch {off} "
              f"(target >= 2); its p95 is {p95:.2f}x its single-client p95 (target <= 2)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
