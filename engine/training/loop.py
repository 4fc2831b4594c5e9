"""The training loop: AdamW, warmup-stable-decay schedule, grad clipping, bf16 autocast, timed checkpoints
with optimizer state and data position, exact resume, and a jsonl log.

A run lives in `runs/<name>/`: `ckpt/` (config.json, model.safetensors, optimizer.pt, state.json) and
`log.jsonl`. Batches and noise are functions of (seed, step), so resuming at step s replays exactly what
an uninterrupted run would have done from s.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from engine.config import ModelConfig
from engine.load import load_transformer, save_checkpoint
from engine.model import Transformer, rope_tables
from engine.training import bpe, corpus
from engine.training.data import Batch, BatchSource, InfillSampler, load_stream
from engine.training.objective import add_noise, add_noise_count, sample_t

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")
HEAD_BUCKET = 256
VAL_SEED = 999  # the held-out batches and their noise are fixed, so validation losses compare across runs
VAL_BATCH_SIZE = 16  # ... whatever batch size a run trains with (a GPU run's 128 would pick other rows)


@dataclass(frozen=True)
class TrainConfig:
    hidden_size: int = 256
    num_layers: int = 6
    num_heads: int = 4
    num_kv_heads: int = 2
    intermediate_size: int = 768
    seq_len: int = 512
    batch_size: int = 16
    infill_fraction: float = 0.5
    holes: int = 1  # infill rows draw 1..holes single-line holes (validation rows always have one)
    lr: float = 1.5e-3
    min_lr_ratio: float = 0.1
    warmup_steps: int = 200
    steps: int = 20_000  # planned length; the last decay_fraction of it decays the learning rate
    decay_fraction: float = 0.2
    weight_decay: float = 0.1
    grad_clip: float = 1.0
    seed: int = 0
    eval_every: int = 250
    val_batches: int = 8
    ckpt_minutes: float = 10.0
    threads: int = 0  # 0: leave torch's default
    bf16: bool = True  # the CLI sets it from the hardware: bf16 autocast is 2x faster or 6x slower by CPU
    compile: bool = False
    estimator: str = "bernoulli"  # "bernoulli": t ~ U, masks ~ Bernoulli(t); "count": k ~ U{1..L} masked
    # "diffusion": the masked-diffusion ELBO; "ar": causal attention, next-token loss at every position, as
    # pretraining before adaptation (the shifted head already reads output i - 1 for token i)
    objective: str = "diffusion"

    def model_config(self, vocab_size: int) -> ModelConfig:
        return ModelConfig(
            vocab_size=vocab_size, hidden_size=self.hidden_size, num_layers=self.num_layers,
            num_heads=self.num_heads, num_kv_heads=self.num_kv_heads,
            intermediate_size=self.intermediate_size,
            max_position_embeddings=self.seq_len,  # the engine cuts context to what was trained
            qkv_bias=True, shift=True, family="dream",
        )


@dataclass
class TrainState:
    step: int = 0  # optimizer steps taken, in this run and those it continues
    data_step: int = 0  # next batch index in the data order
    tokens_seen: int = 0
    wall_s: float = 0.0
    best_val: float = math.inf
    # step where this run's learning-rate schedule began (a continued run warms up again)
    schedule_start: int = 0
    hardware: list[str] = dataclasses.field(default_factory=list)


def lr_at(cfg: TrainConfig, step: int, start: int, elapsed_frac: float = 0.0) -> float:
    """Warmup-stable-decay. Warmup counts steps from `start` (where this run began: a continued run warms up
    again); the decay covers the last decay_fraction of the run, measured in steps or, when the run has a
    time budget, in time (elapsed_frac), whichever comes first."""
    s = step - start
    if s < cfg.warmup_steps:
        return cfg.lr * (s + 1) / cfg.warmup_steps
    progress = max(s / max(1, cfg.steps - start), elapsed_frac)
    frac = min(1.0, max(0.0, (progress - (1.0 - cfg.decay_fraction)) / cfg.decay_fraction))
    return cfg.lr * (1.0 - (1.0 - cfg.min_lr_ratio) * frac)


def hidden_states(model: Transformer, ids: Tensor, causal: bool = False) -> Tensor:
    # the forward pass without the head: [B, T] -> [B, T, H]
    positions = torch.arange(ids.shape[1], device=ids.device)
    cos, sin = rope_tables(positions, model.cfg.head_dim, model.cfg.rope_theta)
    x = model.embed(ids)
    for block in model.layers:
        x = block(x, cos, sin, 0, None, causal)
    return model.norm(x)


def ar_loss(model: Transformer, batch: Batch) -> tuple[Tensor, Tensor]:
    """Mean next-token loss and per-row losses [B] with causal attention: output i - 1 predicts token i at
    every maskable position, through the same shifted head the diffusion objective trains."""
    h = hidden_states(model, batch.ids, causal=True)
    logits = model.head(h[:, :-1])  # [B, T-1, V]
    ce = torch.nn.functional.cross_entropy(logits.flatten(0, 1).float(), batch.ids[:, 1:].flatten(),
                                           reduction="none").view(batch.ids.shape[0], -1)
    scored = batch.maskable[:, 1:].float()
    per_row = (ce * scored).sum(1) / scored.sum(1).clamp(min=1)
    return per_row.mean(), per_row.detach()


def step_loss(model: Transformer, batch: Batch, mask_id: int, generator: torch.Generator,
              cfg: TrainConfig) -> tuple[Tensor, Tensor]:
    if cfg.objective == "ar":
        return ar_loss(model, batch)
    return batch_loss(model, batch, mask_id, generator, cfg.estimator)


def batch_loss(model: Transformer, batch: Batch, mask_id: int, generator: torch.Generator,
               estimator: str = "bernoulli") -> tuple[Tensor, Tensor]:
    """Mean ELBO loss and the per-row losses [B]. The head runs only where a masked token is predicted
    (Dream's shift: position i reads output i - 1), which equals objective.diffusion_loss."""
    if estimator == "count":
        noisy, masked, t = add_noise_count(batch.ids, batch.maskable, batch.length, mask_id, generator)
        t = t.to(batch.ids.device)
    else:
        t = sample_t(batch.ids.shape[0], generator).to(batch.ids.device)
        noisy, masked = add_noise(batch.ids, batch.maskable, t, mask_id, generator)
    rows, cols = masked.nonzero(as_tuple=True)
    # pad the gathered positions to a multiple of HEAD_BUCKET: oneDNN caches a bf16 matmul per shape, and one
    # new shape per step grows memory without bound
    pad = -rows.numel() % HEAD_BUCKET
    keep = torch.cat([torch.ones(rows.numel(), device=rows.device), torch.zeros(pad, device=rows.device)])
    rows, cols = (torch.cat([x, x.new_zeros(pad)]) for x in (rows, cols))
    h = hidden_states(model, noisy)
    logits = model.head(h[rows, (cols - 1).clamp(min=0)])  # [N, V]
    ce = torch.nn.functional.cross_entropy(logits.float(), batch.ids[rows, cols], reduction="none") * keep
    per_row = torch.zeros(batch.ids.shape[0], device=ce.device).index_add_(0, rows, ce) / batch.length / t
    return per_row.mean(), per_row.detach()


def autocast(cfg: TrainConfig, device: str):
    if not cfg.bf16:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device, dtype=torch.bfloat16)


def noise_generator(seed: int, step: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed * 1_000_003 + step)


@torch.no_grad()
def validate(model: Transformer, source: BatchSource, mask_id: int, cfg: TrainConfig, device: str) -> dict:
    """Loss on fixed held-out batches with fixed noise: plain rows and infill rows apart."""
    model.eval()
    n_plain = source.batch_size - source.n_infill
    plain, infill = [], []
    for k in range(cfg.val_batches):
        with autocast(cfg, device):
            _, rows = step_loss(model, to_device(source.batch(k), device), mask_id,
                                noise_generator(VAL_SEED, k), cfg)
        plain.append(rows[:n_plain])
        infill.append(rows[n_plain:])
    model.train()
    out = {"val_plain": torch.cat(plain).mean().item() if n_plain else math.nan,
           "val_infill": torch.cat(infill).mean().item() if source.n_infill else math.nan}
    out["val_loss"] = (torch.cat(plain + infill)).mean().item()
    return out


def to_device(batch: Batch, device: str) -> Batch:
    if device == "cpu":
        return batch
    return Batch(*(x.to(device, non_blocking=True) for x in (batch.ids, batch.maskable, batch.length)))


# ---------------------------------------------------------------- checkpoints

def save(run_dir: Path, model: Transformer, opt: torch.optim.Optimizer, cfg: TrainConfig, state: TrainState,
         special: dict, data_dir: Path) -> None:
    """run_dir/ckpt: a checkpoint engine.load_model can open (with the tokenizer), plus optimizer and
    state."""
    tmp, final = run_dir / "ckpt.tmp", run_dir / "ckpt"
    save_checkpoint(model, tmp, special)
    for name in TOKENIZER_FILES:
        shutil.copy(data_dir / name, tmp / name)
    torch.save(opt.state_dict(), tmp / "optimizer.pt")
    (tmp / "state.json").write_text(json.dumps({"config": dataclasses.asdict(cfg),
                                                "state": dataclasses.asdict(state)}, indent=2) + "\n")
    if final.exists():
        final.replace(run_dir / "ckpt.old")
    tmp.replace(final)
    old = run_dir / "ckpt.old"
    if old.exists():
        for p in old.iterdir():
            p.unlink()
        old.rmdir()


def load_state(folder: Path) -> tuple[TrainConfig, TrainState]:
    raw = json.loads((folder / "state.json").read_text())
    return TrainConfig(**raw["config"]), TrainState(**raw["state"])


def load_model(folder: Path, device: str) -> Transformer:
    model, _, _ = load_transformer(folder, device=device)
    for p in model.parameters():
        p.requires_grad_(True)
    return model.train()


def make_optimizer(model: Transformer, cfg: TrainConfig) -> torch.optim.Optimizer:
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.ndim < 2]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=(0.9, 0.95), eps=1e-8, fused=False)


def hardware(device: str, bf16: bool = True) -> str:
    dtype = "bf16 autocast" if bf16 else "fp32"
    if device == "cuda":
        return f"{torch.cuda.get_device_name()}, {dtype}"
    return f"{cpu_name()} x{torch.get_num_threads()} threads ({os.cpu_count()} cores visible), {dtype}"


def cpu_name() -> str:
    """The CPU model and its bf16 instructions, from /proc/cpuinfo (\"CPU\" where it cannot be read)."""
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return "CPU"
    names = (ln.split(":", 1)[1].strip() for ln in info.splitlines() if ln.startswith("model name"))
    model = next(names, "CPU")
    flags = next((ln.split(":", 1)[1].split() for ln in info.splitlines() if ln.startswith("flags")), [])
    native = [f for f in ("amx_bf16", "avx512_bf16") if f in flags]
    return f"{model} ({', '.join(native) if native else 'no native bf16'})"


# options a resumed run takes from the command line; the others fix its data order or shapes
RESUMABLE = ("steps", "ckpt_minutes", "threads", "eval_every", "compile", "estimator", "lr", "warmup_steps",
             "decay_fraction", "val_batches", "bf16")


class ResumeConflict(ValueError):
    pass


# ---------------------------------------------------------------- the loop

def resumed_config(
    saved: TrainConfig, cfg: TrainConfig, given: tuple[str, ...], run_dir: Path
) -> TrainConfig:
    """The saved config with the options given on this command line applied; an option that would change the
    data order or the model's shape is refused rather than silently dropped."""
    for name in given:
        if name not in RESUMABLE and getattr(cfg, name) != getattr(saved, name):
            raise ResumeConflict(
                f"{run_dir}: {name} is {getattr(saved, name)!r} in this run, not {getattr(cfg, name)!r}; "
                f"resuming cannot change it (start a new run with --init {run_dir / 'ckpt'})")
    keep = {"steps", "ckpt_minutes", "threads", "eval_every", "compile", "estimator", "bf16"}
    return dataclasses.replace(saved, **{k: getattr(cfg, k) for k in keep | (set(given) & set(RESUMABLE))})


def init_state(init: Path) -> TrainState:
    # a shipped model folder keeps its counters in training.json, a run's checkpoint in state.json
    path = init / "training.json" if (init / "training.json").exists() else init / "state.json"
    return TrainState(**json.loads(path.read_text())["state"])


def start(run_dir: Path, cfg: TrainConfig, vocab_size: int, init: Path | None, device: str,
          given: tuple[str, ...] = ()):
    """(model, optimizer, cfg, state): resumed from run_dir/ckpt if present; else from `init` (a shipped model
    folder with training.json, or a run's ckpt/: weights and counters, fresh optimizer); else from scratch."""
    ckpt = run_dir / "ckpt"
    if ckpt.exists():
        saved, state = load_state(ckpt)
        cfg = resumed_config(saved, cfg, given, run_dir)
        model = load_model(ckpt, device)
        opt = make_optimizer(model, cfg)
        opt.load_state_dict(torch.load(ckpt / "optimizer.pt", map_location=device, weights_only=True))
    elif init is not None:
        model = load_model(init, device)
        state = init_state(init)
        state.schedule_start, state.best_val = state.step, math.inf
        opt = make_optimizer(model, cfg)
    else:
        torch.manual_seed(cfg.seed)
        model = Transformer(cfg.model_config(vocab_size)).to(device)
        init_weights(model)
        state, opt = TrainState(), make_optimizer(model, cfg)
    assert model.cfg.vocab_size == vocab_size, (
        f"tokenizer has {vocab_size} tokens, the model {model.cfg.vocab_size}"
    )
    if hardware(device, cfg.bf16) not in state.hardware:
        state.hardware.append(hardware(device, cfg.bf16))
    return model, opt, cfg, state


def train(run_dir: Path, data_dir: Path, cfg: TrainConfig, *, init: Path | None = None, device: str = "cpu",
          max_minutes: float | None = None, ship=None, log_every: int = 10, given: tuple[str, ...] = ()
          ) -> TrainState:
    """Train until cfg.steps or max_minutes, logging to run_dir/log.jsonl and checkpointing to run_dir/ckpt.
    `ship(model, cfg, state, metrics)` is called when this run's validation loss improves."""
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    run_dir.mkdir(parents=True, exist_ok=True)
    tok = bpe.load(data_dir / "tokenizer.json")
    ids = bpe.special_ids(tok)
    special = {"mask_id": ids["mask_token_id"], "eos_id": ids["eos_token_id"], "pad_id": ids["pad_token_id"],
               "bos_id": ids["bos_token_id"]}
    if init is not None and not (run_dir / "log.jsonl").exists() and (init / "log.jsonl").exists():
        shutil.copy(init / "log.jsonl", run_dir / "log.jsonl")  # the loss curve continues across runs
    model, opt, cfg, state = start(run_dir, cfg, tok.get_vocab_size(), init, device, given)
    source = batch_source(data_dir, tok, special["eos_id"], cfg, "train", cfg.seed)
    val_source = batch_source(data_dir, tok, special["eos_id"], cfg, "val", VAL_SEED, VAL_BATCH_SIZE)
    step_fn = torch.compile(step_loss) if cfg.compile else step_loss
    log = open_log(run_dir / "log.jsonl", state.step)
    t_run = t_ckpt = t_prev = time.time()
    train_s, tokens_log = 0.0, 0
    model.train()
    while state.step < cfg.steps:
        elapsed = 0.0 if max_minutes is None else (time.time() - t_run) / (max_minutes * 60)
        if elapsed >= 1.0:
            break
        batch = to_device(source.batch(state.data_step), device)
        lr = lr_at(cfg, state.step, state.schedule_start, elapsed)
        for group in opt.param_groups:
            group["lr"] = lr
        with autocast(cfg, device):
            noise = noise_generator(cfg.seed, state.data_step)
            loss, _ = step_fn(model, batch, special["mask_id"], noise, cfg)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        gnorm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        state.step, state.data_step = state.step + 1, state.data_step + 1
        state.tokens_seen += batch.ids.numel()
        tokens_log += batch.ids.numel()
        now = time.time()
        train_s, state.wall_s, t_prev = train_s + now - t_prev, state.wall_s + now - t_prev, now
        if state.step % log_every == 0 or state.step == cfg.steps:
            write_log(log, {"step": state.step, "tokens": state.tokens_seen, "loss": round(loss.item(), 4),
                            "grad_norm": round(gnorm.item(), 3), "lr": round(lr, 6),
                            "tok_per_s": round(tokens_log / max(train_s, 1e-9)),
                            "wall_s": round(state.wall_s)},
                      cfg.objective)
            train_s, tokens_log = 0.0, 0
        if state.step % cfg.eval_every == 0 or state.step == cfg.steps:
            evaluate(model, val_source, special["mask_id"], cfg, state, device, log, ship)
        if time.time() - t_ckpt > cfg.ckpt_minutes * 60:
            save(run_dir, model, opt, cfg, state, special, data_dir)
            t_ckpt = time.time()
        now = time.time()
        # evals and checkpoints: wall time, not throughput
        state.wall_s, t_prev = state.wall_s + now - t_prev, now
    if state.step % cfg.eval_every and state.step < cfg.steps:  # stopped by the clock: the decayed weights
        evaluate(model, val_source, special["mask_id"], cfg, state, device, log, ship)
    save(run_dir, model, opt, cfg, state, special, data_dir)
    log.close()
    return state


def evaluate(
    model, val_source, mask_id: int, cfg: TrainConfig, state: TrainState, device: str, log, ship
) -> None:
    metrics = validate(model, val_source, mask_id, cfg, device)
    write_log(log, {"step": state.step, "tokens": state.tokens_seen, **metrics}, cfg.objective)
    if metrics["val_loss"] < state.best_val:
        state.best_val = metrics["val_loss"]
        if ship is not None and cfg.objective == "diffusion":
            ship(model, cfg, state, metrics)


def open_log(path: Path, step: int):
    """Append to the log, dropping rows past `step` (written after the checkpoint a resumed run restarts
    from)."""
    if path.exists():
        rows = [x for x in path.read_text().splitlines() if x.strip() and json.loads(x)["step"] <= step]
        path.write_text("".join(x + "\n" for x in rows))
    return path.open("a")


def write_log(log, row: dict, objective: str = "diffusion") -> None:
    if objective != "diffusion":
        row = {**row, "objective": objective}  # the loss curve tells the phases apart
    log.write(json.dumps(row) + "\n")
    log.flush()


def batch_source(data_dir: Path, tok, eos_id: int, cfg: TrainConfig, split: str, seed: int,
                 batch_size: int | None = None) -> BatchSource:
    # training draws infill rows from every language; held-out rows stay Python, comparable across corpora
    files = corpus.read(data_dir, split, None if split == "train" else "python")
    holes = cfg.holes if split == "train" else 1  # held-out rows stay comparable across recipes
    return BatchSource(
        stream=load_stream(data_dir / f"tokens-{split}.bin"),
        infill=InfillSampler(tok, files, eos_id, cfg.seq_len, holes=holes),
        seq_len=cfg.seq_len, batch_size=batch_size or cfg.batch_size, infill_fraction=cfg.infill_fraction,
        seed=seed,
    )


def init_weights(model: Transformer) -> None:
    # GPT-2 style: N(0, 0.02), residual outputs scaled by 1/sqrt(2 * layers), zero biases, unit norms
    std = 0.02
    for name, p in model.named_parameters():
        if p.ndim < 2:
            torch.nn.init.ones_(p) if "norm" in name else torch.nn.init.zeros_(p)
        elif name.endswith(("wo.weight", "down.weight")):
            torch.nn.init.normal_(p, std=std / math.sqrt(2 * model.cfg.num_layers))
        else:
            torch.nn.init.normal_(p, std=std)
