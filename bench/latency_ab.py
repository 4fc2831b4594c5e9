"""Single-line completion latency of one checkout, in process, for A/B runs of two versions of the code.

    python bench/latency_ab.py ROOT [--project SDIST] [--files 40] [--passes 3]

ROOT is a checkout (this one, or another made with `git worktree add ../base <commit>`); its engine,
infill and lsp_server are imported from there. Whole-line cursors (one per file, after the indentation) of
the sdist's Python files go through the language server's completion step (`filler.complete`, default
options, one torch thread) after a warm-up; it prints the median and mean CPU time of the engine thread. Run
the two checkouts interleaved (A, B, A, B, ...) on an idle machine and compare runs side by side, never
across machines.
"""

from __future__ import annotations

import argparse
import importlib
import random
import statistics
import sys
import tarfile
import tempfile
import time
from pathlib import Path


def cursors(sdist: Path, files: int, seed: int = 0) -> list[tuple[str, str, int]]:
    """(name, text with one line emptied to its indentation, offset of the cursor) per file."""
    out, rng = [], random.Random(seed)
    folder = Path(tempfile.mkdtemp())
    with tarfile.open(sdist) as tf:
        tf.extractall(folder, filter="data")
    for path in sorted(folder.rglob("*.py"))[:files]:
        lines = path.read_text(encoding="utf-8", errors="replace").split("\n")
        candidates = [i for i, line in enumerate(lines)
                      if line.startswith("    ") and 8 < len(line.strip()) < 80]
        if not candidates:
            continue
        i = rng.choice(candidates)
        indent = len(lines[i]) - len(lines[i].lstrip())
        text = "\n".join(lines[:i] + [lines[i][:indent]] + lines[i + 1 :])
        out.append((str(path), text, sum(len(line) + 1 for line in lines[:i]) + indent))
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("root", type=Path)
    p.add_argument("--project", type=Path, required=True, help="an sdist, e.g. attrs-25.4.0.tar.gz")
    p.add_argument("--files", type=int, default=40)
    p.add_argument("--passes", type=int, default=3)
    args = p.parse_args()
    root = args.root.resolve()
    sys.path.insert(0, str(root))
    import torch

    torch.set_num_threads(1)
    import engine
    import infill
    from lsp_server.options import Options

    old = (root / "lsp_server" / "filler.py").exists()  # before lsp_server was grouped into subpackages
    filler = importlib.import_module("lsp_server.filler" if old else "lsp_server.completion.filler")
    assert filler.__file__.startswith(str(root)) and engine.__file__.startswith(str(root)), "not ROOT's code"
    model = engine.load_model(dtype="auto", quantize="auto")
    cases, options = cursors(args.project, args.files), Options()
    for name, text, offset in cases[:5]:  # warm-up: the first forwards of each shape are slow
        filler.complete(model, infill.Document(text, "python"), offset, options, invoked=True, key=name)
    ms = []
    for _ in range(args.passes):
        for name, text, offset in cases:
            doc = infill.Document(text, "python")
            t0 = time.thread_time()
            filler.complete(model, doc, offset, options, invoked=True, key=name)
            ms.append((time.thread_time() - t0) * 1000)
    p50, mean = statistics.median(ms), statistics.mean(ms)
    print(f"{root}: {len(ms)} completions, CPU p50 {p50:.1f} ms, mean {mean:.1f} ms")


if __name__ == "__main__":
    main()
