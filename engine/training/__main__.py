"""python -m engine.training {prepare,train,export,index}: train the embedded model (see MODEL_CARD.md)."""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import sys
from pathlib import Path

import torch

from engine.load import native_bf16
from engine.training import corpus, export, loop, prepare

DEFAULT_MODEL = Path(__file__).resolve().parent.parent / "default_model"
DATA = corpus.default_cache() / "data"
SDISTS = corpus.default_cache() / "sdist"
# TrainConfig fields settable from the command line
OVERRIDES = ("hidden_size", "num_layers", "num_heads", "num_kv_heads", "intermediate_size", "seq_len",
             "batch_size", "infill_fraction", "holes", "lr", "warmup_steps", "steps", "decay_fraction",
             "seed", "eval_every", "val_batches", "ckpt_minutes", "threads")


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    return args.func(args)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m engine.training", description=__doc__)
    sub = p.add_subparsers(required=True)

    pre = sub.add_parser("prepare",
                         help="collect the corpus, train or reuse the tokenizer, write token streams")
    pre.add_argument("--data", type=Path, default=DATA)
    pre.add_argument("--vocab", type=int, default=4096)
    pre.add_argument("--stdlib-only", action="store_true", help="skip the pinned PyPI sdists")
    pre.add_argument("--languages", action="store_true",
                     help="add Go, Rust, Java, C, C++, TypeScript and JavaScript from pinned Debian and npm "
                          "packages (engine/training/languages.py); Python stays over half")
    pre.add_argument("--tokenize-only", action="store_true",
                     help="reuse <data>/corpus.jsonl.gz (e.g. carried to another machine)")
    pre.add_argument("--tokenizer", type=Path, default=DEFAULT_MODEL / "tokenizer.json",
                     help="reuse this tokenizer if it exists (default: the shipped model's, so ids stay "
                          "stable)")
    pre.set_defaults(func=cmd_prepare)

    tr = sub.add_parser("train", help="train or resume runs/<name>")
    tr.add_argument("--name", required=True)
    tr.add_argument("--data", type=Path, default=DATA)
    tr.add_argument("--init", type=Path, help="start from a shipped model folder (e.g. engine/default_model)")
    tr.add_argument("--minutes", type=float, help="stop after this long; the lr decays over the last part")
    tr.add_argument("--ship", nargs="?", type=Path, const=DEFAULT_MODEL,
                    help="write the model here whenever validation beats what is there (default folder: "
                         "engine/default_model)")
    tr.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    tr.add_argument("--dtype", choices=("auto", "bf16", "fp32"), default="auto",
                    help="auto: bf16 autocast where the hardware runs it natively (AMX, AVX512-BF16, CUDA), "
                         "else fp32")
    tr.add_argument("--objective", choices=("diffusion", "ar"),
                    help="ar: causal next-token pretraining, to adapt to diffusion afterwards with --init")
    tr.add_argument("--compile", action="store_true")
    tr.add_argument("--estimator", choices=("bernoulli", "count"), default="bernoulli",
                    help="how the ELBO is sampled (see engine/training/objective.py)")
    for name in OVERRIDES:
        kind = type(getattr(loop.TrainConfig(), name))
        tr.add_argument("--" + name.replace("_", "-"), type=kind)
    tr.set_defaults(func=cmd_train)

    ex = sub.add_parser("export", help="ship a run's last checkpoint (if it validates better) and its card")
    ex.add_argument("--run", type=Path, required=True)
    ex.add_argument("--data", type=Path, default=DATA)
    ex.add_argument("--out", type=Path, default=DEFAULT_MODEL)
    ex.add_argument("--force", action="store_true", help="ship even if validation is not better")
    ex.add_argument("--card-only", action="store_true", help="only rewrite MODEL_CARD.md and loss.png")
    ex.set_defaults(func=cmd_export)

    ix = sub.add_parser("index", help="write the corpus index the model ships (memory.txt.xz: a sample of "
                                      "the train split, engine/training/index.py)")
    ix.add_argument("--data", type=Path, default=DATA)
    ix.add_argument("--out", type=Path, default=DEFAULT_MODEL)
    ix.set_defaults(func=cmd_index)
    return p


def cmd_prepare(args) -> int:
    args.data.mkdir(parents=True, exist_ok=True)
    if args.tokenizer.exists() and not (args.data / "tokenizer.json").exists():
        for name in export.TOKENIZER_FILES:
            shutil.copy(args.tokenizer.parent / name, args.data / name)
    if args.tokenize_only:
        stats = prepare.tokenize(args.data, args.vocab)
    else:
        languages = corpus.default_cache() / "lang" if args.languages else None
        stats = prepare.prepare(args.data, args.vocab, not args.stdlib_only, SDISTS, languages)
    print(json.dumps(stats, indent=2))
    return 0


def cmd_train(args) -> int:
    device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    given = {k: getattr(args, k) for k in OVERRIDES if getattr(args, k) is not None}
    if args.objective is not None:
        given["objective"] = args.objective
    bf16 = native_bf16(device) if args.dtype == "auto" else args.dtype == "bf16"
    cfg = dataclasses.replace(loop.TrainConfig(), **given, bf16=bf16, compile=args.compile,
                              estimator=args.estimator)
    if args.ship is not None and cfg.objective != "diffusion":
        print("--ship needs the diffusion objective: an autoregressive phase is not a diffusion model yet",
              file=sys.stderr)
        return 2
    run_dir = Path("runs") / args.name
    ship = None
    if args.ship is not None:
        def ship(model, cfg, state, metrics):
            if export.ship_if_better(model, args.ship, args.data, run_dir, cfg, state, metrics):
                print(f"shipped step {state.step} (val {metrics['val_loss']:.4f}) to {args.ship}", flush=True)
    try:
        state = loop.train(run_dir, args.data, cfg, init=args.init, device=device, max_minutes=args.minutes,
                           ship=ship, given=tuple(given))
    except loop.ResumeConflict as exc:
        print(exc, file=sys.stderr)
        return 2
    print(json.dumps(dataclasses.asdict(state)))
    return 0


def cmd_index(args) -> int:
    from engine.training import index

    print(json.dumps(index.write(args.data, args.out), indent=2))
    return 0


def cmd_export(args) -> int:
    if args.card_only:
        export.refresh_card(args.out, args.run, args.data)
        return 0
    ckpt = args.run / "ckpt"
    cfg, state = loop.load_state(ckpt)
    model = loop.load_model(ckpt, "cpu")
    source = loop.batch_source(args.data, export.bpe.load(args.data / "tokenizer.json"),
                               export.special_for(args.data)["eos_id"], cfg, "val", loop.VAL_SEED,
                               loop.VAL_BATCH_SIZE)
    metrics = loop.validate(model, source, export.special_for(args.data)["mask_id"], cfg, "cpu")
    if args.force:
        export.ship(model, args.out, args.data, args.run, cfg, state, metrics)
    elif not export.ship_if_better(model, args.out, args.data, args.run, cfg, state, metrics):
        print(f"not shipped: val {metrics['val_loss']:.4f} is not better than {args.out}", file=sys.stderr)
        return 1
    print(json.dumps(metrics))
    return 0


if __name__ == "__main__":
    sys.exit(main())
