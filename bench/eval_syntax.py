"""HumanEval-SingleLineInfilling: the syntax-aware pipeline versus the raw engine at the same canvas.

  python -m bench.eval_syntax [--model DIR] [--limit N] [--canvas 32] [--candidates 1]

For each task, with a fixed canvas C chosen by the system (never the gold length):
  raw       model.infill(prompt, suffix, InfillParams(canvas=C)), inserted verbatim;
  pipeline  infill.complete() on the file as an editor holds it while the line is being written
            (prompt + an empty line + suffix, cursor on the empty line, automatic trigger), its
            Filler calling the same model.infill with canvas C (InfillOptions(canvas=C, max_tokens=C)).
Reports pass@1 (prompt + middle + suffix + test + check(entry_point) run in a subprocess with a
timeout) and the share of completions whose prompt + middle + suffix parses with more ERROR/MISSING
nodes than prompt + gold + suffix. The gold middle is used only for that reference count.
"""

import argparse
import gzip
import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import tree_sitter

from engine.params import InfillParams
from infill import Document, InfillOptions, complete
from infill.languages import ts_language
from infill.syntax import count_errors

DATA = (
    Path(__file__).resolve().parents[2]
    / "shared/data/human-eval-infilling/HumanEval-SingleLineInfilling.jsonl.gz"
)
PARSER = tree_sitter.Parser(ts_language("python"))


def load_tasks(path: Path, limit: int | None) -> list[dict]:
    with gzip.open(path, "rt") as f:
        tasks = [json.loads(line) for line in f]
    return tasks[:limit] if limit else tasks


def errors(code: str) -> int:
    return count_errors(PARSER.parse(code.encode()).root_node)


def passes(task: dict, middle: str, timeout: float) -> bool:
    program = (
        task["prompt"]
        + middle
        + task["suffix"]
        + "\n"
        + task["test"]
        + "\n"
        + f"check({task['entry_point']})\n"
    )
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as f:
        f.write(program)
    try:
        run = subprocess.run(
            [sys.executable, f.name], capture_output=True, timeout=timeout, cwd=tempfile.gettempdir()
        )
        return run.returncode == 0
    except subprocess.TimeoutExpired:
        return False
    finally:
        os.unlink(f.name)


def pipeline_middle(model, task: dict, canvas: int, candidates: int) -> tuple[str, str]:
    """The middle the pipeline's completion amounts to, and the span kind it chose."""
    prompt, suffix = task["prompt"], task["suffix"]
    doc = Document(prompt + "\n" + suffix, "python")

    def fill(prefix: str, suffix: str, canvas: int, max_canvas: int, single_line: bool) -> tuple[str, float]:
        params = InfillParams(canvas=canvas, single_line=single_line,
                              max_canvas=max_canvas if model.capabilities.grows else None)
        r = model.infill(prefix, suffix, params)
        return r.text, r.confidence

    options = InfillOptions(canvas=canvas, max_tokens=canvas, candidates=candidates, context_tokens=8192)
    c = complete(doc, len(prompt), fill, count_tokens=model.count_tokens, options=options)
    if c is None:
        return "\n", "none"
    text = doc.text[: c.start] + c.text + doc.text[c.end :]
    assert text.startswith(prompt) and text.endswith(suffix)
    return text[len(prompt) : len(text) - len(suffix)], c.kind


def evaluate(model, task: dict, canvas: int, candidates: int) -> dict:
    t0 = time.perf_counter()
    raw = model.infill(task["prompt"], task["suffix"], InfillParams(canvas=canvas)).text
    t1 = time.perf_counter()
    piped, kind = pipeline_middle(model, task, canvas, candidates)
    t2 = time.perf_counter()
    ref = errors(task["prompt"] + task["canonical_solution"] + task["suffix"])
    return {
        "task_id": task["task_id"],
        "raw": raw,
        "pipeline": piped,
        "kind": kind,
        "raw_adds_errors": errors(task["prompt"] + raw + task["suffix"]) > ref,
        "pipeline_adds_errors": errors(task["prompt"] + piped + task["suffix"]) > ref,
        "raw_s": t1 - t0,
        "pipeline_s": t2 - t1,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", help="checkpoint folder (default: the embedded model)")
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--limit", type=int, help="first N tasks only")
    ap.add_argument("--canvas", type=int, default=32, help="fixed canvas for both arms, tokens (default 32)")
    ap.add_argument("--candidates", type=int, default=1, help="canvas sizes the pipeline may try (<= canvas)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--timeout", type=float, default=5.0, help="seconds per test run")
    ap.add_argument("--workers", type=int, default=min(4, os.cpu_count() or 1), help="parallel test runs")
    ap.add_argument("--out", type=Path, help="write one JSON line per task here")
    args = ap.parse_args()
    if not args.data.exists():
        sys.exit(f"{args.data}: data set not found (pass --data)")

    import engine

    model = engine.load_model(args.model, device=args.device, dtype=args.dtype)
    tasks = load_tasks(args.data, args.limit)
    rows = []
    for i, task in enumerate(tasks):
        rows.append(evaluate(model, task, args.canvas, args.candidates))
        if (i + 1) % 25 == 0:
            print(f"{i + 1}/{len(tasks)} generated", file=sys.stderr)
    with ThreadPoolExecutor(args.workers) as pool:
        raw_ok = list(pool.map(lambda tr: passes(tr[0], tr[1]["raw"], args.timeout), zip(tasks, rows)))
        pipe_ok = list(pool.map(lambda tr: passes(tr[0], tr[1]["pipeline"], args.timeout), zip(tasks, rows)))
    for row, a, b in zip(rows, raw_ok, pipe_ok):
        row["raw_pass"], row["pipeline_pass"] = a, b
    if args.out:
        args.out.write_text("".join(json.dumps(r) + "\n" for r in rows))

    n = len(rows)
    share = lambda key: 100 * sum(r[key] for r in rows) / n  # noqa: E731
    mean_s = lambda key: sum(r[key] for r in rows) / n  # noqa: E731
    print(
        f"HumanEval-SingleLineInfilling, {n} tasks, model {model.path}, canvas fixed at {args.canvas} tokens "
        f"(system-chosen, not the gold length), pipeline candidates {args.candidates}, "
        f"{args.device}/{args.dtype}"
    )
    print("| arm | pass@1 | adds ERROR/MISSING | s/task |")
    print("|---|---|---|---|")
    print(
        f"| raw engine | {share('raw_pass'):.1f}% | {share('raw_adds_errors'):.1f}% | {mean_s('raw_s'):.2f} |"
    )
    print(
        f"| syntax-aware pipeline | {share('pipeline_pass'):.1f}% | {share('pipeline_adds_errors'):.1f}% "
        f"| {mean_s('pipeline_s'):.2f} |"
    )


if __name__ == "__main__":
    main()
