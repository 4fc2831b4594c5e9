"""Does adapting the network to a project help on that project's code? Network alone, before and after.

    python -m bench.eval_adapt --projects toolz,attrs [--kinds rest,line] [--cases 30] [--minutes 2]

For each held-out Python project (bench/trust_sets.py) and kind, up to --cases cursors (one per file,
bench/eval_trust.py `draw`) are drawn; every evaluated line is emptied in the texts adaptation reads (adapting
on the answer is not adaptation). The embedded model and the model adapted for --minutes
(engine/training/adapt.py) then complete each cursor through the language server's completion step with the
repository memory off (the network alone) and the default options otherwise; exact match of the cursor's line
and the share answered are printed for both. In process, on this CPU.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import infill  # noqa: E402
from bench import trust_sets  # noqa: E402
from bench.eval_trust import draw  # noqa: E402
from lsp_server.completion import filler  # noqa: E402
from lsp_server.options import parse  # noqa: E402


def exact_share(model, cursors, language: str) -> tuple[float, float]:
    options, _ = parse({"memory": {"enabled": False}, "completion": {"minConfidence": 0,
                                                                      "minConfidenceInvoked": 0}})
    exact = answered = 0
    for c in cursors:
        text, offset = c.text, c.offset
        got = filler.complete(model, infill.Document(text, language), offset, options, invoked=False)
        if got is None or isinstance(got, infill.Withheld):
            continue
        answered += 1
        line = (text[: got.start] + got.text + text[got.end :]).split("\n")[c.row]
        exact += line.rstrip() == c.gold.rstrip()
    return exact / max(len(cursors), 1), answered / max(len(cursors), 1)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--projects", default="toolz,attrs")
    p.add_argument("--kinds", default="rest,line")
    p.add_argument("--cases", type=int, default=30)
    p.add_argument("--minutes", type=float, default=2.0)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    import torch

    import engine
    from engine.registry import DEFAULT_MODEL
    from engine.training.adapt import AdaptConfig, adapt

    torch.set_num_threads(1)
    base = engine.load_model(dtype="float32")
    for project in trust_sets.fetch("heldout", ("python",)):
        if not any(project.name.startswith(w) for w in args.projects.split(",")):
            continue
        kinds = args.kinds.split(",")
        cursors = {k: draw(project, k, args.cases, args.seed) for k in kinds}
        texts = {name: project.text(name) for name in project.files}
        for k in kinds:  # every evaluated line emptied, both kinds (one file may hold one cursor of each)
            for c in cursors[k]:
                lines = texts[c.file].split("\n")
                lines[c.row] = lines[c.row][: len(lines[c.row]) - len(lines[c.row].lstrip())]
                texts[c.file] = "\n".join(lines)
        with tempfile.TemporaryDirectory() as out:
            report = adapt(DEFAULT_MODEL, texts, Path(out), AdaptConfig(minutes=args.minutes, seed=args.seed))
            adapted = engine.load_model(out, dtype="float32")
            for k in kinds:
                before, shown_before = exact_share(base, cursors[k], project.language)
                after, shown_after = exact_share(adapted, cursors[k], project.language)
                print(f"{project.name} {k}: {len(cursors[k])} cursors; network alone exact {before:.1%} -> "
                      f"{after:.1%} (answered {shown_before:.0%} -> {shown_after:.0%}); {report.steps} steps "
                      f"in {report.minutes} min, loss {report.loss_before} -> {report.loss_after}",
                      flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
