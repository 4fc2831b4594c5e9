"""Cost of the repository memory: an update per keystroke, and a match, by memory size.

    python -m bench.bench_memory [--samples 200]

- update: `RepositoryMemory.update` of a 5,000-line document after a one-character edit (what the server's
  engine thread does on every didChange), with and without the cut at a cursor (what a completion adds);
- match: `TextIndex.match_left` for the text before a random cursor of that document (a fresh search, as the
  first position of a completion needs), with 1, 4 and 16 MB of other standard-library files remembered.
p50 / p95 in ms of CPU time, one run.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import sysconfig
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from engine.memory import MemoryConfig, RepositoryMemory  # noqa: E402


def document(lines: int) -> str:
    src = (Path(sysconfig.get_paths()["stdlib"]) / "typing.py").read_text().split("\n")
    return "\n".join((src * (lines // len(src) + 1))[:lines]) + "\n"


def stdlib_texts(budget: int) -> list[tuple[str, str]]:
    out, spent = [], 0
    for path in sorted(Path(sysconfig.get_paths()["stdlib"]).rglob("*.py")):
        if spent >= budget:
            break
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        out.append((str(path), text))
        spent += len(text.encode())
    return out


def pct(values: list[float]) -> str:
    ordered = sorted(values)
    return f"{statistics.median(ordered):.3f} / {ordered[int(0.95 * (len(ordered) - 1))]:.3f}"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--samples", type=int, default=200)
    args = p.parse_args()
    rng = random.Random(0)
    text = document(5000)
    report = {"document_lines": 5000, "document_bytes": len(text.encode())}
    for mb in (1, 4, 16):
        memory = RepositoryMemory(max_bytes=32 * 2**20)
        for key, other in stdlib_texts(mb * 2**20):
            memory.update(key, other)
        memory.update("doc", text)
        memory.index.segments()
        upd, cut, match = [], [], []
        for _ in range(args.samples):
            at = rng.randrange(len(text))
            edited = text[:at] + "x" + text[at:]
            t0 = time.thread_time()
            memory.update("doc", edited)
            upd.append((time.thread_time() - t0) * 1000)
            t0 = time.thread_time()
            memory.update("doc", edited, cursor=at)
            memory.index.segments()
            cut.append((time.thread_time() - t0) * 1000)
            t0 = time.thread_time()
            memory.index.match_left(edited[:at].encode()[-256:], MemoryConfig())
            match.append((time.thread_time() - t0) * 1000)
        report[f"{mb}MB"] = {"bytes": memory.report()["bytes"], "update_ms": pct(upd),
                             "cut_and_join_ms": pct(cut), "match_left_ms": pct(match)}
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
