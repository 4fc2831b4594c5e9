"""Completions as users feel them: through the real server, while typing, on code it never saw.

    python -m bench.eval_trust --set heldout|development [--languages python,go,rust,typescript]
                               [--kinds line,rest] [--cases 30] [--humaneval N] [--options JSON]
                               [--threshold T] [--curve out.png] [--model DIR] [--seed 0]
    python -m bench.eval_trust --summarize CURSORS_JSONL [--run DATE] [--threshold T] [--curve PNG]

Projects come from bench/trust_sets.py (pinned, outside the training corpus; DEVELOPMENT to fit the calibrator
and choose thresholds, HELD-OUT for reported numbers). For one project and one kind ("line": the whole line
deleted, cursor after its indentation; "rest": the line cut at a random column inside its code, never in a
trailing comment), up to
--cases cursors are drawn, at most one per file (files in a seeded random order; the line as in
bench/eval_memory.py: an indented code line of 8-100 characters outside strings and comments, found with
tokenize for Python and with tree-sitter for the others). The evaluation never lets the server see an answer:
a copy of the project is written with EVERY evaluated line of the batch emptied on disk, ONE server process
gets that copy as its workspace (`rootUri`), and each evaluated file is opened (its emptied text), asked
`textDocument/inlineCompletion` with trigger kind Automatic (the user typing; the server's debounce
included), answered, closed, one file at a time. The answer is applied as an editor would
(bench/eval_server.py `apply`) and the cursor's line compared with the original (exact: equal after rstrip).
Each shown completion is also parsed: `errors_added` is the tree-sitter ERROR/MISSING nodes it adds to the
document.

HumanEval single-line infilling (`--humaneval N`, N problems spread evenly, one of each problem's lines
drawn with the seed): every problem is a file `problem_<n>.py` of one workspace (prompt, the line emptied
to its indentation, suffix), so the memory holds the other problems but never this one's line; the cursor is
after the indentation, and pass@1 runs the problem's tests on the document as accepted (bench/eval_model.py
`passes`; a withheld line counts as what the emptied program does).

The server runs with `{"completion": {"minConfidence": 0, "minConfidenceInvoked": 0, "explain": true}}`
(everything shown, each item carrying the probability that it is kept), --options merged over that. The
threshold curve is computed offline: at a threshold t a cursor is shown when it was answered and its
probability is at least t (a probability of None, from a model without a calibrator or a server without the
option, counts as shown). Per (language, kind) at the server's default threshold (or --threshold): exact
overall (exact and shown / cursors), share shown, precision (exact among shown), shown that add a syntax
error, and latency p50 / p95 (client-measured, request written to answer read, so the automatic
trigger's debounce is in it). Per cursor rows go to bench/results/eval_trust_cursors.jsonl, summaries to
bench/results/eval_trust.jsonl and stdout; `--curve PNG` draws precision against share shown over
thresholds. `--summarize` reads a run's cursor rows back (the latest, or --run DATE) and summarizes them at
another threshold without running anything.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import gzip
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import infill  # noqa: E402
from bench import bench_lsp, trust_sets  # noqa: E402
from bench.eval_server import apply, utf16_col  # noqa: E402
from infill.languages import spec  # noqa: E402
from infill.syntax import count_errors  # noqa: E402

ROOT = bench_lsp.ROOT
RESULTS = ROOT / "bench" / "results"
KINDS = ("line", "rest")
LANGUAGES = ("python", "go", "rust", "typescript")
LANGUAGE_IDS = {"python": "python", "go": "go", "rust": "rust", "typescript": "typescript"}
TRUST_OPTIONS = {"completion": {"minConfidence": 0, "minConfidenceInvoked": 0, "explain": True}}
REQUEST_TIMEOUT_S = 120.0
HUMANEVAL_FILE = "HumanEval-SingleLineInfilling.jsonl.gz"


# ---- what the server offers ----

def server_completion_defaults():
    """The server's default CompletionOptions (the working tree's lsp_server/options.py)."""
    from lsp_server.options import CompletionOptions

    return CompletionOptions()


def base_options() -> dict:
    """TRUST_OPTIONS where the server has those options; {} before it does (every answer shown, no
    probability)."""
    defaults = server_completion_defaults()
    has = all(hasattr(defaults, f) for f in ("min_confidence", "min_confidence_invoked", "explain"))
    return json.loads(json.dumps(TRUST_OPTIONS)) if has else {}


def default_threshold() -> float | None:
    return getattr(server_completion_defaults(), "min_confidence", None)


def merge(base: dict, update: dict) -> dict:
    out = dict(base)
    for key, value in update.items():
        both = isinstance(value, dict) and isinstance(out.get(key), dict)
        out[key] = merge(out[key], value) if both else value
    return out


# ---- cursors ----

@dataclass(frozen=True)
class Cursor:
    file: str  # relative to the project (or the workspace) folder
    row: int  # 0-based line
    col: int  # code points into the line: where the text stops
    original: str  # the file as it was
    gold: str  # the original line

    @property
    def text(self) -> str:
        """The file with the evaluated line emptied from col on (to its indentation for the line kind)."""
        lines = self.original.split("\n")
        lines[self.row] = lines[self.row][: self.col]
        return "\n".join(lines)

    @property
    def offset(self) -> int:
        lines = self.original.split("\n")
        return sum(len(x) + 1 for x in lines[: self.row]) + self.col


def _nodes(node):
    stack = [node]
    while stack:
        n = stack.pop()
        yield n
        stack.extend(n.children)


def _trees(text: str, language: str):
    for tree in infill.Document(text, language).trees:
        yield from _nodes(tree.root_node)


def _quoted(node) -> bool:
    return "comment" in node.type or "string" in node.type


def code_lines(text: str, language: str) -> list[int]:
    """0-based rows of indented code lines of 8-100 characters outside strings and comments: eval_memory's
    rule (tokenize) for Python; for the others, rows of a string or comment that spans lines (tree-sitter)
    are skipped, as eval_memory does, and so are lines that start with a comment or a quote."""
    if language == "python":
        from bench.eval_memory import code_lines as python_code_lines

        return python_code_lines(text)
    lang = spec(language)
    markers = tuple(m for m in (lang.line_comment, *(lang.block_comment or ())) if m)
    skipped = set()
    for n in _trees(text, language):
        if _quoted(n) and n.end_point[0] > n.start_point[0]:
            skipped.update(range(n.start_point[0], n.end_point[0] + 1))
    out = []
    for i, line in enumerate(text.split("\n")):
        body = line.strip()
        if (i not in skipped and line[:1] in (" ", "\t") and 8 <= len(body) <= 100
                and not body.startswith((*markers, '"', "'", "`"))):
            out.append(i)
    return out


def code_end(text: str, language: str, row: int) -> int:
    """Characters of the row before a trailing comment (the whole line without one), trailing space cut."""
    line = text.split("\n")[row]
    cols = [n.start_point[1] for n in _trees(text, language)
            if "comment" in n.type and n.start_point[0] == row]
    end = len(line.encode()[: min(cols)].decode("utf-8", "ignore")) if cols else len(line)
    return len(line[:end].rstrip())


def draw(project: trust_sets.Project, kind: str, n: int, seed: int) -> list[Cursor]:
    """Up to n cursors, at most one per file: files in a seeded random order, a code line in each, and for
    the rest kind a column inside its code (before any trailing comment) with at least one character of
    code on each side."""
    rng = np.random.default_rng([seed, KINDS.index(kind), zlib.crc32(project.name.encode())])
    out = []
    for i in rng.permutation(len(project.files)):
        if len(out) >= n:
            break
        name = project.files[int(i)]
        text = project.text(name)
        rows = code_lines(text, project.language)
        if not rows:
            continue
        row = rows[int(rng.integers(len(rows)))]
        line = text.split("\n")[row]
        indent = len(line) - len(line.lstrip())
        if kind == "line":
            out.append(Cursor(name, row, indent, text, line))
        elif (end := code_end(text, project.language, row)) > indent + 1:
            out.append(Cursor(name, row, int(rng.integers(indent + 1, end)), text, line))
    return out


def workspace(project: trust_sets.Project, cursors: list[Cursor], into: Path) -> Path:
    """A copy of the project with every evaluated line emptied on disk."""
    root = into / project.name
    shutil.copytree(project.root, root, ignore=shutil.ignore_patterns(".complete"))
    for c in cursors:
        (root / c.file).write_text(c.text, encoding="utf-8")
    return root


# ---- the server ----

class Client(bench_lsp.Client):
    """bench_lsp's client that also keeps the server's window/showMessage lines."""

    def __init__(self, process: asyncio.subprocess.Process):
        self.messages: list[str] = []
        super().__init__(process)

    def received(self, message: dict) -> None:
        if message.get("method") == "window/showMessage":
            self.messages.append(message["params"]["message"])

    async def call(self, method: str, params: dict | None = None) -> tuple[float, dict]:
        return await asyncio.wait_for(self.request(method, params), REQUEST_TIMEOUT_S)


async def start(root: Path, options: dict, model: str | None, log: Path) -> tuple:
    """A server whose workspace is root, done loading its model and reading the workspace."""
    command = [sys.executable, "-m", "lsp_server", *(["--model", model] if model else [])]
    with log.open("wb") as err:
        process = await asyncio.create_subprocess_exec(
            *command, cwd=ROOT, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=err)
    client = Client(process)
    caps = {"textDocument": {"inlineCompletion": {}}, "general": {"positionEncodings": ["utf-16"]}}
    await client.call("initialize", {"capabilities": caps, "processId": None, "rootUri": root.as_uri(),
                                     "initializationOptions": options})
    client.notify("initialized", {})
    await settled(client)
    invalid = [m for m in client.messages if "unmask option" in m]
    if invalid:
        await stop(process, client)
        raise SystemExit(f"the server refused options {json.dumps(options)}: {invalid}")
    return process, client


async def settled(client: Client, quiet_s: float = 1.0, limit_s: float = 120.0) -> dict:
    """Status once the model is loaded and the memory's source count has not moved for quiet_s."""
    t0, last, since = time.monotonic(), None, time.monotonic()
    while time.monotonic() - t0 < limit_s:
        status = (await client.call("unmask/status"))[1]["result"]
        sources = (status.get("memory") or {}).get("sources")
        if status["state"] != "loading" and sources == last and time.monotonic() - since >= quiet_s:
            return status
        if sources != last:
            last, since = sources, time.monotonic()
        await asyncio.sleep(0.2)
    return status


async def stop(process: asyncio.subprocess.Process, client: Client) -> None:
    try:
        await client.call("shutdown")
        client.notify("exit", {})
        await asyncio.wait_for(process.wait(), 30)
    except (asyncio.TimeoutError, ConnectionError):
        process.kill()
        await process.wait()


async def ask(client: Client, uri: str, language: str, text: str, offset: int, settle_s: float):
    """Open the document, ask an automatic inline completion at offset, close it: (first item or None, ms,
    the JSON-RPC error's message or None)."""
    client.notify("textDocument/didOpen", {"textDocument": {
        "uri": uri, "languageId": LANGUAGE_IDS[language], "version": 1, "text": text}})
    await asyncio.sleep(settle_s)
    row = text.count("\n", 0, offset)
    line_start = text.rfind("\n", 0, offset) + 1
    params = bench_lsp.inline_params(uri, row, utf16_col(text[line_start:], offset - line_start), True)
    t0 = time.perf_counter()
    t1, response = await client.call("textDocument/inlineCompletion", params)
    client.notify("textDocument/didClose", {"textDocument": {"uri": uri}})
    items = (response.get("result") or {}).get("items") or []
    error = (response.get("error") or {}).get("message")
    return (items[0] if items else None), (t1 - t0) * 1000, error


# ---- judging one answer ----

def syntax_errors(text: str, language: str) -> int:
    return sum(count_errors(t.root_node) for t in infill.Document(text, language).trees)


def explained(item: dict | None) -> dict:
    """The probability, source and kind the server attached (completion.explain), or {}."""
    command = (item or {}).get("command") or {}
    args = command.get("arguments") or [{}]
    return args[0] if command.get("command") == "unmask.explain" and isinstance(args[0], dict) else {}


def judge(c: Cursor, item: dict | None, language: str, ms: float) -> dict:
    before = c.text
    after = apply(before, item) if item else before
    got = after.split("\n")[c.row] if c.row < after.count("\n") + 1 else ""
    shown = after != before
    why = explained(item)
    return {
        "file": c.file, "line": c.row + 1, "col": c.col,
        "probability": why.get("probability"), "source": why.get("source"),
        "completion_kind": why.get("kind"),
        "shown": shown, "exact": shown and got.rstrip() == c.gold.rstrip(),
        "errors_added": syntax_errors(after, language) - syntax_errors(before, language) if shown else None,
        "ms": round(ms, 1), "got": got, "want": c.gold, "_after": after,
    }


# ---- batches ----

async def batch(args, root: Path, language: str, cursors: list[Cursor], log: Path) -> list[dict]:
    """One server process over the workspace root, one automatic request per cursor."""
    process, client = await start(root, args.server_options, args.model, log)
    rows = []
    try:
        for c in cursors:
            uri = (root / c.file).as_uri()
            item, ms, error = await ask(client, uri, language, c.text, c.offset, args.settle_ms / 1000)
            rows.append({**judge(c, item, language, ms), "server_error": error})
            if error:
                print(f"server error at {c.file}:{c.row + 1}: {error[:200]} (log: {log})", file=sys.stderr)
    finally:
        await stop(process, client)
    return rows


def run_project(args, set_name: str, project: trust_sets.Project, kind: str) -> list[dict]:
    cursors = draw(project, kind, args.cases, args.seed)
    if not cursors:
        return []
    with tempfile.TemporaryDirectory(prefix="eval_trust_") as tmp:
        root = workspace(project, cursors, Path(tmp))
        rows = asyncio.run(batch(args, root, project.language, cursors, Path(tmp) / "server.log"))
    for r in rows:
        r.pop("_after")
        r.update({"set": set_name, "project": project.name, "language": project.language, "kind": kind})
    return rows


def humaneval_cursors(n: int, seed: int) -> list[tuple[dict, Cursor]]:
    """One single-line task per problem, n problems spread evenly, the line drawn with the seed."""
    from bench.eval_model import HUMANEVAL, spread

    with gzip.open(HUMANEVAL / HUMANEVAL_FILE, "rt") as fh:
        tasks = [json.loads(line) for line in fh]
    by_problem: dict[str, list[dict]] = {}
    for t in tasks:
        by_problem.setdefault(t["task_id"].rsplit("/", 1)[0], []).append(t)
    rng = np.random.default_rng([seed, 2])
    out = []
    for problem in spread(list(by_problem), n):
        task = by_problem[problem][int(rng.integers(len(by_problem[problem])))]
        gold = task["canonical_solution"].rstrip("\n")
        original = task["prompt"] + gold + "\n" + task["suffix"]
        indent = len(gold) - len(gold.lstrip())
        name = f"problem_{problem.rsplit('/', 1)[1]}.py"
        out.append((task, Cursor(name, task["prompt"].count("\n"), indent, original, gold)))
    return out


def run_humaneval(args) -> list[dict]:
    from bench.eval_model import passes

    chosen = humaneval_cursors(args.humaneval, args.seed)
    with tempfile.TemporaryDirectory(prefix="eval_trust_he_") as tmp:
        root = Path(tmp) / "humaneval"
        root.mkdir()
        for _, c in chosen:
            (root / c.file).write_text(c.text, encoding="utf-8")
        rows = asyncio.run(batch(args, root, "python", [c for _, c in chosen], Path(tmp) / "server.log"))
    for (task, c), r in zip(chosen, rows):
        tests = "\n" + task["test"] + "\n" + f"check({task['entry_point']})\n"
        r["passed"] = passes(r.pop("_after") + tests)
        r["passed_withheld"] = passes(c.text + tests)  # what the user has if the line is not shown
        r.update({"set": "humaneval", "project": "HumanEval", "language": "python", "kind": "line"})
    return rows


# ---- summaries and the curve ----

def shown_at(r: dict, t: float | None) -> bool:
    p = r["probability"]
    return r["shown"] and (t is None or p is None or p >= t)


def summary(rows: list[dict], t: float | None) -> dict:
    n = len(rows)
    shown = [r for r in rows if shown_at(r, t)]
    exact = sum(r["exact"] for r in shown)
    ms = [r["ms"] for r in rows]
    out = {
        "cursors": n,
        "threshold": t,
        "exact_overall": round(exact / n, 4),
        "share_shown": round(len(shown) / n, 4),
        "precision": round(exact / len(shown), 4) if shown else None,
        "shown_adding_syntax_error": round(sum((r["errors_added"] or 0) > 0 for r in shown) / len(shown), 4)
        if shown else None,
        "with_probability": sum(r["probability"] is not None for r in rows),
        "server_errors": sum(r.get("server_error") is not None for r in rows),
        "p50_ms": round(statistics.median(ms), 1),
        "p95_ms": round(bench_lsp.percentile(ms, 0.95), 1),
    }
    if "passed" in rows[0]:
        passed = sum(r["passed"] if shown_at(r, t) else r["passed_withheld"] for r in rows)
        out["pass@1"] = round(passed / n, 4)
    return out


def groups(rows: list[dict]) -> dict[tuple[str, str, str], list[dict]]:
    out: dict[tuple[str, str, str], list[dict]] = {}
    for r in rows:
        out.setdefault((r["set"], r["language"], r["kind"]), []).append(r)
    return out


COLORS = {"python": "tab:blue", "go": "tab:orange", "rust": "tab:red", "typescript": "tab:purple"}
STYLES = {"line": "-", "rest": "--"}


def curve(rows: list[dict], t0: float | None, out: Path, title: str, t0_label: str) -> None:
    """Precision against share shown as the threshold rises from 0 to 1, a line per (set, language, kind)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5.5), dpi=110)
    thresholds = np.linspace(0, 1, 101)
    for (set_name, language, kind), chosen in sorted(groups(rows).items()):
        points = [summary(chosen, float(t)) for t in thresholds]
        xs = [100 * p["share_shown"] for p in points if p["precision"] is not None]
        ys = [100 * p["precision"] for p in points if p["precision"] is not None]
        humaneval = set_name == "humaneval"
        name = f"{language} {kind}{' (HumanEval)' if humaneval else ''}, n={len(chosen)}"
        color = "tab:green" if humaneval else COLORS.get(language)
        ax.plot(xs, ys, ":" if humaneval else STYLES[kind], lw=1.8, color=color, label=name)
        at = summary(chosen, t0)
        if at["precision"] is not None:
            ax.plot(100 * at["share_shown"], 100 * at["precision"], "o", ms=8, color=color,
                    markeredgecolor="black")
    ax.plot([], [], "o", color="gray", markeredgecolor="black",
            label=f"at threshold {'none' if t0 is None else f'{t0:g}'} ({t0_label})")
    ax.set_xlabel("share of cursors shown a completion (%)")
    ax.set_ylabel("precision: shown completions that are exact (%)")
    ax.set_xlim(0, 100)
    ax.set_ylim(0, 100)
    ax.grid(alpha=0.3)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8, loc="lower left")
    fig.tight_layout()
    fig.savefig(out)


def commit() -> str:
    def git(*a: str) -> str:
        return subprocess.run(["git", *a], cwd=ROOT, capture_output=True, text=True).stdout.strip()

    dirty = git("status", "--porcelain", "--", "engine", "infill", "lsp_server", "grammars")
    return git("rev-parse", "--short", "HEAD") + ("-dirty" if dirty else "")


def table(summaries: list[dict]) -> str:
    lines = ["| set | language | kind | cursors | exact overall | shown | precision "
             "| shown adding a syntax error | p50 / p95 ms |", "|---|---|---|---|---|---|---|---|---|"]
    for s in summaries:
        def pct(v):
            return "-" if v is None else f"{v:.1%}"

        extra = f" (pass@1 {s['pass@1']:.1%})" if "pass@1" in s else ""
        lines.append(f"| {s['set']} | {s['language']} | {s['kind']} | {s['cursors']} | "
                     f"{pct(s['exact_overall'])}{extra} | {pct(s['share_shown'])} | {pct(s['precision'])} | "
                     f"{pct(s['shown_adding_syntax_error'])} | {s['p50_ms']} / {s['p95_ms']} |")
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--set", choices=list(trust_sets.SETS))
    p.add_argument("--languages", default=",".join(LANGUAGES))
    p.add_argument("--kinds", default=",".join(KINDS))
    p.add_argument("--projects", default="", help="only projects whose name starts with one of these (comma)")
    p.add_argument("--cases", type=int, default=30, help="cursors per project and kind, one per file at most")
    p.add_argument("--humaneval", type=int, default=0, metavar="N", help="also N HumanEval problems")
    p.add_argument("--options", default="{}", help="server options (JSON) merged over the trust options")
    p.add_argument("--threshold", type=float, help="threshold of the summary (default: the server's default)")
    p.add_argument("--curve", type=Path, help="PNG of precision against share shown over thresholds")
    p.add_argument("--model")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--settle-ms", type=float, default=200, help="wait between didOpen and the request")
    p.add_argument("--out", type=Path, default=RESULTS / "eval_trust.jsonl")
    p.add_argument("--cursors-out", type=Path, default=RESULTS / "eval_trust_cursors.jsonl")
    p.add_argument("--summarize", type=Path, metavar="CURSORS_JSONL",
                   help="run nothing: summarize (and --curve) a run's cursor rows again, at --threshold; "
                        "printed, not saved")
    p.add_argument("--run", help="with --summarize: the run's date field (default: the latest run)")
    args = p.parse_args(argv)
    if args.set is None and args.summarize is None:
        p.error("give --set heldout|development (or --summarize FILE)")
    args.languages = tuple(x for x in args.languages.split(",") if x)
    args.kinds = tuple(x for x in args.kinds.split(",") if x)
    if bad := (set(args.languages) - set(LANGUAGES)) | (set(args.kinds) - set(KINDS)):
        p.error(f"unknown language or kind: {', '.join(sorted(bad))}")
    return args


def evaluate(args: argparse.Namespace, stamp: dict) -> list[dict]:
    """Every (project, kind) batch of the set, then HumanEval; cursor rows appended to --cursors-out as
    each batch ends."""
    args.cursors_out.parent.mkdir(parents=True, exist_ok=True)
    wanted = tuple(x for x in args.projects.split(",") if x)
    projects = [q for q in trust_sets.fetch(args.set, args.languages)
                if not wanted or q.name.startswith(wanted)]
    rows = []
    for proj, kind in [(proj, kind) for proj in projects for kind in args.kinds]:
        t0 = time.monotonic()
        found = run_project(args, args.set, proj, kind)
        rows += found
        save(args.cursors_out, [{**r, **stamp} for r in found])
        print(f"{proj.name} {kind}: {len(found)} cursors, {sum(r['exact'] for r in found)} exact, "
              f"{time.monotonic() - t0:.0f} s", file=sys.stderr, flush=True)
    if args.humaneval:
        found = run_humaneval(args)
        rows += found
        save(args.cursors_out, [{**r, **stamp} for r in found])
    return rows


def saved_run(path: Path, run: str | None) -> list[dict]:
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    run = run or max(r["date"] for r in rows)
    return [r for r in rows if r["date"] == run]


def report(rows: list[dict], threshold: float | None, curve_png: Path | None, t0_label: str) -> list[dict]:
    """Summaries per (set, language, kind) at the threshold, printed as a table; the curve when asked."""
    stamp = {k: rows[0][k] for k in ("options", "model", "date", "commit")} if rows else {}
    summaries = [{"set": s, "language": lang, "kind": k, "projects": sorted({r["project"] for r in chosen}),
                  **summary(chosen, threshold), **stamp}
                 for (s, lang, k), chosen in sorted(groups(rows).items())]
    print(table(summaries))
    if curve_png and rows:
        sets = "+".join(sorted({r["set"] for r in rows}))
        title = (f"unmask through the server while typing (automatic trigger): {sets}\n"
                 f"model {stamp['model']}, commit {stamp['commit']}, {stamp['date'][:10]}; "
                 "each line: the threshold rising from 0 (right) to 1 (left)")
        curve(rows, threshold, curve_png, title, t0_label)
        print(f"wrote {curve_png}")
    return summaries


def main() -> int:
    args = parse_args()
    threshold = args.threshold if args.threshold is not None else default_threshold()
    label = "--threshold" if args.threshold is not None else "the server's default"
    if args.summarize:
        report(saved_run(args.summarize, args.run), threshold, args.curve, label)
        return 0
    args.server_options = merge(base_options(), json.loads(args.options))
    stamp = {"options": json.dumps(args.server_options, sort_keys=True), "model": args.model or "default",
             "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
             "commit": commit()}
    rows = [{**r, **stamp} for r in evaluate(args, stamp)]
    save(args.out, report(rows, threshold, args.curve, label))
    return 0


def save(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as fh:
        for r in rows:
            fh.write(json.dumps(r) + "\n")


if __name__ == "__main__":
    sys.exit(main())
