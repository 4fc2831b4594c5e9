"""Completion quality and latency through the real server, on projects that are not in the training corpus.

    python -m bench.eval_server --project SDIST [SDIST ...] [--cases 50] [--options JSON] [--model DIR]
    python -m bench.eval_server --humaneval 100 [--cursor line-start|indented]

Each sdist (e.g. `pip download --no-deps --no-binary :all: attrs==25.4.0`) is unpacked into a temporary
folder that becomes the server's workspace (`rootUri`), as when an editor opens a project. Cursors are drawn
as in bench/eval_memory.py (indented code lines of 8-100 characters outside strings and comments): the line
is deleted whole ("line", cursor after the indentation) or from a random column ("rest"). For each cursor
the client opens the file with the line deleted, waits --settle-ms, asks `textDocument/inlineCompletion`
(invoked), applies the answer as an editor would, compares the cursor's line with the original, and closes
the file. With --no-root the client names no workspace, and the server reads each opened file's project
(here, not a git work tree: the file's folder). The server runs with default options unless --options
(`{"memory": {"enabled": false}}` is the network alone). Reports exact match, edit similarity and
client-measured latency p50/p95.
"""

from __future__ import annotations

import argparse
import asyncio
import difflib
import gzip
import json
import statistics
import sys
import tarfile
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.bench_lsp import ROOT, Client, inline_params, open_doc, percentile  # noqa: E402
from bench.eval_memory import cases, project_files  # noqa: E402
from bench.eval_model import HUMANEVAL, passes, spread  # noqa: E402


def unpack(archive: Path, into: Path) -> Path:
    with tarfile.open(archive) as tf:
        tf.extractall(into, filter="data")
    return next(p for p in into.iterdir() if p.is_dir())


def utf16_col(line: str, col: int) -> int:
    return len(line[:col].encode("utf-16-le")) // 2


def apply(text: str, item: dict) -> str:
    """The document after accepting an inline item (ranges in UTF-16 code units, one line here)."""
    lines = text.split("\n")
    r = item.get("range")
    if r is None:
        return text
    (sl, sc), (el, ec) = (
        (r["start"]["line"], r["start"]["character"]),
        (r["end"]["line"], r["end"]["character"]),
    )

    def offset(line: int, ch: int) -> int:
        units = lines[line].encode("utf-16-le")[: 2 * ch].decode("utf-16-le", "ignore")
        return sum(len(x) + 1 for x in lines[:line]) + len(units)

    return text[: offset(sl, sc)] + item["insertText"] + text[offset(el, ec) :]


async def start(args: argparse.Namespace, root: Path | None) -> tuple[asyncio.subprocess.Process, Client]:
    """A server with default options (or --options), initialized and done loading its model."""
    command = [sys.executable, "-m", "lsp_server", *(["--model", args.model] if args.model else [])]
    process = await asyncio.create_subprocess_exec(
        *command, cwd=ROOT, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE
    )
    client = Client(process)
    caps = {"textDocument": {"inlineCompletion": {}}, "general": {"positionEncodings": ["utf-16"]}}
    await client.request(
        "initialize",
        {
            "capabilities": caps,
            "processId": None,
            "rootUri": None if root is None else root.as_uri(),
            "initializationOptions": json.loads(args.options),
        },
    )
    client.notify("initialized", {})
    while (await client.request("unmask/status"))[1]["result"]["state"] == "loading":
        await asyncio.sleep(0.1)
    return process, client


async def stop(process: asyncio.subprocess.Process, client: Client) -> None:
    await client.request("shutdown")
    client.notify("exit", {})
    await process.wait()


async def complete_at(
    client: Client, uri: str, text: str, offset: int, settle_ms: float
) -> tuple[str, float]:
    """The document after accepting the first inline item at `offset` (unchanged without one), and the
    client-measured latency in ms; the document is opened first and closed after."""
    open_doc(client, uri, text)
    await asyncio.sleep(settle_ms / 1000)
    line = text[:offset].count("\n")
    line_start = text.rfind("\n", 0, offset) + 1
    col = utf16_col(text[line_start:], offset - line_start)
    t0 = time.perf_counter()
    t1, response = await client.request("textDocument/inlineCompletion", inline_params(uri, line, col, False))
    items = response["result"]["items"] if response.get("result") else []
    client.notify("textDocument/didClose", {"textDocument": {"uri": uri}})
    return (apply(text, items[0]) if items else text), (t1 - t0) * 1000


async def humaneval(args: argparse.Namespace, workdir: Path) -> dict:
    """HumanEval single-line infilling through the server: each task's program is one open file (no
    workspace), the line deleted, the cursor on the empty line at column 0 (`--cursor line-start`) or
    after the gold line's indentation as an editor's auto-indent leaves it (`--cursor indented`)."""
    with gzip.open(HUMANEVAL / "HumanEval-SingleLineInfilling.jsonl.gz", "rt") as fh:
        tasks = spread([json.loads(line) for line in fh], args.humaneval)
    process, client = await start(args, None)
    passed, answered, latency = 0, 0, []
    for i, task in enumerate(tasks):
        gold = task["canonical_solution"]
        indent = gold[: len(gold) - len(gold.lstrip())] if args.cursor == "indented" else ""
        prefix = task["prompt"] + indent
        text = prefix + "\n" + task["suffix"]
        uri = (workdir / f"task_{i}.py").as_uri()
        after, ms = await complete_at(client, uri, text, len(prefix), args.settle_ms)
        latency.append(ms)
        answered += after != text
        line = after[len(task["prompt"]) :].split("\n", 1)[0]
        passed += passes(task["prompt"] + line + "\n" + task["suffix"] + "\n" + task["test"] + "\n"
                         + f"check({task['entry_point']})\n")
    await stop(process, client)
    return {"humaneval_single_line_pass@1": passed / len(tasks), "tasks": len(tasks), "answered": answered,
            "cursor": args.cursor, "p50_ms": round(statistics.median(latency), 1),
            "p95_ms": round(percentile(latency, 0.95), 1), "options": args.options,
            "model": args.model or "default"}


async def run(args: argparse.Namespace, archive: Path, workdir: Path) -> list[dict]:
    project = unpack(archive, workdir)
    files = project_files(archive)
    process, client = await start(args, None if args.no_root else project)
    await asyncio.sleep(args.index_wait)  # let the workspace scan finish before the first cursor
    rows = []
    for kind in ("line", "rest"):
        exact, sim, latency, answered = [], [], [], 0
        for name, text, offset, gold in cases(files, args.cases, kind, args.seed):
            uri = (workdir / name).resolve().as_uri()
            after, ms = await complete_at(client, uri, text, offset, args.settle_ms)
            latency.append(ms)
            answered += after != text
            got = after[offset:].split("\n", 1)[0].rstrip()
            exact.append(got == gold)
            sim.append(difflib.SequenceMatcher(None, got, gold).ratio())
        rows.append(
            {
                "project": archive.name,
                "kind": kind,
                "cases": len(exact),
                "answered": answered,
                "exact": sum(exact) / len(exact),
                "similarity": statistics.mean(sim),
                "p50_ms": round(statistics.median(latency), 1),
                "p95_ms": round(percentile(latency, 0.95), 1),
                "options": args.options,
                "model": args.model or "default",
                "workspace": "opened files' folders" if args.no_root else "rootUri",
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    status = (await client.request("unmask/status"))[1]["result"]
    rows[-1]["memory"] = status.get("memory")
    await stop(process, client)
    return rows


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--project", type=Path, nargs="+", default=[])
    p.add_argument("--humaneval", type=int, default=0, metavar="N",
                   help="also run N HumanEval single-line tasks (evenly spread; all 1033 with a large N)")
    p.add_argument("--cursor", choices=("line-start", "indented"), default="line-start",
                   help="HumanEval cursor: column 0 of the emptied line, or after its indentation")
    p.add_argument("--model")
    p.add_argument("--cases", type=int, default=50)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--settle-ms", type=float, default=200)
    p.add_argument("--index-wait", type=float, default=3.0, help="seconds for the workspace scan")
    p.add_argument("--options", default="{}")
    p.add_argument(
        "--no-root",
        action="store_true",
        help="name no workspace: the server reads each opened file's project (here: its folder)",
    )
    p.add_argument("--out", type=Path, default=Path("bench/results/eval_server.jsonl"))
    args = p.parse_args()
    if not args.project and not args.humaneval:
        p.error("give --project SDIST ... and/or --humaneval N")
    if args.humaneval:
        with tempfile.TemporaryDirectory() as tmp:
            result = asyncio.run(humaneval(args, Path(tmp)))
        args.out.parent.mkdir(parents=True, exist_ok=True)
        with args.out.open("a") as fh:
            fh.write(json.dumps(result) + "\n")
        print(json.dumps(result), flush=True)
    rows = []
    for archive in args.project:
        with tempfile.TemporaryDirectory() as tmp:
            rows += asyncio.run(run(args, archive, Path(tmp)))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("a") as fh:
        for row in rows:
            fh.write(json.dumps(row) + "\n")
    print("| project | kind | exact | similarity | answered | p50 / p95 ms |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['project']} | {r['kind']} | {r['exact']:.1%} | {r['similarity']:.3f} | "
            f"{r['answered']}/{r['cases']} | {r['p50_ms']} / {r['p95_ms']} |"
        )
    if not rows:
        return 0
    totals = {}
    for kind in ("line", "rest"):
        chosen = [r for r in rows if r["kind"] == kind]
        n = sum(r["cases"] for r in chosen)
        totals[kind] = sum(r["exact"] * r["cases"] for r in chosen) / max(n, 1)
    print(json.dumps({"overall_exact": totals}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
