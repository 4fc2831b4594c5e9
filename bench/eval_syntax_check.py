"""Does infill's syntax check (infill/rank.py SyntaxCheck, a re-parse of the region around the span) agree
with a parse of the whole document? The filter never shows a candidate the check says adds an error, so a
miss here is a shown completion that breaks the file.

    python -m bench.eval_syntax_check [--set development] [--files 15] [--cursors 6] [--seed 0]
                                      [--baseline PATH_TO_AN_OLDER_rank.py]

Per project file of the set (bench/trust_sets.py), random cursors with the rest of their line cut (as the
evaluations leave the buffer), and at each one five of a fixed list of short insertions (brackets, colons,
calls, statements of the served languages). Truth: ERROR/MISSING nodes of the whole document after the
insertion minus before (infill.Document's trees). Reports the errors the check misses, its false alarms and
the time it took; with --baseline, the same for another version of the check, in the same run.
"""

from __future__ import annotations

import argparse
import importlib.util
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import infill  # noqa: E402
from bench import trust_sets  # noqa: E402
from infill.rank import SyntaxCheck  # noqa: E402
from infill.syntax import count_errors  # noqa: E402

INSERTIONS = ("):", ")", "]", ":", " = 1", "(", "}", "{", "x)", "):\n", " + 1", "self.a", "'", '"', ", b):",
              "];", "});", "return x", "fn(", ") {")


def errors(doc: infill.Document) -> int:
    return sum(count_errors(t.root_node) for t in doc.trees)


def load_check(path: Path):
    """SyntaxCheck from another copy of infill/rank.py (its relative imports made absolute)."""
    source = path.read_text().replace("from .", "from infill.")
    spec = importlib.util.spec_from_loader("rank_baseline", loader=None)
    module = importlib.util.module_from_spec(spec)
    sys.modules["rank_baseline"] = module  # dataclasses look their module up
    exec(compile(source, str(path), "exec"), module.__dict__)
    return module.SyntaxCheck


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--set", default="development", choices=list(trust_sets.SETS))
    p.add_argument("--files", type=int, default=15, help="files per project")
    p.add_argument("--cursors", type=int, default=6, help="cursors per file")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--baseline", type=Path, help="another version of infill/rank.py to compare")
    args = p.parse_args()
    checks = {"this": SyntaxCheck}
    if args.baseline:
        checks["baseline"] = load_check(args.baseline)
    rng = random.Random(args.seed)
    stats = {name: {"misses": 0, "false alarms": 0, "ms": 0.0} for name in checks}
    edits = 0
    for project in trust_sets.fetch(args.set):
        for name in project.files[: args.files]:
            text = project.text(name)
            if not text or len(text) < 200:
                continue
            for _ in range(args.cursors):
                off = rng.randrange(len(text))
                end = text.find("\n", off)
                cut = text[:off] + text[len(text) if end < 0 else end :]
                doc = infill.Document(cut, project.language)
                before = errors(doc)
                picked = rng.sample(INSERTIONS, 5)
                truth = [errors(infill.Document(cut[:off] + s + cut[off:], project.language)) > before
                         for s in picked]
                edits += len(picked)
                for check_name, check in checks.items():
                    t0 = time.perf_counter()
                    c = check(doc, off, off)
                    said = [c.errors_added(s) > 0 for s in picked]
                    stats[check_name]["ms"] += (time.perf_counter() - t0) * 1000
                    stats[check_name]["misses"] += sum(t and not s for t, s in zip(truth, said))
                    stats[check_name]["false alarms"] += sum(s and not t for t, s in zip(truth, said))
    for check_name, s in stats.items():
        print(f"{check_name}: {edits} insertions, {s['misses']} errors missed, {s['false alarms']} false "
              f"alarms, {s['ms'] / max(edits // 5, 1):.2f} ms per cursor (the check built, five insertions)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
