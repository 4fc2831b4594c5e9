"""Adaptation: fine-tune a checkpoint on one project's files, with the model's own objective, on a CPU.

The rows are the pretraining mixture's (plain rows with the ELBO over every position, infill rows over one
span; engine/training/data.py), drawn from the project's texts. A small learning rate, a guard against
forgetting and a budget in minutes and tokens bound it. Two guards: "anchor", a pull towards the starting
weights (L2, so nothing needs shipping), and "replay", every few steps a batch of the base corpus's training
split (the running interpreter's standard library, which the corpus holds: engine/training/corpus.py).
The result is a normal checkpoint folder (config, safetensors, tokenizer, a card naming what it was adapted
on) that `--model` accepts. Deterministic for a seed.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch

from engine.load import load_transformer, save_checkpoint
from engine.training.bpe import load as load_tokenizer
from engine.training.corpus import SourceFile
from engine.training.data import BatchSource, InfillSampler, tokenize_files
from engine.training.loop import batch_loss

SIDE_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "trust.json")
# The calibration fitted on adapted networks' candidates (bench/fit_trust.py --adapt-minutes): beside a base
# checkpoint, it becomes each adapted folder's trust.json, because the base's was fitted on a network that
# is never right alone, and would never show what adapting taught.
ADAPTED_TRUST = "trust-adapted.json"


@dataclass(frozen=True)
class AdaptConfig:
    minutes: float = 5.0
    max_tokens: int = 2_000_000  # rows' tokens, whichever budget ends first
    lr: float = 5e-4  # chosen on development projects (bench/RESULTS.md, Adapting to a project)
    warmup_steps: int = 0  # the learning rate rises linearly over these first steps
    anchor: float = 1e-3  # weight of sum((w - w0)^2): how hard the starting weights pull back
    batch_size: int = 8
    seq_len: int = 256
    infill_fraction: float = 0.5
    seed: int = 0
    grad_clip: float = 1.0
    guard: str = "anchor"  # "anchor" | "replay" | "none"
    # > 0: a minute is this many row tokens instead of wall-clock time (reproducible runs on a busy machine)
    minute_tokens: int = 0
    replay_every: int = 4  # with guard "replay": one step in this many trains on the base corpus


def replay_texts(limit_bytes: int = 2_000_000) -> dict[str, str]:
    """Training-split files of the base corpus that every machine has: the interpreter's standard library."""
    from engine.training.corpus import split_of, stdlib_files, usable

    out, spent = {}, 0
    for name, data in stdlib_files():
        if "/test" in name or split_of(name) != "train":
            continue
        text = data.decode("utf-8", "replace")
        if usable(text) and spent + len(data) <= limit_bytes:
            out[name], spent = text, spent + len(data)
    return out


@dataclass(frozen=True)
class AdaptReport:
    files: int
    tokens: int  # tokens of the project's texts
    steps: int
    rows_tokens: int  # tokens the optimizer saw
    minutes: float
    loss_before: float  # on fixed batches of the project (the same before and after)
    loss_after: float


def _loss(model, batches, mask_id: int) -> float:
    g = torch.Generator().manual_seed(12345)
    with torch.no_grad():
        return float(np.mean([batch_loss(model, b, mask_id, g, "count")[0].item() for b in batches]))


def _source(tok, texts: dict[str, str], eos_id: int, seq_len: int, cfg: AdaptConfig, seed: int):
    files = [SourceFile(name, "train", text) for name, text in sorted(texts.items())]
    stream = tokenize_files(tok, files, eos_id)
    if len(stream) < 3 * seq_len:  # a tiny project: its text repeated, for plain rows of seq_len
        stream = np.tile(stream, 3 * seq_len // max(len(stream), 1) + 1)
    sampler = InfillSampler(tok, files, eos_id, seq_len)
    return BatchSource(stream, sampler, seq_len, cfg.batch_size, cfg.infill_fraction, seed), len(stream)


def adapt(model_dir: Path, texts: dict[str, str], out_dir: Path, cfg: AdaptConfig = AdaptConfig(),
          progress: Callable[[float, float], None] | None = None,
          checkpoints: Sequence[tuple[float, Path]] = (), card: dict | None = None) -> AdaptReport:
    """Fine-tune the checkpoint in model_dir on `texts` (name -> text) and write it to out_dir; progress(done,
    loss) with done in [0, 1] after each step. `checkpoints`: (minutes, folder) pairs, the weights as they are
    after that many minutes written there too (one run gives a learning curve). `card`: more fields for
    adaptation.json (the caller's facts: what the base was, which files)."""
    if not texts:
        raise ValueError("nothing to adapt on: no source files")
    if cfg.guard not in ("anchor", "replay", "none"):
        raise ValueError(f"guard must be anchor, replay or none, got {cfg.guard!r}")
    torch.manual_seed(cfg.seed)
    model, _, config = load_transformer(model_dir, "cpu", "float32", None)
    tok = load_tokenizer(model_dir / "tokenizer.json")
    mask_id, eos_id = int(config["mask_token_id"]), int(config["eos_token_id"])
    seq_len = min(cfg.seq_len, model.cfg.max_position_embeddings)
    source, tokens = _source(tok, texts, eos_id, seq_len, cfg, cfg.seed)
    held = [replace(source, seed=cfg.seed + 1).batch(i) for i in range(2)]  # the same rows, other draws
    replay = None
    if cfg.guard == "replay":
        replay = _source(tok, replay_texts(), eos_id, seq_len, cfg, cfg.seed)[0]
    before = _loss(model, held, mask_id)
    start = [p.detach().clone() for p in model.parameters()] if cfg.guard == "anchor" else None
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=0.0)
    g = torch.Generator().manual_seed(cfg.seed)
    t0, step, seen = time.perf_counter(), 0, 0
    pending = sorted(checkpoints, key=lambda c: c[0])
    model.train()
    while True:
        elapsed = seen / cfg.minute_tokens if cfg.minute_tokens > 0 else (time.perf_counter() - t0) / 60
        while pending and elapsed >= pending[0][0]:
            _snapshot(model, config, Path(pending.pop(0)[1]), model_dir)
        if elapsed >= cfg.minutes or seen >= cfg.max_tokens:
            break
        replaying = replay is not None and step % cfg.replay_every == cfg.replay_every - 1
        batch = replay.batch(step) if replaying else source.batch(step)
        loss, _ = batch_loss(model, batch, mask_id, g, "count")
        total = loss
        if start is not None:
            total = loss + cfg.anchor * sum(((p - p0) ** 2).sum() for p, p0 in zip(model.parameters(), start))
        for group in opt.param_groups:
            group["lr"] = cfg.lr * min(1.0, (step + 1) / cfg.warmup_steps) if cfg.warmup_steps else cfg.lr
        opt.zero_grad(set_to_none=True)
        total.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        step, seen = step + 1, seen + batch.ids.numel()
        if progress is not None:
            progress(min(1.0, max(elapsed / cfg.minutes, seen / cfg.max_tokens)), float(loss))
    model.eval()
    after = _loss(model, held, mask_id)
    for _, folder in pending:  # the budget ended first: the final weights stand for the later points
        _snapshot(model, config, Path(folder), model_dir)
    report = AdaptReport(len(texts), tokens, step, seen, round((time.perf_counter() - t0) / 60, 2),
                         round(before, 4), round(after, 4))
    _write(model, model_dir, out_dir, config, report, cfg, sorted(texts), card or {})
    return report


def _snapshot(model, config: dict, out_dir: Path, model_dir: Path) -> None:
    eos = config["eos_token_id"]
    special = {"mask_id": config["mask_token_id"], "eos_id": eos, "pad_id": config.get("pad_token_id", eos),
               "bos_id": config.get("bos_token_id")}
    model.eval()
    save_checkpoint(model, out_dir, special)
    model.train()
    for name in (*SIDE_FILES, ADAPTED_TRUST):
        if (model_dir / name).exists():
            shutil.copy2(model_dir / name, out_dir / name)
    if (model_dir / ADAPTED_TRUST).exists():
        shutil.copy2(model_dir / ADAPTED_TRUST, out_dir / "trust.json")


def _write(model, model_dir: Path, out_dir: Path, config: dict, report: AdaptReport, cfg: AdaptConfig,
           names: list[str], extra: dict) -> None:
    _snapshot(model, config, out_dir, model_dir)
    model.eval()
    card = {"adapted_from": str(model_dir), "report": asdict(report), "config": asdict(cfg),
            "files": names[:2000], **extra}
    (out_dir / "adaptation.json").write_text(json.dumps(card, indent=1) + "\n", encoding="utf-8")
    r = report
    card = (f"# Adapted checkpoint\n\nFrom `{model_dir}`, on {r.files} files ({r.tokens} tokens) for "
            f"{r.minutes} minutes ({r.steps} steps, {r.rows_tokens} row tokens). Loss on the project's own "
            f"rows: {r.loss_before} before, {r.loss_after} after. Settings and the file list: "
            f"adaptation.json (engine/training/adapt.py).\n")
    (out_dir / "MODEL_CARD.md").write_text(card, encoding="utf-8")
