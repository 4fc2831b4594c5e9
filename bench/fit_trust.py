"""Fit the calibration that decides which completions are shown (infill/trust.py), on development projects.

    python -m bench.fit_trust [--set development] [--languages python,go,rust,typescript] [--cases 60]
        [--rounds 4] [--out engine/default_model/trust.json]
    python -m bench.fit_trust --adapt-minutes 5 --out engine/default_model/trust-adapted.json ...

For each project of the set (bench/trust_sets.py), kind (whole line, rest of line) and round (--rounds), up
to --cases files get one evaluated line each (bench/eval_trust.py `draw`); those lines are removed from every
text the repository memory holds (the project, as the server's workspace would read it), then each cursor
goes through the server's completion step with every candidate kept (the denoised middles and the memory's
proposals) and its evidence. A candidate is positive when it makes the cursor's line exactly the original.
A logistic regression (L2, Newton's method) is fitted on all candidates; the script prints, for thresholds on
the best candidate's probability, the share of cursors shown and the exact match among them, per kind, and
writes the weights. The rows (--rows) keep each candidate's raw evidence, text and surrounding lines, for
trying other calibrations on them (bench/trust_cv.py). Development projects only: never a project whose
numbers are reported as held out.

With --adapt-minutes, each project's candidates come from the network adapted to that project first
(engine/training/adapt.py, one thread, a minute counted as --minute-tokens row tokens); EVERY evaluated
line of every kind and round is emptied in the texts it trains on. That fit is the calibration an adapted
checkpoint is judged by (`trust-adapted.json` beside the base, copied into each adapted folder as its
trust.json): an adapted network writes right answers the memory does not have, which the base network's
calibration, having never seen the network alone be right, would never show.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import infill  # noqa: E402
from bench import trust_sets  # noqa: E402
from bench.eval_trust import draw  # noqa: E402
from infill.pipeline import candidates as judged_candidates  # noqa: E402
from infill.trust import FEATURES, Calibration, features  # noqa: E402
from lsp_server.completion import filler  # noqa: E402
from lsp_server.models import memory_config, sampler_for  # noqa: E402
from lsp_server.options import Options, parse  # noqa: E402

L2 = 1.0


def cursor_rows(model, project, kind: str, n: int, seed: int, options: Options, score: bool) -> list[dict]:
    """One evaluated line per file (bench/eval_trust.py `draw`); each cursor's candidates with features and
    labels."""
    picked = draw(project, kind, n, seed)
    emptied = {c.file: c.text for c in picked}
    memory_cfg = memory_config(options.memory)
    model.memory.clear()
    for name in project.files:  # the workspace as read from disk: every evaluated line removed
        model.memory.update(name, emptied.get(name) or project.text(name))
    # every feature in use, or all but the network's score (a batched forward the server then skips)
    probe = Calibration(tuple(0.0 if f == "score" and not score else 1e-12 for f in FEATURES))
    fill = filler.make_filler(model, sampler_for(options.sampler, model), None, memory_cfg)
    room = model.context_room(options.completion.max_tokens)
    budget = filler.context_budget(options, room, model.info.device)
    infill_options = dataclasses.replace(options.infill(), context_tokens=budget)
    rows = []
    for c in picked:
        text, offset = c.text, c.offset
        model.memory.update(c.file, text, cursor=offset)
        doc = infill.Document(text, project.language)
        found = judged_candidates(doc, offset, fill, count_tokens=model.count_tokens, invoked=False,
                                  options=infill_options, judge=filler.judge(model, memory_cfg, probe))
        cursor = f"{project.name}:{seed}:{c.file}:{c.row}"
        for (cand, _), e in (found[2] if found else []):
            line = (text[: found[0].start] + cand + text[found[0].end :]).split("\n")[c.row]
            rows.append({"cursor": cursor, "language": project.language, "kind": kind,
                         "exact": line.rstrip() == c.gold.rstrip(), "x": features(e),
                         "evidence": dataclasses.asdict(e), "text": cand, "line": line,
                         "before": text[text.rfind("\n", 0, offset) + 1 : offset],
                         "near": text.split("\n")[max(c.row - 3, 0) : c.row + 4]})
        if not found or not found[2]:
            rows.append({"cursor": cursor, "language": project.language, "kind": kind, "exact": False,
                         "x": None})
    return rows


def adapted(base, project, n: int, seed: int, rounds: int, minutes: float, minute_tokens: int, into: Path):
    """The base model adapted to `project` with every cursor fit_trust will ask emptied from its texts."""
    import engine
    from engine.training.adapt import AdaptConfig, adapt

    texts = {name: project.text(name) for name in project.files}
    for kind in ("line", "rest"):
        for r in range(rounds):
            for c in draw(project, kind, n, seed + 1000 * r):
                lines = texts[c.file].split("\n")
                lines[c.row] = lines[c.row][: len(lines[c.row]) - len(lines[c.row].lstrip())]
                texts[c.file] = "\n".join(lines)
    if (into / "adaptation.json").is_file():  # --keep-adapted: an earlier run's, the same cursors emptied
        return engine.load_model(into, dtype="auto", quantize="auto")
    cfg = AdaptConfig(minutes=minutes, minute_tokens=minute_tokens)
    report = adapt(Path(base.info.folder), texts, into, cfg)
    print(f"{project.name}: adapted {report.steps} steps, loss {report.loss_before} -> {report.loss_after}",
          file=sys.stderr)
    return engine.load_model(into, dtype="auto", quantize="auto")


def fit(x: np.ndarray, y: np.ndarray, l2: float = L2, steps: int = 50) -> np.ndarray:
    """Logistic regression by Newton's method; the bias (column 0) is not penalised."""
    w = np.zeros(x.shape[1])
    penalty = np.full(x.shape[1], l2)
    penalty[0] = 0.0
    for _ in range(steps):
        p = 1 / (1 + np.exp(-np.clip(x @ w, -30, 30)))
        grad = x.T @ (p - y) + penalty * w
        hess = (x * (p * (1 - p))[:, None]).T @ x + np.diag(penalty) + 1e-9 * np.eye(x.shape[1])
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    return w


def curve(rows: list[dict], cal: Calibration, kind: str) -> list[tuple[float, float, float, float]]:
    """(threshold, share shown, exact among shown, exact overall) over the best candidate per cursor."""
    best: dict[str, tuple[float, bool]] = {}
    for r in rows:
        if r["kind"] != kind:
            continue
        p = -1.0 if r["x"] is None else 1 / (1 + np.exp(-np.dot(cal.weights, r["x"])))
        if r["cursor"] not in best or p > best[r["cursor"]][0]:
            best[r["cursor"]] = (p, r["exact"])
    n = len(best)
    out = []
    for t in np.arange(0.0, 1.0, 0.05):
        shown = [e for p, e in best.values() if p >= t]
        out.append((round(float(t), 2), len(shown) / max(n, 1), sum(shown) / max(len(shown), 1),
                    sum(shown) / max(n, 1)))
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--set", default="development", choices=("development",),
                   help="bench/trust_sets.py's development set: never a held-out one")
    p.add_argument("--languages", default="python,go,rust,typescript")
    p.add_argument("--cases", type=int, default=60)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--rounds", type=int, default=4, help="evaluated lines per file, one per round")
    p.add_argument("--score", action="store_true",
                   help="use the network's score of each candidate (one more batched forward per completion: "
                        "about 50 ms on a 2-core CPU, for little gain on the development projects)")
    p.add_argument("--model")
    p.add_argument("--out", type=Path, default=Path("engine/default_model/trust.json"))
    p.add_argument("--rows", type=Path, default=Path("runs/trust_rows.jsonl"), help="candidates, for reuse")
    p.add_argument("--reuse", action="store_true", help="fit on --rows instead of collecting again")
    p.add_argument("--adapt-minutes", type=float, default=0.0,
                   help="candidates of the network adapted to each project this long (its lines emptied)")
    p.add_argument("--keep-adapted", type=Path,
                   help="with --adapt-minutes: keep (and reuse) each project's adapted folder under this one")
    p.add_argument("--options", default="{}", help="server options (JSON) the candidates are made with")
    p.add_argument("--minute-tokens", type=int, default=133_120,
                   help="with --adapt-minutes: a minute is this many row tokens (a quiet core's)")
    args = p.parse_args()
    if args.reuse:
        rows = [json.loads(line) for line in args.rows.read_text().splitlines()]
    else:
        import tempfile

        import torch

        import engine

        torch.set_num_threads(1)
        base = engine.load_model(args.model, dtype="auto", quantize="auto")
        options, problems = parse(json.loads(args.options))
        if problems:
            p.error("; ".join(problems))
        rows = []
        for project in trust_sets.fetch(args.set, tuple(args.languages.split(","))):
            model, tmp = base, None
            if args.adapt_minutes > 0:
                where = args.keep_adapted
                if where is None:
                    tmp = tempfile.TemporaryDirectory(prefix="fit_trust_")
                    where = Path(tmp.name)
                run = f"{args.adapt_minutes:g}min-seed{args.seed}-{args.cases}x{args.rounds}"
                into = where / f"{project.name}-{run}"
                model = adapted(base, project, args.cases, args.seed, args.rounds, args.adapt_minutes,
                                args.minute_tokens, into)
            for kind in ("line", "rest"):
                for r in range(args.rounds):  # another line per file each round, the memory rebuilt
                    seed = args.seed + 1000 * r
                    rows += cursor_rows(model, project, kind, args.cases, seed, options, args.score)
                print(f"{project.name} {kind}: {len(rows)} rows so far", file=sys.stderr)
                args.rows.parent.mkdir(parents=True, exist_ok=True)
                args.rows.write_text("".join(json.dumps(r) + "\n" for r in rows))
            if tmp is not None:
                tmp.cleanup()
        args.rows.parent.mkdir(parents=True, exist_ok=True)
        args.rows.write_text("".join(json.dumps(r) + "\n" for r in rows))
    usable = [r for r in rows if r["x"] is not None]
    x = np.array([r["x"] for r in usable], dtype=float)
    y = np.array([r["exact"] for r in usable], dtype=float)
    w = fit(x, y)
    if not args.reuse and not args.score:
        w[FEATURES.index("score")] = 0.0  # never measured: the server must not ask for it
    cursors = len({r["cursor"] for r in rows})
    what = f"{args.set} set ({args.languages}): {len(usable)} candidates, {cursors} cursors"
    if args.adapt_minutes:
        what += f", the network adapted to each project for {args.adapt_minutes:g} minutes"
    cal = Calibration(tuple(float(v) for v in w), f"{what} (bench/fit_trust.py)")
    print("weights:", {f: round(float(v), 3) for f, v in zip(FEATURES, w)})
    for kind in ("line", "rest"):
        print(f"\n{kind}: threshold  shown  exact|shown  exact")
        for t, shown, prec, overall in curve(rows, cal, kind):
            print(f"  {t:4.2f}  {shown:6.1%}  {prec:6.1%}  {overall:6.1%}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    cal.save(args.out)
    print(f"\nwrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
