"""MODEL_CARD.md and loss.png for a shipped model, from its training.json, the run's log and eval results."""

from __future__ import annotations

import json
from pathlib import Path

EVAL_RESULTS = Path("bench/results/eval_model.jsonl")  # written by bench/eval_model.py
# one row per recipe arm: training at equal wall clock, then eval_model
RECIPES = Path("bench/results/recipes.jsonl")
MEMORY_RESULTS = Path("bench/results/eval_memory.jsonl")  # bench/eval_memory.py: network / memory / fused
SERVER_RESULTS = Path("bench/results/eval_server.jsonl")  # bench/eval_server.py: through the server
ADAPT_RESULTS = Path("bench/results/eval_adapt.jsonl")  # bench/eval_adapt.py: learning curves


def read_jsonl(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def plot_loss(log: list[dict], out: Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:  # matplotlib is in the bench extra; the card then goes without a plot
        return False
    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    for objective, name in (("ar", "AR pretraining, next-token"), ("diffusion", "diffusion")):
        phase = [r for r in log if r.get("objective", "diffusion") == objective]
        train = [r for r in phase if "loss" in r]
        if train:
            xs, ys = [r["tokens"] / 1e6 for r in train], [r["loss"] for r in train]
            k = max(1, len(ys) // 200)  # smooth the noisy per-step loss
            ax.plot(xs[k - 1:], [sum(ys[i - k + 1 : i + 1]) / k for i in range(k - 1, len(ys))],
                    label=f"train loss ({name})", lw=1)
        val = [r for r in phase if "val_loss" in r]
        for key, style in (("val_plain", "o-"), ("val_infill", "s-")):
            # no NaN (NaN != NaN)
            pts = [(r["tokens"] / 1e6, r[key]) for r in val if r.get(key) == r.get(key) and key in r]
            if pts:
                ax.plot(*zip(*pts), style, ms=3, label=f"{key.replace('_', ' ')} ({name})")
    ax.set_xlabel("tokens seen (millions)")
    ax.set_ylabel("loss (nats / token)")
    ax.set_ylim(top=min(8.5, ax.get_ylim()[1]))
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)
    return True


def eval_table(rows: list[dict]) -> str:
    if not rows:
        return "No evaluation recorded yet: run `python bench/eval_model.py` (see below).\n"
    keys = ["tokens_seen", "memory", "humaneval_single_line_pass@1", "humaneval_tasks", "line_exact_match",
            "line_edit_similarity", "rest_exact_match", "rest_edit_similarity", "heldout_cases", "canvas",
            "forward_passes", "ms_per_completion", "threads"]
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    for r in rows:
        lines.append("| " + " | ".join(fmt(r.get(k)) for k in keys) + " |")
    return "\n".join(lines) + "\n"


def recipe_table(rows: list[dict]) -> str:
    if not rows:
        return "No recipe comparison recorded (runs/recipes.jsonl).\n"
    keys = [("arm", "arm"), ("recipe", "recipe"), ("minutes", "minutes"), ("tokens_seen", "tokens"),
            ("val_loss", "val ELBO"), ("humaneval_single_line_pass@1", "HumanEval 1-line"),
            ("line_exact_match", "line EM"), ("line_edit_similarity", "line sim"),
            ("rest_exact_match", "rest EM"), ("rest_edit_similarity", "rest sim")]
    lines = ["| " + " | ".join(k[1] for k in keys) + " |", "|" + "---|" * len(keys)]
    for r in rows:
        lines.append("| " + " | ".join(fmt(r.get(k[0])) for k in keys) + " |")
    return "\n".join(lines) + "\n"


def default_options(r: dict) -> bool:
    """A row measured with the server's default options, the memory switched off at most (other options are
    experiments, not the shipped system)."""
    options = json.loads(r.get("options") or "{}")
    memory = {k: v for k, v in options.pop("memory", {}).items() if k != "enabled"}
    return not options and not memory


def ablation_table(rows: list[dict], group: str) -> str:
    """bench/eval_memory.py or eval_server.py rows: exact match / similarity per source, kind and arm."""
    latest = {}
    for r in rows:  # the shipped model's latest measurement of each (group, kind, arm)
        if r.get("model", "default") != "default" or not default_options(r):
            continue
        memory_off = json.loads(r.get("options") or "{}").get("memory", {}).get("enabled", True) is False
        arm = r.get("arm") or ("network" if memory_off else "fused")
        if r.get("workspace") == "opened files' folders":
            arm += ", no workspace named"
        latest[r.get(group), r["kind"], arm] = {**r, "arm": arm}
    if not latest:
        return "Not measured yet.\n"
    lines = [f"| {group} | kind | arm | cases | exact match | edit similarity |", "|---|---|---|---|---|---|"]
    for r in sorted(latest.values(), key=lambda r: (str(r.get(group)), r["kind"], r["arm"])):
        arm = r["arm"]
        lines.append(f"| {r.get(group)} | {r['kind']} | {arm} | {r['cases']} | {r['exact']:.1%} | "
                     f"{r['similarity']:.3f} |")
    return "\n".join(lines) + "\n"


def language_section(corpus: dict, rows: list[dict]) -> str:
    """Per-language held-out numbers of this model (`bench/eval_model.py --language X`)."""
    mix = corpus.get("languages")
    if not mix:
        return ("The corpus is Python only, so the held-out numbers above are Python's. The other languages\n"
                "the server serves get the repository memory (it is language-agnostic) but a network\n"
                "that has never seen them.\n")
    total = sum(v["bytes"] for v in mix.values())
    ranked = sorted(mix.items(), key=lambda kv: -kv[1]["bytes"])
    share = ", ".join(f"{k} {v['bytes'] / total:.0%}" for k, v in ranked)
    text = (f"Training bytes by language: {share} (`engine/training/languages.py`: pinned Debian source\n"
            "packages and npm tarballs). Validation and the tables above stay Python; each language's test\n"
            "split is scored alone (`python bench/eval_model.py --language X --limit 0`):\n\n")
    if not rows:
        return text + "Not measured yet.\n"
    keys = [("language", "language"), ("memory", "memory"), ("line_exact_match", "line EM"),
            ("line_edit_similarity", "line sim"), ("rest_exact_match", "rest EM"),
            ("rest_edit_similarity", "rest sim"), ("heldout_cases", "cases")]
    lines = ["| " + " | ".join(k[1] for k in keys) + " |", "|" + "---|" * len(keys)]
    lines += ["| " + " | ".join(fmt(r.get(k[0])) for k in keys) + " |" for r in rows]
    return text + "\n".join(lines) + "\n"


def measured_on(rows: list[dict], tokens_seen: int) -> str:
    """A caveat for tables whose rows were measured on other weights than these (or do not say which)."""
    if rows and all(r.get("tokens_seen") == tokens_seen for r in rows):
        return ""
    return (f"These rows were measured on earlier weights of this model, not on these ({tokens_seen:,} "
            f"tokens seen); the current figures through the server, one evaluated line per file and per "
            f"HumanEval problem, are in bench/RESULTS.md (Trust).\n\n")


def server_humaneval(rows: list[dict]) -> str:
    rows = [r for r in rows if default_options(r)]
    if not rows:
        return ""
    r = rows[-1]
    return (f"HumanEval single-line infilling through the server, default options "
            f"(`python -m bench.eval_server --humaneval {r['tasks']}`, cursor at {r['cursor']}): pass@1 "
            f"{r['humaneval_single_line_pass@1']:.1%}, {r['answered']} of {r['tasks']} answered.\n")


FUSION_NOTE = """\
The fused system is ahead of the memory alone on edit similarity and level with it or a few cases behind
on exact match. Where the memory has a match, the fusion lets it decide (weight up to 0.97) and both give
the same line; where the memory's occurrences disagree, the network breaks the tie, and a network this
small picks the wrong one about as often as the right one; where the memory has no match, the network's
line is closer to the truth than nothing (similarity) but rarely exact. The network alone almost never
reproduces a line. Fusion is the default because it is never far behind the memory on exact match and
ahead of both on similarity.
"""


def ablation_summary(rows: list[dict]) -> str:
    """All sources together, per kind and arm (the latest row of each source), and why fusion wins less."""
    mine = [r for r in rows if r.get("model", "default") == "default"]
    latest = {(r.get("source"), r["kind"], r.get("arm")): r for r in mine}
    total: dict = {}
    for (_, kind, arm), r in latest.items():
        t = total.setdefault((kind, arm), [0, 0.0, 0.0])
        t[0] += r["cases"]
        t[1] += r["exact"] * r["cases"]
        t[2] += r["similarity"] * r["cases"]
    if not total:
        return ""
    lines = ["| kind | arm | cases | exact match | edit similarity |", "|---|---|---|---|---|"]
    for (kind, arm), (n, ex, sim) in sorted(total.items()):
        lines.append(f"| {kind} | {arm} | {n} | {ex / n:.1%} | {sim / n:.3f} |")
    return "All projects together:\n\n" + "\n".join(lines) + "\n\n" + FUSION_NOTE


def adaptation_section(rows: list[dict], tokens_seen: int | None = None) -> str:
    """The latest held-out learning curve of bench/eval_adapt.py, as means over its projects per minute; said
    to be of earlier weights where its rows name other base weights than these (`tokens_seen`) or none."""
    held = [r for r in rows if r.get("set") == "heldout" and r.get("tag", "").startswith("heldout-anchor")]
    if not held:
        return "Not measured yet (`python -m bench.eval_adapt --set heldout --server`).\n"
    run = max(r["date"] for r in held)
    tag = next(r["tag"] for r in held if r["date"] == run)
    held = [r for r in held if r["tag"] == tag]
    projects = sorted({r["project"] for r in held if r["kind"] != "humaneval"})

    def mean(minutes: float, kind: str, value) -> str:
        vals = [value(r) for r in held if r["minutes"] == minutes and r["kind"] == kind]
        return f"{100 * sum(vals) / len(vals):.1f}%" if vals else "-"

    lines = ["| minutes | network alone, rest of line (every answer shown) | fused, rest of line | "
             "fused, whole line | HumanEval pass@1 |", "|---|---|---|---|---|"]
    for m in sorted({r["minutes"] for r in held}):
        lines.append(f"| {m:g} | {mean(m, 'rest', lambda r: r['alone']['exact_all_shown'])} | "
                     f"{mean(m, 'rest', lambda r: r['fused']['exact'])} | "
                     f"{mean(m, 'line', lambda r: r['fused']['exact'])} | "
                     f"{mean(m, 'humaneval', lambda r: r['humaneval']['pass@1'])} |")
    base = {r.get("base_tokens") for r in held}
    earlier = "" if tokens_seen is not None and base == {tokens_seen} else (
        " Measured on earlier weights of this model" + (f" ({min(b for b in base if b):,} tokens seen)"
                                                         if any(base) else "") + ", not yet on these.")
    return (f"`unmask adapt` and the server's `adapt.enabled` fine-tune this model on a project's files "
            f"(docs/training.md). Held-out projects ({', '.join(projects)}), every evaluated line removed "
            f"from what the adaptation and the memory read, through the server, means over the projects "
            f"(bench/RESULTS.md, Adapting to a project, with the learning curves; run {tag}, {run[:10]})."
            f"{earlier}\n\n" + "\n".join(lines) + "\n")


def fmt(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.3f}"
    return f"{v:,}" if isinstance(v, int) else str(v)


def write_card(model_dir: Path, run_dir: Path, data_dir: Path, eval_results: Path = EVAL_RESULTS,
               recipes: Path = RECIPES, memory_results: Path = MEMORY_RESULTS,
               server_results: Path = SERVER_RESULTS, adapt_results: Path = ADAPT_RESULTS) -> None:
    training = json.loads((model_dir / "training.json").read_text())
    cfg, state = training["config"], training["state"]
    metrics, corpus = training["metrics"], training["corpus"]
    log = read_jsonl(run_dir / "log.jsonl")
    has_plot = plot_loss(log, model_dir / "loss.png")
    params = (cfg["hidden_size"], cfg["num_layers"], cfg["num_heads"], cfg["num_kv_heads"],
              cfg["intermediate_size"])
    splits = corpus["splits"]
    vocab = json.loads((model_dir / "config.json").read_text())["vocab_size"]
    packages = ", ".join(f"{k}=={v}" for k, v in corpus["packages"].items()) or "none"
    # this model and the checkpoints of its training, one row per tokens seen (the latest run wins)
    rows = [r for r in read_jsonl(eval_results) if r.get("tokens_seen")]
    python = [r for r in rows if r.get("language", "python") == "python"]
    evals = {(r["tokens_seen"], r.get("memory", "off")): r for r in python}
    evals = [evals[k] for k in sorted(evals) if k[0] <= state["tokens_seen"]]
    server_rows = read_jsonl(server_results)
    others = "; other languages below" if corpus.get("languages") else ""
    languages = {(r["language"], r.get("memory", "off")): r for r in rows
                 if r.get("language", "python") != "python" and r["tokens_seen"] == state["tokens_seen"]}
    text = f"""# unmask-tiny: the embedded diffusion model

A small masked-diffusion code model trained from scratch by `python -m engine.training`, shipped so that
unmask completes Python offline with nothing to download. Layout: Dream (Qwen2 weights, bidirectional
attention, shifted logits), so it runs through the same engine path as the public checkpoints.

## Model
- hidden {params[0]}, {params[1]} layers, {params[2]} heads ({params[3]} KV heads), MLP {params[4]},
  vocabulary {vocab}; trained on sequences of {cfg['seq_len']} tokens.
- Weights stored in bf16 (`model.safetensors`); tokenizer: byte-level BPE trained on the training split
  (`tokenizer.json`), special tokens `<|endoftext|>` (end of text, and the pad after an infill's middle) and
  `<|mask|>`.

## Training
- Recipe: autoregressive pretraining of the same network (causal attention, next-token loss at every
  position through the shifted head: output i - 1 predicts token i, exactly as the Dream layout reads it),
  then adaptation to masked diffusion by switching to bidirectional attention and the diffusion objective
  (`python -m engine.training train --objective ar ...`, then `train --init runs/<ar-run>/ckpt ...`). The
  comparison that chose it is below.
- Diffusion objective: masked diffusion ELBO, per sequence (1/t) * sum of CE over masked tokens / sequence
  length, t ~ U(0.01, 1) stratified over the batch. {round(cfg['infill_fraction'] * 100)}% of each batch are
  infill-shaped rows (prefix + middle + EOS padding + suffix, only the canvas masked, loss normalised by the
  canvas length) with spans of the rest of a line, a whole line, 2-6 lines or a block body.
- Optimiser: AdamW (lr {cfg['lr']}, betas 0.9/0.95, weight decay {cfg['weight_decay']}), warmup-stable-decay
  schedule, grad clip {cfg['grad_clip']}, batch {cfg['batch_size']} x {cfg['seq_len']} tokens,
  {'bf16 autocast' if cfg.get('bf16', True) else 'fp32'} (chosen by the hardware: bf16 only where the CPU runs
  it natively).
- Tokens seen: {state['tokens_seen']:,}; optimizer steps: {state['step']:,}; wall time:
  {state['wall_s'] / 3600:.2f} h; hardware: {'; '.join(state['hardware']) or 'unknown'}.
- Validation at shipping: loss {metrics.get('val_loss', float('nan')):.4f} (plain rows
  {metrics.get('val_plain', float('nan')):.4f}, infill rows {metrics.get('val_infill', float('nan')):.4f}).

{'![loss curve](loss.png)' if has_plot else '(no loss plot: matplotlib was not installed)'}

## Corpus
{"Python" if corpus.get("languages") else "Python `.py` files only"}: the standard library of Python \
{corpus['python']}, plus the sdists of {packages}{others}.
Files that do not parse, are empty or exceed 400 kB are dropped. Split by a hash of each file's name
(`engine/training/corpus.py`): 98% train, 1% validation, 1% test. Nothing from `shared/data` is used.

| split | files | bytes | sha256 of the sorted file list |
|---|---|---|---|
""" + "".join(
    f"| {s} | {v['files']:,} | {v['bytes']:,} | `{v['file_list_sha256']}` |\n" for s, v in splits.items()
) + f"""
## Evaluation
`bench/eval_model.py`: HumanEval single-line infilling pass@1 (canvas length chosen by the system, never the
gold length), exact match and edit similarity for whole-line and rest-of-line infills from the held-out test
files, forward passes and latency per completion on CPU.

{eval_table(evals)}
## Recipe comparison
Arms trained from scratch at equal wall clock on the same machine, one thread each, two at a time (the
machine has two cores), then scored by `bench/eval_model.py --limit 100 --heldout 100` (fp32). The
validation ELBO uses the same fixed held-out rows and noise for every arm.

{recipe_table(read_jsonl(recipes))}
## Repository memory
`engine/memory.py`: at a masked position whose left neighbour is known, the longest suffix of the known text
that occurs in the remembered texts (open documents, the workspace's source files) votes for the token that
followed it, weighted by match length and count, and mixed into the network's distribution; the known text
right of a position votes too. Three arms on the same cursors of five projects outside the corpus
(`python -m bench.eval_memory --project <sdists> --scope project --cases 30`): the network alone, the
memory alone (its most frequent continuation, no network) and the two fused (the server's default).
{measured_on([r for r in read_jsonl(memory_results) if r.get("scope") == "project"], state["tokens_seen"])}
{ablation_table([r for r in read_jsonl(memory_results) if r.get("scope") == "project"], "source")}
{ablation_summary([r for r in read_jsonl(memory_results) if r.get("scope") == "project"])}
Through the real server (`python -m bench.eval_server --project <sdists>`: the unpacked project is the
workspace, each cursor's file opened with its line deleted, default options; each row is the latest
measurement of its arm, and on a CPU without native bf16 the default `quantize: auto` runs int8 since
2026-12-02, where the no-workspace rows are older fp32 runs; bench/RESULTS.md, int8).
{measured_on(server_rows, state["tokens_seen"])}
{ablation_table([r for r in server_rows if "kind" in r], "project")}
{server_humaneval([r for r in server_rows if "humaneval_single_line_pass@1" in r])}
## Languages
{language_section(corpus, [languages[k] for k in sorted(languages)])}
## Adapting it to a project
{adaptation_section(read_jsonl(adapt_results), state["tokens_seen"])}
## Limitations
A few million parameters trained on a CPU budget: the evaluation table above is the honest measure of what
it can do (it rarely reproduces a held-out line exactly, and simple prompts such as `def add(a, b): return`
still get a wrong answer). Masked diffusion learns more slowly per token than autoregressive training, so
quality grows with the tokens that continued training adds. The other languages are a third of the bytes
and weaker than Python (table above). It is the project's fixed yardstick for speed and quality; larger
public checkpoints load through the same engine path.

## Continue training
Training accumulates across sessions: continue from this checkpoint (weights, token counters and loss history;
a fresh optimizer warms up again) and ship again only if the validation loss (fixed held-out batches and
noise) beats the one recorded in `training.json`:

    python -m engine.training prepare     # once per machine: corpus, token streams (reuses this tokenizer)
    python -m engine.training train --name <run> --init engine/default_model --minutes 120 --ship
    python -m engine.training export --run runs/<run>     # ship the run's last checkpoint if it is better
    python bench/eval_model.py && python -m engine.training export --run runs/<run> --card-only

A stopped run resumes exactly (same batches, same noise) with the same `train --name <run>` command. With a
GPU, `engine/training/device_run.sh` is a prepared run that carries the compressed corpus.
"""
    (model_dir / "MODEL_CARD.md").write_text(text)
