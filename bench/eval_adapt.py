"""Does adapting the network to a project help on that project's code? A learning curve, honestly measured.

    python -m bench.eval_adapt --set development|heldout [--projects toolz,attrs] [--kinds rest,line]
                               [--cases 30] [--minutes 2,5,10] [--lr 1e-4] [--guard anchor|replay]
                               [--server] [--humaneval N] [--tag NAME]
    python -m bench.eval_adapt --plot PNG --tag NAME     the learning curve of a run's saved rows
    python -m bench.eval_adapt --table --tag NAME        its rows as a Markdown table

For each project of the set (bench/trust_sets.py; tune on "development", report on "heldout") and kind, up to
--cases cursors are drawn exactly as bench/eval_trust.py draws them (one per file). EVERY evaluated line of
every kind is emptied in the texts the adaptation reads (adapting on the answer is not adaptation); one run
of engine/training/adapt.py (one thread) then writes the weights at each of --minutes.

Each checkpoint (and the embedded model, minute 0) is measured:
- always, in process: the network alone (memory off) through the server's completion step with every answer
  shown, exact match of the cursor's line, and the mean log-probability of the true rest of the line in
  place (quick and smooth; for tuning);
- with --server: through the real server as bench/eval_trust.py does it (one server process per project and
  kind, the project as its workspace with that batch's evaluated lines emptied on disk and in the buffer),
  network alone (`memory.enabled: false`) and fused (default options), exact overall at the server's
  default threshold and with every answer shown;
- with --humaneval N: HumanEval single-line infilling through the server, one line per problem (general
  ability after adapting on the first project).
Rows go to bench/results/eval_adapt.jsonl; one line per measurement to stdout.
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
import tempfile
import time
from argparse import Namespace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import infill  # noqa: E402
from bench import eval_trust, trust_sets  # noqa: E402
from lsp_server.completion import filler  # noqa: E402
from lsp_server.options import parse  # noqa: E402

RESULTS = eval_trust.RESULTS / "eval_adapt.jsonl"
NETWORK_ALONE = {"memory": {"enabled": False}}


def gold_logprob(model, cursors) -> float:
    """Mean over cursors of the network's mean log-probability of the true rest of the line in place (all its
    tokens masked at once): a smooth measure of what adaptation taught, where exact match moves in steps."""
    scores = [model.score(c.text[: c.offset], c.text[c.offset :], [c.gold[c.col :]])[0] for c in cursors]
    return sum(scores) / max(len(scores), 1)


def network_alone(model, cursors, language: str) -> float:
    """Exact share of the cursors' lines, memory off, every answer shown (in process)."""
    options, _ = parse({**NETWORK_ALONE, "completion": {"minConfidence": 0, "minConfidenceInvoked": 0}})
    exact = 0
    for c in cursors:
        got = filler.complete(model, infill.Document(c.text, language), c.offset, options, invoked=False)
        if got is None or isinstance(got, infill.Withheld):
            continue
        line = (c.text[: got.start] + got.text + c.text[got.end :]).split("\n")[c.row]
        exact += line.rstrip() == c.gold.rstrip()
    return exact / max(len(cursors), 1)


def emptied_texts(project: trust_sets.Project, cursors: list) -> dict[str, str]:
    texts = {name: project.text(name) for name in project.files}
    for c in cursors:
        lines = texts[c.file].split("\n")
        lines[c.row] = lines[c.row][: len(lines[c.row]) - len(lines[c.row].lstrip())]
        texts[c.file] = "\n".join(lines)
    return texts


def through_server(project, kind: str, model: str | None, options: dict, args) -> dict:
    run = Namespace(cases=args.cases, seed=args.seed, model=model, settle_ms=200,
                    server_options=eval_trust.merge(eval_trust.base_options(), options))
    rows = eval_trust.run_project(run, args.set, project, kind)
    if args.cursors_out:
        with args.cursors_out.open("a") as fh:
            for r in rows:
                fh.write(json.dumps({"tag": args.tag, "model": model, "options": options, **r}) + "\n")
    at_default = eval_trust.summary(rows, eval_trust.default_threshold())
    every = eval_trust.summary(rows, None)
    return {"exact": at_default["exact_overall"], "shown": at_default["share_shown"],
            "precision": at_default["precision"], "exact_all_shown": every["exact_overall"],
            "p50_ms": at_default["p50_ms"]}


def humaneval(model: str | None, args) -> dict:
    run = Namespace(humaneval=args.humaneval, seed=args.seed, model=model, settle_ms=200,
                    server_options=eval_trust.base_options())
    rows = eval_trust.run_humaneval(run)
    s = eval_trust.summary(rows, eval_trust.default_threshold())
    return {"pass@1": s["pass@1"], "pass@1_all_shown": eval_trust.summary(rows, None)["pass@1"],
            "shown": s["share_shown"]}


def curve_points(rows: list[dict]) -> dict[str, dict[float, float]]:
    """(series -> minutes -> mean over projects) of a run's rows: exact overall through the server (the
    network alone with every answer shown, fused at the default threshold; per kind), the gold
    log-probability, HumanEval pass@1."""
    sums: dict[str, dict[float, list[float]]] = {}

    def add(series: str, minutes: float, value) -> None:
        if value is not None:
            sums.setdefault(series, {}).setdefault(minutes, []).append(value)

    for r in rows:
        m = r["minutes"]
        if r["kind"] == "humaneval":
            add("HumanEval pass@1", m, 100 * r["humaneval"]["pass@1"])
            continue
        add(f"gold log-prob {r['kind']}", m, r.get("gold_logprob"))
        if "alone" not in r:  # measured in process only
            add(f"alone, every answer shown {r['kind']}", m, 100 * r["alone_in_process"])
        if "alone" in r:  # at the default threshold the network alone is never shown: its answers, all shown
            add(f"network alone (every answer shown) {r['kind']}", m, 100 * r["alone"]["exact_all_shown"])
        if "fused" in r:
            add(f"fused (default options) {r['kind']}", m, 100 * r["fused"]["exact"])
    return {k: {m: sum(v) / len(v) for m, v in sorted(d.items())} for k, d in sums.items()}


def table(rows: list[dict]) -> str:
    def pct(v) -> str:
        return "-" if v is None else f"{100 * v:.1f}%"

    out = ["| project | kind | minutes | network alone, exact (every answer shown) | true line log-prob | "
           "fused exact (default options) | fused shown | fused precision |",
           "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if r["kind"] == "humaneval":
            h = r["humaneval"]
            out.append(f"| HumanEval (after {r['project']}) | line | {r['minutes']:g} | - | - | "
                       f"pass@1 {pct(h['pass@1'])} | {pct(h['shown'])} | - |")
            continue
        a, f = r.get("alone", {}), r.get("fused", {})
        out.append(f"| {r['project']} | {r['kind']} | {r['minutes']:g} | "
                   f"{pct(a.get('exact_all_shown', r['alone_in_process']))} | {r['gold_logprob']:.3f} | "
                   f"{pct(f.get('exact'))} | {pct(f.get('shown'))} | {pct(f.get('precision'))} |")
    return "\n".join(out)


def plot(rows: list[dict], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points = curve_points(rows)
    projects = sorted({r["project"] for r in rows if r["kind"] != "humaneval"})
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.5), dpi=110)
    for name, series in points.items():
        ax = right if name.startswith("gold") else left
        style = "--" if "line" in name else ":" if "HumanEval" in name else "-"
        color = "tab:blue" if "fused" in name else "tab:orange" if "alone" in name else "tab:green"
        ax.plot(list(series), list(series.values()), style, marker="o", color=color, label=name)
    left.set_ylabel("exact match through the server (%)")
    right.set_ylabel("mean log-probability of the true line, network alone")
    for ax in (left, right):
        ax.set_xlabel("minutes of adaptation on one core")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    cfg = rows[0]["config"]
    fig.suptitle(f"Adapting the embedded model to a project ({', '.join(projects)}; mean over projects); "
                 f"lr {cfg['lr']:g}, guard {cfg['guard']}, commit {rows[0]['commit']}", fontsize=9)
    fig.tight_layout()
    fig.savefig(out)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--plot", type=Path, help="draw the learning curve of the rows saved with --tag")
    p.add_argument("--table", action="store_true", help="print the rows saved with --tag as a table")
    p.add_argument("--set", choices=list(trust_sets.SETS))
    p.add_argument("--languages", default="python")
    p.add_argument("--projects", default="")
    p.add_argument("--kinds", default="rest,line")
    p.add_argument("--cases", type=int, default=30)
    p.add_argument("--minutes", default="2,5,10", 
                   help="checkpoints of one run, in minutes (the last ends it)")
    p.add_argument("--lr", type=float, default=None)
    p.add_argument("--anchor", type=float, default=None)
    p.add_argument("--warmup", type=int, default=None, help="warm-up steps")
    p.add_argument("--guard", choices=["anchor", "replay", "none"], default=None)
    p.add_argument("--minute-tokens", type=int, default=0,
                   help="count a minute as this many row tokens (what a quiet core trains in a minute), "
                        "not wall-clock time: for runs beside other work")
    p.add_argument("--server", action="store_true", help="also through the real server, alone and fused")
    p.add_argument("--humaneval", type=int, default=0, metavar="N")
    p.add_argument("--tag", default="", help="a name for this run's rows")
    p.add_argument("--cursors-out", type=Path, help="with --server: every cursor's answer, appended here")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    if args.plot or args.table:
        rows = [json.loads(line) for line in RESULTS.read_text().splitlines() if line.strip()]
        rows = [r for r in rows if r.get("tag") == args.tag]
        if args.table:
            print(table(rows))
        if args.plot:
            plot(rows, args.plot)
        return 0
    if args.set is None:
        p.error("--set is required to measure")

    import dataclasses

    import torch

    import engine
    from engine.registry import DEFAULT_MODEL
    from engine.training.adapt import AdaptConfig, adapt

    torch.set_num_threads(1)
    points = sorted(float(m) for m in args.minutes.split(","))
    asked = (("lr", args.lr), ("anchor", args.anchor), ("guard", args.guard),
             ("warmup_steps", args.warmup), ("minute_tokens", args.minute_tokens or None))
    changes = {k: v for k, v in asked if v is not None}
    cfg = dataclasses.replace(AdaptConfig(minutes=points[-1], seed=args.seed), **changes)
    stamp = {"tag": args.tag, "set": args.set, "config": dataclasses.asdict(cfg),
             "commit": eval_trust.commit(),
             "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
    base = engine.load_model(dtype="float32")
    trained_on = Path(base.info.folder) / "training.json"  # which weights were adapted, for the model card
    if trained_on.is_file():
        stamp["base_tokens"] = json.loads(trained_on.read_text())["state"]["tokens_seen"]
    wanted = tuple(x for x in args.projects.split(",") if x)
    projects = [q for q in trust_sets.fetch(args.set, tuple(args.languages.split(",")))
                if not wanted or q.name.startswith(wanted)]
    kinds = args.kinds.split(",")
    for i, project in enumerate(projects):
        cursors = {k: eval_trust.draw(project, k, args.cases, args.seed) for k in kinds}
        texts = emptied_texts(project, [c for k in kinds for c in cursors[k]])
        with tempfile.TemporaryDirectory(prefix="eval_adapt_") as tmp:
            folders = {m: Path(tmp) / f"after_{m:g}min" for m in points}
            t0 = time.monotonic()
            report = adapt(DEFAULT_MODEL, texts, folders[points[-1]], cfg,
                           checkpoints=[(m, f) for m, f in folders.items() if m != points[-1]])
            trained = {"steps": report.steps, "minutes": report.minutes, "loss_before": report.loss_before,
                       "loss_after": report.loss_after, "wall_s": round(time.monotonic() - t0)}
            for m, folder in [(0.0, None), *folders.items()]:
                model = base if folder is None else engine.load_model(folder, dtype="float32")
                for k in kinds:
                    row = {**stamp, "project": project.name, "language": project.language, "kind": k,
                           "minutes": m, "cursors": len(cursors[k]), "adaptation": trained,
                           "alone_in_process": round(network_alone(model, cursors[k], project.language), 4),
                           "gold_logprob": round(gold_logprob(model, cursors[k]), 4)}
                    if args.server:
                        where = None if folder is None else str(folder)
                        row["alone"] = through_server(project, k, where, NETWORK_ALONE, args)
                        row["fused"] = through_server(project, k, where, {}, args)
                    save(row)
                if args.humaneval and i == 0:
                    save({**stamp, "project": project.name, "kind": "humaneval", "minutes": m,
                          "humaneval": humaneval(None if folder is None else str(folder), args)})
    return 0


def save(row: dict) -> None:
    brief = {k: v for k, v in row.items() if k not in ("config", "commit", "date", "set", "tag")}
    print(json.dumps(brief), flush=True)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    with RESULTS.open("a") as fh:
        fh.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    sys.exit(main())
