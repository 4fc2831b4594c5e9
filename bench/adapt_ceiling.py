"""Can adapting the network add answers the repository memory does not have? Per cursor, on development
projects, from the candidate rows bench/fit_trust.py wrote (one file per arm: the base or the adapted network,
a memory weight):

    python -m bench.fit_trust --languages python --rounds 2 --cases 60 --score \
        --adapt-minutes 5 --keep-adapted runs/adapted --rows runs/rows_ad_w97.jsonl \
        --out runs/trust_adapted.json
    python -m bench.adapt_ceiling runs/trust_rows.jsonl runs/rows_ad_w97.jsonl [--alone runs/adapted]

For each rows file and kind: the ceiling (cursors where ANY candidate makes the line exact: what a perfect
judge would reach), the best candidate's exact match under a calibration fitted on that file (in sample: it
compares arms, it is not a held-out figure) at no threshold and at 0.3, with and without the network's score
as a feature. With --alone, the network alone (memory off, every answer shown) at the same cursors, base and
adapted (the folders fit_trust kept), and how many of its exact answers no fused candidate had.
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.fit_trust import fit  # noqa: E402
from infill.trust import FEATURES  # noqa: E402

SCORE = FEATURES.index("score")


def load(path: Path, language: str) -> list[dict]:
    return [r for r in map(json.loads, path.read_text().splitlines()) if r["language"] == language]


def arm(rows: list[dict], kind: str, w: np.ndarray, drop_score: bool) -> dict:
    best: dict[str, tuple[float, bool]] = {}
    ceiling: dict[str, bool] = collections.defaultdict(bool)
    for r in rows:
        if r["kind"] != kind:
            continue
        ceiling[r["cursor"]] |= r["exact"]
        if r["x"] is None:
            continue
        x = np.array(r["x"])
        if drop_score:
            x[SCORE] = 0.0
        p = float(1 / (1 + np.exp(-x @ w)))
        if r["cursor"] not in best or p > best[r["cursor"]][0]:
            best[r["cursor"]] = (p, r["exact"])
    n = max(len(ceiling), 1)
    shown = [e for p, e in best.values() if p >= 0.3]
    return {"cursors": len(ceiling), "ceiling": sum(ceiling.values()) / n,
            "top": sum(e for _, e in best.values()) / n, "shown@0.3": len(shown) / n,
            "precision@0.3": sum(shown) / max(len(shown), 1), "exact@0.3": sum(shown) / n}


def calibrated(rows: list[dict], drop_score: bool) -> np.ndarray:
    use = [r for r in rows if r["x"] is not None]
    x = np.array([r["x"] for r in use], dtype=float)
    if drop_score:
        x[:, SCORE] = 0.0
    return fit(x, np.array([r["exact"] for r in use], dtype=float))


def alone(folders: Path, rows: list[dict], language: str) -> list[dict]:
    """The network alone at the rows' cursors, base and adapted: one row per (model, cursor, kind)."""
    import torch

    import engine
    import infill
    from bench import trust_sets
    from bench.eval_trust import draw
    from lsp_server.completion import filler
    from lsp_server.options import parse

    torch.set_num_threads(1)
    options, _ = parse({"memory": {"enabled": False},
                        "completion": {"minConfidence": 0, "minConfidenceInvoked": 0}})
    asked = {(r["cursor"], r["kind"]) for r in rows}
    seeds = sorted({int(c.split(":")[1]) for c, _ in asked})
    out = []
    for project in trust_sets.fetch("development", (language,)):
        found = sorted(folders.glob(f"{project.name}-*"))
        if not found:
            continue
        for name, model in (("base", engine.load_model(dtype="auto")),
                            ("adapted", engine.load_model(found[0], dtype="auto"))):
            for kind in ("line", "rest"):
                for seed in seeds:
                    for c in draw(project, kind, 60, seed):
                        cursor = f"{project.name}:{seed}:{c.file}:{c.row}"
                        if (cursor, kind) not in asked:
                            continue
                        got = filler.complete(model, infill.Document(c.text, language), c.offset, options,
                                              invoked=False)
                        exact = False
                        if got is not None and not isinstance(got, infill.Withheld):
                            line = (c.text[: got.start] + got.text + c.text[got.end :]).split("\n")[c.row]
                            exact = line.rstrip() == c.gold.rstrip()
                        out.append({"model": name, "cursor": cursor, "kind": kind, "exact": exact})
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("rows", type=Path, nargs="+", help="bench/fit_trust.py rows, a file per arm")
    p.add_argument("--language", default="python")
    p.add_argument("--seeds", default="0,1000", help="the rounds' seeds to compare (the same in every file)")
    p.add_argument("--alone", type=Path, help="the adapted folders bench/fit_trust.py --keep-adapted wrote")
    args = p.parse_args()
    seeds = set(args.seeds.split(","))
    arms = {}
    for path in args.rows:
        rows = [r for r in load(path, args.language) if r["cursor"].split(":")[1] in seeds]
        arms[path] = rows
        for drop in (False, True):
            w = calibrated(rows, drop)
            for kind in ("line", "rest"):
                s = arm(rows, kind, w, drop)
                print(f"{path.name:28s} {'no score' if drop else 'score   '} {kind:4s} "
                      + "  ".join(f"{k} {v:.1%}" if k != "cursors" else f"{k} {v}" for k, v in s.items()))
    if args.alone:
        first = arms[args.rows[-1]]
        fused = collections.defaultdict(bool)
        for r in first:
            fused[(r["cursor"], r["kind"])] |= r["exact"]
        counts = collections.Counter()
        for r in alone(args.alone, first, args.language):
            k = (r["cursor"], r["kind"])
            counts[(r["model"], r["kind"], "cursors")] += 1
            counts[(r["model"], r["kind"], "exact alone")] += r["exact"]
            counts[(r["model"], r["kind"], "exact alone, no fused exact")] += r["exact"] and not fused[k]
        for key in sorted(counts):
            print(*key, counts[key], sep="  ")
    return 0


if __name__ == "__main__":
    sys.exit(main())
