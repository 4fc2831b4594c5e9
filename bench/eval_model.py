"""Quality and speed of a diffusion checkpoint (by default the embedded model) on CPU. Not part of CI.

- HumanEval-SingleLineInfilling pass@1 (../shared/data/human-eval-infilling): the system fills the missing
  line as an editor would see it, cursor on an empty line (prefix = prompt, suffix = "\\n" + suffix), with a
  canvas of a fixed number of tokens chosen by the system (--canvas), never the gold length; the answer is the
  first line of the middle, and the program prompt + answer + "\\n" + suffix + test + check() runs in a
  subprocess with a timeout.
- Whole-line and rest-of-line infills drawn (seeded) from the held-out test files of the training corpus:
  exact match (after trailing whitespace) and edit similarity (difflib ratio).
- Forward passes per completion and milliseconds per completion.

Each run appends one JSON line (with the model's tokens seen) to --out; --plot draws quality against tokens
seen from all lines there.

    python bench/eval_model.py --limit 100 --heldout 100          # a few minutes
    python bench/eval_model.py --model runs/<run>/ckpt --plot runs/eval_model.png
"""

from __future__ import annotations

import argparse
import difflib
import gzip
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import engine  # noqa: E402
from engine.params import InfillParams
from engine.training import corpus  # noqa: E402

HUMANEVAL = Path(__file__).resolve().parent.parent.parent / "shared/data/human-eval-infilling"
TIMEOUT_S = 5.0


def first_line(text: str) -> str:
    return text.split("\n", 1)[0]


def passes(program: str) -> bool:
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as fh:
        fh.write(program)
    try:
        run = subprocess.run([sys.executable, fh.name], capture_output=True, timeout=TIMEOUT_S,
                             env={"PATH": os.environ.get("PATH", "")})
        return run.returncode == 0
    except subprocess.TimeoutExpired:
        return False
    finally:
        os.unlink(fh.name)


def spread(items: list, limit: int) -> list:
    """`limit` items evenly spaced over the list (all when limit is 0), so every problem is represented."""
    if not limit or limit >= len(items):
        return items
    return [items[int(i)] for i in np.linspace(0, len(items) - 1, limit)]


def remember(lm, prefix: str, suffix: str, memory: bool) -> None:
    # as the server does: the document, cut at the cursor, is the memory (nothing else is open)
    lm.memory.clear()
    if memory:
        lm.memory.update("document", prefix + suffix, cursor=len(prefix))


def humaneval(lm, canvas: int, limit: int, timings: list, memory: bool = False) -> dict:
    path = HUMANEVAL / "HumanEval-SingleLineInfilling.jsonl.gz"
    with gzip.open(path, "rt") as fh:
        tasks = spread([json.loads(line) for line in fh], limit)
    passed = 0
    for task in tasks:
        remember(lm, task["prompt"], "\n" + task["suffix"], memory)
        result = lm.infill(task["prompt"], "\n" + task["suffix"], InfillParams(canvas=canvas))
        timings.append(result.stats)
        answer = first_line(result.text)
        program = (task["prompt"] + answer + "\n" + task["suffix"] + "\n" + task["test"] + "\n"
                   + f"check({task['entry_point']})\n")
        passed += passes(program)
    return {"humaneval_single_line_pass@1": passed / len(tasks), "humaneval_tasks": len(tasks)}


def heldout_cases(files: list[corpus.SourceFile], n: int, kind: str, seed: int) -> list[tuple[str, str, str]]:
    """(prefix, gold, suffix) for whole-line (after the indentation) or rest-of-line (random column)
    infills."""
    rng = np.random.default_rng([seed, 0 if kind == "line" else 1])
    cases = []
    while len(cases) < n:
        text = files[int(rng.integers(len(files)))].text
        lines = text.splitlines(keepends=True)
        i = int(rng.integers(len(lines)))
        body = lines[i].rstrip("\r\n")
        indent = len(body) - len(body.lstrip())
        if len(body.strip()) < 4:
            continue
        col = indent if kind == "line" else int(rng.integers(indent + 1, len(body)))
        start = sum(len(x) for x in lines[:i])
        cases.append((text[: start + col], body[col:], text[start + len(body) :]))
    return cases


def heldout(lm, data_dir: Path, canvas: int, n: int, seed: int, timings: list, memory: bool = False,
            language: str = "python") -> dict:
    files = corpus.read(data_dir, "test", language)
    if not files:
        raise SystemExit(f"{data_dir}: no {language} test files (prepare with --languages for the others)")
    out = {}
    for kind in ("line", "rest"):
        exact, similarity = [], []
        for prefix, gold, suffix in heldout_cases(files, n, kind, seed):
            remember(lm, prefix, suffix, memory)
            result = lm.infill(prefix, suffix, InfillParams(canvas=canvas))
            timings.append(result.stats)
            answer = first_line(result.text).rstrip()
            exact.append(answer == gold.rstrip())
            similarity.append(difflib.SequenceMatcher(None, answer, gold.rstrip()).ratio())
        out[f"{kind}_exact_match"] = float(np.mean(exact))
        out[f"{kind}_edit_similarity"] = float(np.mean(similarity))
    out["heldout_cases"] = n
    return out


def model_info(path: Path | None) -> dict:
    folder = path or Path(engine.__file__).parent / "default_model"
    training = folder / "training.json"
    if not training.exists():
        training = folder / "state.json"  # a run's checkpoint
    state = json.loads(training.read_text())["state"] if training.exists() else {}
    return {"model": "default" if path is None else str(path), "tokens_seen": state.get("tokens_seen"),
            "step": state.get("step")}


def plot(results: Path, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [json.loads(x) for x in results.read_text().splitlines() if x.strip()]
    rows = sorted((r for r in rows if r.get("tokens_seen")), key=lambda r: r["tokens_seen"])
    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    for key in ("humaneval_single_line_pass@1", "line_exact_match", "line_edit_similarity",
                "rest_exact_match", "rest_edit_similarity"):
        pts = [(r["tokens_seen"] / 1e6, r[key]) for r in rows if key in r]
        if pts:
            ax.plot(*zip(*pts), "o-", ms=3, label=key)
    ax.set_xlabel("tokens seen (millions)")
    ax.set_ylabel("score")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out)
    print(f"wrote {out}")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", type=Path, help="checkpoint folder (default: the embedded model)")
    p.add_argument("--data", type=Path, default=corpus.default_cache() / "data",
                   help="prepared corpus folder")
    p.add_argument("--canvas", type=int, default=24, help="tokens of canvas for every single-line task")
    p.add_argument("--limit", type=int, default=100, help="HumanEval tasks, evenly spread (0 = all 1033)")
    p.add_argument("--heldout", type=int, default=100, help="held-out cases of each kind (0 = skip)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", type=Path, default=Path("bench/results/eval_model.jsonl"))
    p.add_argument("--plot", type=Path, help="also plot every result in --out against tokens seen")
    p.add_argument("--language", default="python", help="language of the held-out files (corpus test split)")
    p.add_argument("--memory", action="store_true",
                   help="remember each task's document (cut at the cursor), as the server does; default: off")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    lm = engine.load_model(args.model)
    timings: list = []
    row = {**model_info(args.model), "canvas": args.canvas, "canvas_rule": "fixed, chosen by the system",
           "memory": "document" if args.memory else "off"}
    t0 = time.time()
    if args.limit >= 0 and HUMANEVAL.exists() and args.language == "python":
        row.update(humaneval(lm, args.canvas, args.limit, timings, args.memory))
    if args.heldout > 0:
        row.update(heldout(lm, args.data, args.canvas, args.heldout, args.seed, timings, args.memory,
                           args.language))
        row["language"] = args.language
    row["forward_passes"] = statistics.mean(s.forward_passes for s in timings)
    row["ms_per_completion"] = statistics.median(s.ms for s in timings)
    row["threads"] = args.threads
    row["eval_s"] = round(time.time() - t0)
    print(json.dumps(row))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("a") as fh:
        fh.write(json.dumps(row) + "\n")
    if args.plot:
        plot(args.out, args.plot)
    return 0


if __name__ == "__main__":
    sys.exit(main())
