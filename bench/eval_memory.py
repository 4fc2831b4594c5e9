"""Repository memory ablation: the network alone, the memory alone, and the two fused, on the same cursors.

    python -m bench.eval_memory [--model DIR] [--project SDIST ...] [--cases 100] [--scope document|project]
                                [--options JSON] [--arms network memory fused]

Cursors are drawn (seeded) from held-out code: the packages of sdists that are not in the training corpus
(`--project`, e.g. `pip download --no-deps --no-binary :all: attrs==25.4.0`), or, without --project, the
corpus's test split. Each cursor is an indented code line of 8-100 characters outside strings and comments,
deleted whole (cursor after the indentation: "line") or from a random column on (the typed part kept: "rest").
Every arm completes through the server's pipeline (lsp_server.completion.filler.complete, invoked, default
options unless --options) in one process:

- network: the memory off;
- memory: no network, the memory's most frequent continuation (engine.DiffusionLM.recall) of the text
  before the cursor;
- fused: the memory on (the default).

With `--scope document` the memory holds only the document being completed (what a server has when one file
is open); with `project`, also the project's other files (what it has with the workspace indexed).
Reports exact match and edit similarity of the first line against the deleted text, and CPU ms per
completion (p50 / p95), per arm and kind.
"""

from __future__ import annotations

import argparse
import difflib
import io
import json
import statistics
import sys
import tarfile
import time
import tokenize
import zipfile
from pathlib import Path

import msgspec
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import engine  # noqa: E402
import infill  # noqa: E402
from engine.training import corpus  # noqa: E402
from lsp_server.completion import filler  # noqa: E402
from lsp_server.options import Options, merge  # noqa: E402

ARMS = ("network", "memory", "fused")


def project_files(archive: Path) -> dict[str, str]:
    """The package's .py files (not tests, docs or build scripts) of an sdist, by path."""

    def wanted(name: str) -> bool:
        parts = name.split("/")
        return (
            name.endswith(".py")
            and not any(p in {"tests", "test", "docs", "doc", "benchmarks", "examples"} for p in parts)
            and parts[-1] not in {"setup.py", "conftest.py", "noxfile.py"}
        )

    out = {}
    if archive.suffix == ".zip":
        with zipfile.ZipFile(archive) as zf:
            for name in sorted(zf.namelist()):
                if wanted(name):
                    out[name] = zf.read(name).decode("utf-8", "replace")
    else:
        with tarfile.open(archive) as tf:
            for m in sorted(tf.getmembers(), key=lambda m: m.name):
                if m.isfile() and wanted(m.name):
                    out[m.name] = tf.extractfile(m).read().decode("utf-8", "replace")
    return {k: v.replace("\r\n", "\n") for k, v in out.items() if corpus.usable(v)}


def code_lines(text: str) -> list[int]:
    """0-based numbers of indented code lines of 8-100 characters, outside strings and comments."""
    in_string: set[int] = set()
    try:
        for tok in tokenize.generate_tokens(io.StringIO(text).readline):
            if tok.type == tokenize.STRING and tok.end[0] > tok.start[0]:
                in_string.update(range(tok.start[0] - 1, tok.end[0]))
    except (tokenize.TokenError, IndentationError, SyntaxError):
        return []
    out = []
    for i, line in enumerate(text.split("\n")):
        body = line.strip()
        if (
            i not in in_string
            and line[:1] in (" ", "\t")
            and 8 <= len(body) <= 100
            and not body.startswith(("#", '"', "'"))
        ):
            out.append(i)
    return out


def cases(files: dict[str, str], n: int, kind: str, seed: int) -> list[tuple[str, str, int, str]]:
    """(file name, text with the middle deleted, cursor offset, deleted middle)."""
    rng = np.random.default_rng([seed, 0 if kind == "line" else 1])
    names = [k for k in files if code_lines(files[k])]
    lines_of = {k: code_lines(files[k]) for k in names}
    out = []
    while len(out) < n:
        name = names[int(rng.integers(len(names)))]
        lines = files[name].split("\n")
        i = lines_of[name][int(rng.integers(len(lines_of[name])))]
        line = lines[i]
        indent = len(line) - len(line.lstrip())
        col = indent if kind == "line" else int(rng.integers(indent + 1, len(line.rstrip())))
        start = sum(len(x) + 1 for x in lines[:i])
        gold = line[col:].rstrip()
        text = files[name][: start + col] + files[name][start + len(line) :]
        out.append((name, text, start + col, gold))
    return out


def run_arm(model, arm: str, items, options: Options, files: dict[str, str], scope: str) -> dict:
    exact, sim, cpu = [], [], []
    for name, text, offset, gold in items:
        model.memory.clear()
        if scope == "project":
            for other, other_text in files.items():
                if other != name:
                    model.memory.update(other, other_text)
        doc = infill.Document(text, "python")
        t0 = time.thread_time()
        if arm == "memory":
            model.memory.update(name, text, cursor=offset)
            answer = model.recall(text[:offset], text[offset:], max_tokens=48, single_line=True)
        else:
            c = filler.complete(model, doc, offset, options, invoked=True, key=name)
            # the line as the editor shows it after accepting, from the cursor on
            answer = "" if c is None else (text[: c.start] + c.text + text[c.end :])[offset:]
        cpu.append((time.thread_time() - t0) * 1000)
        answer = answer.split("\n", 1)[0].rstrip()
        exact.append(answer == gold)
        sim.append(difflib.SequenceMatcher(None, answer, gold).ratio())
    return {
        "exact": float(np.mean(exact)),
        "similarity": float(np.mean(sim)),
        "cpu_p50_ms": statistics.median(cpu),
        "cpu_p95_ms": float(np.percentile(cpu, 95)),
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", type=Path)
    p.add_argument("--dtype", default="auto")
    p.add_argument("--project", type=Path, nargs="*", default=[])
    p.add_argument("--data", type=Path, default=corpus.default_cache() / "data")
    p.add_argument("--cases", type=int, default=100, help="cursors of each kind (per project)")
    p.add_argument("--scope", choices=("document", "project"), default="document")
    p.add_argument("--options", default="{}", help="initializationOptions over the defaults, for every arm")
    p.add_argument("--arms", nargs="+", default=list(ARMS), choices=ARMS)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=Path("bench/results/eval_memory.jsonl"))
    args = p.parse_args()
    torch.set_num_threads(1)
    model = engine.load_model(args.model, dtype=args.dtype)
    base = msgspec.convert(merge(msgspec.to_builtins(Options()), json.loads(args.options)), Options)
    sources = (
        {a.name: project_files(a) for a in args.project}
        if args.project
        else {"corpus-test": {f.name: f.text for f in corpus.read(args.data, "test")}}
    )
    rows = []
    for source, files in sources.items():
        for kind in ("line", "rest"):
            items = cases(files, args.cases, kind, args.seed)
            for arm in args.arms:
                options = msgspec.structs.replace(
                    base, memory=msgspec.structs.replace(base.memory, enabled=arm != "network")
                )
                row = {
                    "source": source,
                    "files": len(files),
                    "kind": kind,
                    "arm": arm,
                    "scope": args.scope,
                    "cases": len(items),
                    "model": str(args.model or "default"),
                    "options": args.options,
                    **run_arm(model, arm, items, options, files, args.scope),
                }
                print(json.dumps(row), flush=True)
                rows.append(row)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("a") as fh:
        for row in rows:
            fh.write(json.dumps(row) + "\n")
    print("| source | kind | arm | exact | similarity | CPU p50 / p95 ms |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['source']} | {r['kind']} | {r['arm']} | {r['exact']:.1%} | {r['similarity']:.3f} | "
            f"{r['cpu_p50_ms']:.0f} / {r['cpu_p95_ms']:.0f} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
