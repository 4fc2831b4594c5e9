"""Where a completion's time goes, stage by stage, on bench_lsp's cursors and on real projects' files.

    python -m bench.latency_breakdown [--stdlib 40] [--project SDIST ...] [--cases 40] [--options JSON]

Runs the server's own pipeline in this process, as its engine thread does
(lsp_server.completion.filler.complete on an infill.Document, the repository memory fed as the server feeds
it), with timers wrapped around each stage:

- `memory_cut`: the memory's update of the document cut at the cursor;
- `syntax`, `span`, `context` (with `count_tokens`, the tokenizer calls that fit the context to its budget),
  `check` (the syntax check's parse of the region) and `rank` (its re-parse per candidate), `post`;
- inside the engine: `ids` (tokenizing prefix and suffix), `prior` (building the memory prior and its
  searches on every forward), `forward_full` / `forward_window` (the network: full forwards over context
  and canvas, and cached forwards over the canvas only), `loop` (the rest of the denoising loop).

Two sets of cursors: --stdlib N, bench/bench_lsp.py's (a line of a standard-library file cut at a random
point, each file opened fresh, no workspace: the memory holds the documents opened so far), and --project
SDIST --cases N, bench/eval_server.py's (`line` and `rest` cursors of the project's files, the whole project
in the memory as the server reads a workspace). Also per case: the document's size, context tokens, canvas,
forwards, and whether an answer came. Prints p50 / mean per stage and per set (the table: p50 of each stage,
so the stages do not add up to the total), and writes rows to --out.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import infill  # noqa: E402
import infill.pipeline as pipeline  # noqa: E402
from bench.bench_lsp import cursors  # noqa: E402
from bench.eval_memory import cases, project_files  # noqa: E402
from lsp_server import models  # noqa: E402
from lsp_server.completion import filler  # noqa: E402
from lsp_server.options import parse  # noqa: E402

STAGES = ["memory_cut", "syntax", "span", "context", "count_tokens", "check", "rank", "post", "ids", "prior",
          "forward_full", "forward_window", "loop", "total", "cpu"]


class Timers:
    """Milliseconds per stage for the case being run, and counters (forwards, context tokens)."""

    def __init__(self):
        self.reset()

    def reset(self) -> None:
        self.ms: dict[str, float] = defaultdict(float)
        self.counts: dict[str, int] = defaultdict(int)

    def wrap(self, stage: str, fn):
        def timed(*args, **kwargs):
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.ms[stage] += (time.perf_counter() - t0) * 1000
                self.counts[stage] += 1

        return timed


def instrument(model, timers: Timers) -> None:
    """Wrap the pipeline's and the engine's stages (module attributes and this model's methods)."""
    import engine.generate as generate
    import engine.lm as lm
    import engine.memory as memory

    for name, stage in (("syntax_context", "syntax"), ("plan_span", "span"), ("build_context", "context"),
                        ("postprocess", "post")):
        setattr(pipeline, name, timers.wrap(stage, getattr(pipeline, name)))

    class TimedCheck(pipeline.SyntaxCheck):
        __init__ = timers.wrap("check", pipeline.SyntaxCheck.__init__)
        errors_added = timers.wrap("rank", pipeline.SyntaxCheck.errors_added)

    pipeline.SyntaxCheck = TimedCheck
    call = generate.CanvasLogits.__call__
    full_timed, window = timers.wrap("forward_full", call), timers.wrap("forward_window", call)

    def forward(self, canvas, step):
        is_full = generate.full_forward_due(step, self.refresh)
        return (full_timed if is_full else window)(self, canvas, step)

    generate.CanvasLogits.__call__ = forward
    memory.MemoryPrior.__call__ = timers.wrap("prior", memory.MemoryPrior.__call__)
    lm.DiffusionLM.prior_for = timers.wrap("prior", lm.DiffusionLM.prior_for)
    ids = lm.DiffusionLM.context_ids

    def context_ids(self, prefix, suffix, canvas):
        out = ids(self, prefix, suffix, canvas)
        timers.counts["context_tokens"] += len(out[0]) + len(out[1])
        return out

    lm.DiffusionLM.context_ids = timers.wrap("ids", context_ids)
    infill_timed = timers.wrap("engine", lm.DiffusionLM.infill)

    def engine_infill(self, prefix, suffix, params, cancel=None):
        timers.counts["canvas"] += params.canvas
        return infill_timed(self, prefix, suffix, params, cancel)

    lm.DiffusionLM.infill = engine_infill
    model.count_tokens = timers.wrap("count_tokens", model.count_tokens)
    model.memory.update = timers.wrap("memory_cut", model.memory.update)


def run_case(model, options, timers: Timers, name: str, text: str, offset: int, settle_s: float = 0) -> dict:
    doc = infill.Document(text, "python")  # parsed at didOpen, before the request: not timed
    model.memory.update(name, text)  # the worker's update at didOpen
    time.sleep(settle_s)  # the idle CPU an editor's request finds (bench_lsp's --settle-ms)
    timers.reset()
    t0, cpu0 = time.perf_counter(), time.thread_time()
    c = filler.complete(model, doc, offset, options, invoked=True, key=name)
    total, cpu = (time.perf_counter() - t0) * 1000, (time.thread_time() - cpu0) * 1000
    ms = dict(timers.ms)
    engine_ms = ms.pop("engine", 0.0)
    ms["loop"] = engine_ms - sum(ms.get(k, 0.0) for k in ("ids", "prior", "forward_full", "forward_window"))
    ms["total"], ms["cpu"] = total, cpu
    return {
        "ms": ms,
        "forwards_full": timers.counts["forward_full"],
        "forwards_window": timers.counts["forward_window"],
        "context_tokens": timers.counts["context_tokens"],
        "canvas": timers.counts["canvas"],
        "doc_chars": len(text),
        "answered": c is not None,
        "kind": None if c is None else c.kind,
    }


def summary(label: str, rows: list[dict]) -> dict:
    out = {"set": label, "cases": len(rows), "answered": sum(r["answered"] for r in rows)}
    for stage in STAGES:
        values = [r["ms"].get(stage, 0.0) for r in rows]
        out[stage] = (round(statistics.median(values), 1), round(statistics.mean(values), 1))
    for key in ("forwards_full", "forwards_window", "context_tokens", "canvas", "doc_chars"):
        out[key] = round(statistics.mean(r[key] for r in rows), 1)
    totals = sorted(r["ms"]["total"] for r in rows)
    out["p95_total"] = round(totals[min(len(totals) - 1, int(0.95 * len(totals)))], 1)
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--stdlib", type=int, default=40, help="bench_lsp's cursors (0: none)")
    p.add_argument("--project", type=Path, nargs="*", default=[])
    p.add_argument("--cases", type=int, default=40, help="per project and kind")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--options", default="{}", help="server options JSON, as initializationOptions")
    p.add_argument("--out", type=Path, default=Path("runs/latency_breakdown.jsonl"))
    p.add_argument("--settle-ms", type=float, default=0, help="idle pause before each case, as bench_lsp's")
    args = p.parse_args()
    options, invalid = parse(json.loads(args.options))
    if invalid:
        p.error("; ".join(invalid))
    model = models.load(options.model)
    timers = Timers()
    instrument(model, timers)
    filler.complete(model, infill.Document("def f(a):\n    return a\n", "python"), 21, options, invoked=True)
    sets: list[tuple[str, list[tuple[str, str, int]], dict[str, str]]] = []
    if args.stdlib:
        items = []
        for i, (text, line, col, _) in enumerate(cursors(args.stdlib, args.seed)):
            offset = sum(len(x) + 1 for x in text.split("\n")[:line]) + col
            items.append((f"stdlib_{i}.py", text, offset))
        sets.append(("stdlib (bench_lsp)", items, {}))
    for archive in args.project:
        files = project_files(archive)
        for kind in ("line", "rest"):
            drawn = cases(files, args.cases, kind, args.seed)
            items = [(name, text, offset) for name, text, offset, _ in drawn]
            sets.append((f"{archive.name.split('.tar')[0]} {kind}", items, files))
    results = []
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("a") as fh:
        for label, items, files in sets:
            model.memory.clear()
            for name, text in files.items():  # the workspace, as the server reads it
                model.memory.update(name, text)
            rows = [run_case(model, options, timers, *item, args.settle_ms / 1000) for item in items]
            for row in rows:
                fh.write(json.dumps({"set": label, "options": args.options, **row}) + "\n")
            results.append(summary(label, rows))
            print(json.dumps(results[-1]), flush=True)
    print("| set | " + " | ".join(STAGES) + " | p95 total | forwards full+window | context tokens | canvas |")
    print("|---" * (len(STAGES) + 5) + "|")
    for r in results:
        cells = " | ".join(f"{r[s][0]}" for s in STAGES)
        print(f"| {r['set']} | {cells} | {r['p95_total']} | {r['forwards_full']}+{r['forwards_window']} | "
              f"{r['context_tokens']} | {r['canvas']} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
