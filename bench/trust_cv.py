"""Would a richer calibration show more right answers? Leave-one-project-out on development candidates.

    python -m bench.fit_trust --rows runs/trust_rows_dev.jsonl --out runs/trust_dev.json  # development
    python -m bench.trust_cv runs/trust_rows_dev.jsonl [--boosted]

For each development project, a calibration is fitted on the other projects' candidates and applied to this
one's; per kind it reports, over all cursors, the exact match of the best candidate with no threshold (what
ranking alone gets) and the most exact match overall that any threshold reaches while keeping the issue's
precision (50% of shown whole lines, 60% of shown rest-of-line answers exact). Arms: the shipped features
(infill/trust.py), extra features computed from the rows' raw fields, and with --boosted a small gradient-
boosted model (scikit-learn, not a dependency of the project: `pip install scikit-learn`).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.fit_trust import fit  # noqa: E402

LANGUAGES = ("python", "go", "rust", "typescript")
PRECISION = {"line": 0.5, "rest": 0.6}


def extra(r: dict) -> list[float]:
    """Features beyond FEATURES, from a row's raw fields (bench/fit_trust.py writes them)."""
    before, line = r["before"], r["line"].strip()
    whole = float(before.strip() == "")
    neighbours = sum(1 for n in r["near"] if n.strip() and n.strip() == line)  # copies a line near the cursor
    beyond = float(r["evidence"]["memory"] and r["evidence"]["match"] > len(before))  # match spans lines
    return [whole, math.log1p(len(before.strip())), float(min(neighbours, 2)), beyond, math.log1p(len(line))]


def with_interactions(r: dict) -> list[float]:
    x, more = r["x"], extra(r)
    whole = more[0]
    languages = [float(r["language"] == lang) for lang in LANGUAGES[1:]]
    # bias, network, memory, confidence, share, each also for whole lines only
    crossed = [whole * x[i] for i in (0, 1, 2, 4, 9)]
    return x + more + languages + crossed


ARMS: dict[str, Callable[[dict], list[float]]] = {
    "shipped features": lambda r: r["x"],
    "+ whole line, typed, neighbour copy, match beyond the line, line length": lambda r: r["x"] + extra(r),
    "+ those, language, whole-line interactions": with_interactions,
}


def project(r: dict) -> str:
    return r["cursor"].split(":")[0]


def held_out_probabilities(rows: list[dict], fit_predict) -> list[tuple[str, str, float, bool]]:
    """(kind, cursor, probability, exact) of every candidate, each project scored by the others' model."""
    out = []
    for p in sorted({project(r) for r in rows}):
        train = [r for r in rows if project(r) != p and r["x"] is not None]
        test = [r for r in rows if project(r) == p]
        scored = fit_predict(train, [r for r in test if r["x"] is not None])
        it = iter(scored)
        for r in test:
            out.append((r["kind"], r["cursor"], -1.0 if r["x"] is None else next(it), bool(r["exact"])))
    return out


def summary(scored: list[tuple[str, str, float, bool]], kind: str) -> tuple[float, float, int]:
    """(exact of the best candidate, most exact overall at the kind's precision, cursors)."""
    best: dict[str, tuple[float, bool]] = {}
    for k, cursor, p, exact in scored:
        if k == kind and (cursor not in best or p > best[cursor][0]):
            best[cursor] = (p, exact)
    ranked = sorted(best.values(), key=lambda t: -t[0])
    n, hits, most = len(ranked), 0, 0
    for i, (_, exact) in enumerate(ranked, 1):
        hits += exact
        if hits / i >= PRECISION[kind]:
            most = max(most, hits)
    return sum(e for _, e in ranked) / max(n, 1), most / max(n, 1), n


def logistic(features):
    def fit_predict(train, test):
        x = np.array([features(r) for r in train])
        w = fit(x, np.array([r["exact"] for r in train], dtype=float))
        z = np.array([features(r) for r in test]) @ w if test else np.zeros(0)
        return list(1 / (1 + np.exp(-np.clip(z, -30, 30))))
    return fit_predict


def boosted(train, test):
    from sklearn.ensemble import HistGradientBoostingClassifier

    def features(r):
        return r["x"] + extra(r)[:2] + [float(LANGUAGES.index(r["language"]))]

    m = HistGradientBoostingClassifier(max_leaf_nodes=8, max_iter=100, learning_rate=0.05,
                                       l2_regularization=1.0, random_state=0)
    m.fit(np.array([features(r) for r in train]), np.array([r["exact"] for r in train]))
    return list(m.predict_proba(np.array([features(r) for r in test]))[:, 1]) if test else []


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("rows", type=Path, help="bench/fit_trust.py --rows output (development set)")
    p.add_argument("--boosted", action="store_true", help="also a gradient-boosted model (scikit-learn)")
    args = p.parse_args()
    rows = [json.loads(line) for line in args.rows.read_text().splitlines()]
    if any(r["x"] is not None and "before" not in r for r in rows):
        p.error(f"{args.rows}: rows without raw fields (collect them again with bench/fit_trust.py)")
    arms = {name: logistic(f) for name, f in ARMS.items()}
    if args.boosted:
        arms["boosted trees, 8 leaves, 100 rounds"] = boosted
    print("| calibration | whole line: best candidate exact | exact at >= 50% precision | rest of line: best "
          "candidate exact | exact at >= 60% precision |")
    print("|---|---|---|---|---|")
    for name, fit_predict in arms.items():
        scored = held_out_probabilities(rows, fit_predict)
        (lp, lm, ln), (rp, rm, rn) = summary(scored, "line"), summary(scored, "rest")
        print(f"| {name} | {lp:.1%} | {lm:.1%} | {rp:.1%} | {rm:.1%} |")
    print(f"\n{ln} whole-line and {rn} rest-of-line cursors, {len({project(r) for r in rows})} projects")
    return 0


if __name__ == "__main__":
    sys.exit(main())
