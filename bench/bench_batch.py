"""Continuous batching (engine/batch.py): completions/s and latency with 1, 4, 16 concurrent submitters,
max_batch=16 against max_batch=1 (one request at a time, first come first served).

    python -m bench.bench_batch [--model DIR] [--threads 1] [--clients 1 4 16] [--seconds 20]

Requests are single-line completions cut from this interpreter's standard library: the cursor inside a
line of code, about `--prefix-tokens` tokens before it, the next few lines after the line as the suffix,
a canvas of 16. Each submitter sends its next request when its last one is answered (closed loop); after
`--warmup` seconds, the requests answered within the next `--seconds` are counted (steady state, no ramp
down); latency is submit to answer. "per model-thread CPU s" divides the completions by
the CPU time of the thread that runs the model instead of the wall time: on a machine shared with other
jobs it shows the work batching saves, where wall times swing with the neighbours' load. "agrees" is the
share of answers equal to the max_batch=1 run's for the same requests (both with the context cache). One
run, one machine: compare the ratios.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sysconfig
import threading
import time
from pathlib import Path

import torch

import engine
from engine.batch import Batcher, InfillRequest
from engine.params import InfillParams


def make_requests(model: engine.DiffusionLM, n: int, prefix_tokens: int, suffix_lines: int, canvas: int,
                  seed: int) -> list[InfillRequest]:
    rng = random.Random(seed)
    files = sorted(Path(sysconfig.get_paths()["stdlib"]).glob("*.py"))
    out: list[InfillRequest] = []
    while len(out) < n:
        text = rng.choice(files).read_text(encoding="utf-8", errors="replace")
        lines = text.splitlines(keepends=True)
        candidates = [i for i, line in enumerate(lines) if i > 20 and len(line.strip()) >= 12
                      and not line.strip().startswith("#")]
        if not candidates:
            continue
        i = rng.choice(candidates)
        line = lines[i]
        indent = len(line) - len(line.lstrip())
        cut = rng.randrange(indent + 2, len(line.rstrip()) - 2)  # inside the line's code
        before = lines[:i] + [line[:cut]]
        start = i
        while start > 0 and model.count_tokens("".join(before[start - 1 :])) <= prefix_tokens:
            start -= 1
        prefix = "".join(before[start:])
        suffix = "".join(lines[i + 1 : i + 1 + suffix_lines])
        params = InfillParams(canvas=canvas, single_line=True, seed=len(out))
        out.append(InfillRequest(prefix, "\n" + suffix, params))
    return out


def serve(model, requests: list[InfillRequest], clients: int, max_batch: int, seconds: float,
          warmup: float) -> dict:
    """Clients submit back to back for warmup + seconds; counts what finishes within the last `seconds`."""
    with Batcher(model, max_batch=max_batch) as batcher:
        batcher.run(requests[:2])  # first forwards pay for lazy initialisation
        model_thread = next(t for t in threading.enumerate() if t.name == "engine-batcher")
        clock = time.pthread_getcpuclockid(model_thread.ident)
        stop, lock = threading.Event(), threading.Lock()
        done: list[tuple[float, float, int, str]] = []  # (finished, latency ms, request, text)

        def client(first: int) -> None:
            k = first
            while not stop.is_set():
                t0 = time.perf_counter()
                result = batcher.submit(requests[k % len(requests)]).future.result()
                t1 = time.perf_counter()
                with lock:
                    done.append((t1, (t1 - t0) * 1000, k % len(requests), result.text))
                k += clients

        threads = [threading.Thread(target=client, args=(c,)) for c in range(clients)]
        for t in threads:
            t.start()
        time.sleep(warmup)
        t_a, cpu_a, stats_a = time.perf_counter(), time.clock_gettime(clock), batcher.stats()
        time.sleep(seconds)
        t_b, cpu_b, stats_b = time.perf_counter(), time.clock_gettime(clock), batcher.stats()
        stop.set()
        for t in threads:
            t.join()
    window = [d for d in done if t_a <= d[0] <= t_b]
    latencies = sorted(d[1] for d in window)
    sizes = {k: v - stats_a["batch_sizes"].get(k, 0) for k, v in stats_b["batch_sizes"].items()}
    forwards = sum(sizes.values())
    return {
        "clients": clients,
        "max_batch": max_batch,
        "completions": len(window),
        "completions_per_s": len(window) / (t_b - t_a),
        "completions_per_cpu_s": len(window) / (cpu_b - cpu_a),  # the model thread's CPU time
        "p50_ms": statistics.median(latencies),
        "p95_ms": latencies[min(len(latencies) - 1, round(0.95 * (len(latencies) - 1)))],
        "forwards": forwards,
        "mean_batch": sum(k * v for k, v in sizes.items()) / max(forwards, 1),
        "texts": {d[2]: d[3] for d in done},
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", help="checkpoint folder (default: the embedded model)")
    p.add_argument("--threads", type=int, default=1, help="torch threads")
    p.add_argument("--device", default="cpu", help="cpu or cuda[:n]")
    p.add_argument("--dtype", default="float32", help="float32 (answers compared exactly), bfloat16, auto")
    p.add_argument("--requests", type=int, default=96, help="distinct requests (submitters cycle them)")
    p.add_argument("--seconds", type=float, default=20.0, help="measured time per configuration")
    p.add_argument("--warmup", type=float, default=3.0, help="unmeasured time first (the batch fills)")
    p.add_argument("--clients", type=int, nargs="+", default=[1, 4, 16])
    p.add_argument("--max-batch", type=int, default=16)
    p.add_argument("--prefix-tokens", type=int, default=200)
    p.add_argument("--suffix-lines", type=int, default=3)
    p.add_argument("--canvas", type=int, default=16)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", help="also write the rows here")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    model = engine.load_model(args.model, device=args.device, dtype=args.dtype)
    requests = make_requests(model, args.requests, args.prefix_tokens, args.suffix_lines, args.canvas,
                             args.seed)
    tokens = statistics.mean(model.count_tokens(r.prefix) for r in requests)
    print(f"{len(requests)} requests, prefix {tokens:.0f} tokens on average, canvas {args.canvas}, "
          f"{args.device}, {args.dtype}, {args.threads} torch thread(s)\n")
    print("| clients | max_batch | answered | completions/s | per model-thread CPU s | p50 ms | p95 ms "
          "| mean rows/forward | forwards | agrees |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    rows = []
    for clients in args.clients:
        alone = serve(model, requests, clients, 1, args.seconds, args.warmup)
        batched = serve(model, requests, clients, args.max_batch, args.seconds, args.warmup)
        both = alone["texts"].keys() & batched["texts"].keys()
        agree = sum(alone["texts"][k] == batched["texts"][k] for k in both) / max(len(both), 1)
        for row, agrees in ((alone, 1.0), (batched, agree)):
            row["agrees"] = agrees
            cells = [clients, row["max_batch"], row["completions"], f"{row['completions_per_s']:.2f}",
                     f"{row['completions_per_cpu_s']:.2f}", f"{row['p50_ms']:.0f}",
                     f"{row['p95_ms']:.0f}", f"{row['mean_batch']:.2f}", row["forwards"], f"{agrees:.0%}"]
            print("| " + " | ".join(str(c) for c in cells) + " |", flush=True)
            rows.append(row)
    by = {(r["clients"], r["max_batch"]): r for r in rows}
    most, single = max(args.clients), min(args.clients)
    if (most, 1) in by and (single, args.max_batch) in by:
        b, a = by[most, args.max_batch], by[most, 1]
        gain, cpu_gain = b["completions_per_s"] / a["completions_per_s"], b["completions_per_cpu_s"] / a[
            "completions_per_cpu_s"]
        p95 = b["p95_ms"] / by[single, args.max_batch]["p95_ms"]
        print(f"\n{most} clients: batching gives {gain:.2f}x the completions/s of max_batch=1 "
              f"({cpu_gain:.2f}x per model-thread CPU second); its p95 is {p95:.2f}x the {single}-client p95")
    if args.json:
        Path(args.json).write_text(json.dumps([{k: v for k, v in r.items() if k != "texts"} for r in rows],
                                              indent=1))


if __name__ == "__main__":
    main()
