"""Latency of the syntax-aware infill steps on 5,000-line files (one per language), model excluded.

  python -m bench.bench_infill [--lines 5000] [--samples 200] [--langs python,go]

Reports p50/p95 of
  - complete(): span planning + context + post-processing + ranking, with an instant fake model,
    at cursors on blank body lines, at the end of block headers and mid-statement;
  - Document.apply_edit(): incremental re-parse (of the edited chunk) after a one-character edit
    inside an identifier.
count_tokens is a regex word/punctuation count (pass --tokenizer tokenizer.json for a real one).
Each step is timed twice: wall clock, and the thread's CPU time (which leaves out the time other
processes hold the core: on a shared machine the wall-clock tail is mostly such preemption).
"""

import argparse
import random
import re
import statistics
import time

from infill import Document, InfillOptions, complete

CURSOR = "@"  # marks cursor positions in the templates below; "{i}" makes names unique
TEMPLATES = {
    "python": """
class Widget_{i}:
    def area_{i}(self, width_{i}, height_{i}):@
        total_{i} = width_{i} * height_{i}
@
        return total_{i}

    def scale_{i}(self, factor_{i}):
        return Widget_{i}(self.size * factor_{i}, max(@))

""",
    "javascript": """
class Widget_{i} {
  area_{i}(width_{i}, height_{i}) {@
    const total_{i} = width_{i} * height_{i};
@
    return total_{i};
  }
  scale_{i}(factor_{i}) {
    return new Widget_{i}(this.size * factor_{i}, Math.max(@));
  }
}
""",
    "typescript": """
class Widget_{i} {
  area_{i}(width_{i}: number, height_{i}: number): number {@
    const total_{i} = width_{i} * height_{i};
@
    return total_{i};
  }
  scale_{i}(factor_{i}: number): Widget_{i} {
    return new Widget_{i}(this.size * factor_{i}, Math.max(@));
  }
}
""",
    "go": """
type Widget_{i} struct {
	size int
}

func (w *Widget_{i}) Area_{i}(width_{i}, height_{i} int) int {@
	total_{i} := width_{i} * height_{i}
@
	return total_{i}
}

func Scale_{i}(w Widget_{i}, factor_{i} int) int {
	return max(w.size*factor_{i}, min(@))
}
""",
    "rust": """
struct Widget_{i} {
    size: i64,
}

impl Widget_{i} {
    fn area_{i}(&self, width_{i}: i64, height_{i}: i64) -> i64 {@
        let total_{i} = width_{i} * height_{i};
@
        total_{i}
    }
    fn scale_{i}(&self, factor_{i}: i64) -> i64 {
        std::cmp::max(self.size * factor_{i}, i64::abs(@))
    }
}
""",
    "java": """
class Widget_{i} {
    int size;
    int area_{i}(int width_{i}, int height_{i}) {@
        int total_{i} = width_{i} * height_{i};
@
        return total_{i};
    }
    int scale_{i}(int factor_{i}) {
        return Math.max(size * factor_{i}, Math.abs(@));
    }
}
""",
    "c": """
struct widget_{i} {
    int size;
};

int area_{i}(int width_{i}, int height_{i}) {@
    int total_{i} = width_{i} * height_{i};
@
    return total_{i};
}

int scale_{i}(struct widget_{i} *w, int factor_{i}) {
    return max(w->size * factor_{i}, abs(@));
}
""",
    "cpp": """
class Widget_{i} {
public:
    int area_{i}(int width_{i}, int height_{i}) const {@
        int total_{i} = width_{i} * height_{i};
@
        return total_{i};
    }
    int scale_{i}(int factor_{i}) const {
        return std::max(size_ * factor_{i}, std::abs(@));
    }
private:
    int size_ = 1;
};
""",
}
HEADER = {"python": "import math\n", "go": "package widgets\n", "java": "import java.util.List;\n",
          "c": "#include <stdlib.h>\n", "cpp": "#include <algorithm>\n", "rust": "use std::cmp;\n",
          "javascript": 'import fs from "node:fs";\n',
          "typescript": 'import fs from "node:fs";\n'}  # fmt: skip
TEMPLATES["tsx"] = TEMPLATES["typescript"]  # the TSX grammar parses the same code
HEADER["tsx"] = HEADER["typescript"]


def make_file(lang: str, lines: int) -> tuple[str, list[int]]:
    parts, n, i = [HEADER[lang]], 1, 0
    while n < lines:
        chunk = TEMPLATES[lang].replace("{i}", str(i))
        parts.append(chunk)
        n += chunk.count("\n")
        i += 1
    marked = "".join(parts)
    offsets, text = [], []
    for k, piece in enumerate(marked.split(CURSOR)):
        text.append(piece)
        offsets.append(sum(map(len, text)))
    return "".join(text), offsets[:-1]


def pct(xs: list[float]) -> str:
    xs = sorted(xs)
    return f"{statistics.median(xs) * 1e3:5.2f} / {xs[int(0.95 * (len(xs) - 1))] * 1e3:5.2f}"


def timed(fn, *args, **kw) -> tuple[float, float]:
    w, c = time.perf_counter(), time.thread_time()
    fn(*args, **kw)
    return time.perf_counter() - w, time.thread_time() - c


def regex_tokens(text: str) -> int:
    return len(re.findall(r"\w+|[^\w\s]", text))


def bench(lang: str, lines: int, samples: int, count_tokens) -> tuple[list, list, float]:
    text, cursors = make_file(lang, lines)
    t0 = time.perf_counter()
    doc = Document(text, lang)
    full = time.perf_counter() - t0
    rng = random.Random(0)

    def fill(prefix, suffix, canvas, max_canvas, single_line):
        return "total = compute(a, b)\n    return total + 1)\n", 0.5

    options = InfillOptions(candidates=2)
    complete(
        doc, cursors[0], fill, count_tokens=count_tokens, options=options
    )  # builds the definition index once
    plan = []
    for _ in range(samples):
        plan.append(
            timed(complete, doc, rng.choice(cursors), fill, count_tokens=count_tokens, options=options)
        )
    idents = [m.start() + 2 for m in re.finditer(r"[a-z]+_\d+", text)]
    reparse = []
    for _ in range(samples):
        pos = rng.choice(idents)
        reparse.append(timed(doc.apply_edit, pos, pos, "x"))
        doc.apply_edit(pos, pos + 1, "")
    return plan, reparse, full


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lines", type=int, default=5000)
    ap.add_argument("--samples", type=int, default=200)
    ap.add_argument("--langs", default=",".join(TEMPLATES))
    ap.add_argument("--tokenizer", help="a tokenizer.json for count_tokens (default: regex count)")
    args = ap.parse_args()
    count_tokens = regex_tokens
    if args.tokenizer:
        from tokenizers import Tokenizer

        tok = Tokenizer.from_file(args.tokenizer)
        count_tokens = lambda s: len(tok.encode(s, add_special_tokens=False).ids)  # noqa: E731
    print(f"{args.lines}-line files, {args.samples} samples each; p50 / p95 in ms")
    print(
        "| language | lines | complete() wall | complete() CPU | re-parse wall | re-parse CPU | full parse |"
    )
    print("|---|---|---|---|---|---|---|")
    for lang in args.langs.split(","):
        plan, reparse, full = bench(lang, args.lines, args.samples, count_tokens)
        cols = [
            pct([w for w, _ in plan]),
            pct([c for _, c in plan]),
            pct([w for w, _ in reparse]),
            pct([c for _, c in reparse]),
        ]
        print(f"| {lang} | {args.lines} | {' | '.join(cols)} | {full * 1e3:.1f} |")


if __name__ == "__main__":
    main()
