"""Server option variants compared in one process: single-line CPU time, forwards and similarity.

    python -m bench.eval_options [--model DIR] [--cursors 200] [--seed 0] VARIANT_JSON ...
    python -m bench.eval_options '{}' '{"sampler":{"tokensPerStep":1}}' '{"completion":{"contextTokens":382}}'

Each variant is an options object in the initializationOptions schema, applied over the defaults. At the
cursors of bench_lsp (a code line of the standard library cut at a random point, the rest of it deleted),
lsp_server.completion.filler.complete runs invoked, on one thread, as the server's engine thread does. Reports
the thread's CPU time per completion (p50/p95; CPU time leaves out preemption by other processes), forwards
per completion, and the edit similarity (difflib ratio) and exact match of the completion's first line against
the deleted text. All variants run on the same cursors in one run, so their ratios compare.
"""

from __future__ import annotations

import argparse
import difflib
import json
import statistics
import time

import msgspec
import torch

import engine
import infill
from bench.bench_lsp import cursors
from lsp_server.completion import filler
from lsp_server.options import Options


def cases(seed: int, n: int) -> list[tuple[infill.Document, int, str]]:
    """bench_lsp's cursors as (document, offset, the deleted rest of the line)."""
    out = []
    for text, line, col, deleted in cursors(n, seed):
        offset = sum(len(x) + 1 for x in text.split("\n")[:line]) + col
        out.append((infill.Document(text, "python"), offset, deleted))
    return out


def run(model, at: list[tuple[infill.Document, int, str]], options: Options) -> dict:
    stats: list = []
    infill_fn = model.infill

    def counted(*args, **kw):
        r = infill_fn(*args, **kw)
        stats.append(r.stats)
        return r

    model.infill = counted
    cpu, forwards, similarity, exact = [], [], [], 0
    try:
        for doc, offset, truth in at:
            stats.clear()
            c0 = time.thread_time()
            c = filler.complete(model, doc, offset, options, invoked=True)
            cpu.append((time.thread_time() - c0) * 1000)
            forwards.append(sum(s.forward_passes for s in stats))
            got = c.text.split("\n")[0].strip() if c else ""
            similarity.append(difflib.SequenceMatcher(None, got, truth.strip()).ratio())
            exact += got == truth.strip()
    finally:
        model.infill = infill_fn
    cpu.sort()
    return {
        "cpu_p50_ms": round(statistics.median(cpu), 1),
        "cpu_p95_ms": round(cpu[int(0.95 * (len(cpu) - 1))], 1),
        "forwards": round(statistics.mean(forwards), 2),
        "similarity": round(statistics.mean(similarity), 3),
        "exact": exact,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("variants", nargs="+", help="options objects (JSON), e.g. '{}' for the defaults")
    p.add_argument("--model", help="checkpoint folder (default: the embedded model)")
    p.add_argument("--cursors", type=int, default=200)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--dtype", default="auto")
    args = p.parse_args()
    torch.set_num_threads(1)
    model = engine.load_model(args.model, dtype=args.dtype)
    at = cases(args.seed, args.cursors)
    for variant in args.variants:
        options = msgspec.convert(json.loads(variant), Options)
        print(json.dumps({"variant": json.loads(variant), **run(model, at, options)}), flush=True)


if __name__ == "__main__":
    main()
