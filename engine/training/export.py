"""Ship a trained model into the package folder (engine/default_model/) with its model card and loss curve.

The weights are stored in bf16 (half the size in git; the engine casts to the dtype it runs in).
Files are written to a temporary folder first and moved in one by one, so a reader never sees half a file.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from engine.load import save_checkpoint
from engine.model import Transformer
from engine.training import bpe
from engine.training.card import write_card
from engine.training.loop import TOKENIZER_FILES

MAX_WEIGHTS_BYTES = 50 * 2**20


def special_for(data_dir: Path) -> dict:
    ids = bpe.special_ids(bpe.load(data_dir / "tokenizer.json"))
    return {"mask_id": ids["mask_token_id"], "eos_id": ids["eos_token_id"], "pad_id": ids["pad_token_id"],
            "bos_id": ids["bos_token_id"]}


def ship(model: Transformer, out_dir: Path, data_dir: Path, run_dir: Path, cfg, state, metrics: dict) -> None:
    tmp = out_dir.parent / f".{out_dir.name}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    save_checkpoint(model, tmp, special_for(data_dir))
    to_bf16(tmp / "model.safetensors")
    size = (tmp / "model.safetensors").stat().st_size
    assert size <= MAX_WEIGHTS_BYTES, (
        f"model.safetensors is {size / 2**20:.1f} MiB, over the 50 MiB package limit"
    )
    for name in TOKENIZER_FILES:
        shutil.copy(data_dir / name, tmp / name)
    training = {"config": dataclasses.asdict(cfg), "state": dataclasses.asdict(state), "metrics": metrics,
                "run": run_dir.name, "corpus": json.loads((data_dir / "manifest.json").read_text())}
    (tmp / "training.json").write_text(json.dumps(training, indent=2) + "\n")
    refresh_card(tmp, run_dir, data_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    # config last: it names the shapes
    for path in sorted(tmp.iterdir(), key=lambda p: p.name == "config.json"):
        os.replace(path, out_dir / path.name)
    tmp.rmdir()


def refresh_card(model_dir: Path, run_dir: Path, data_dir: Path) -> None:
    """Copy the run's log (it holds the history of the runs it continues) and rewrite card and plot."""
    log = run_dir / "log.jsonl"
    if log.exists() and log.resolve() != (model_dir / "log.jsonl").resolve():
        shutil.copy(run_dir / "log.jsonl", model_dir / "log.jsonl")
    write_card(model_dir, run_dir, data_dir)


def shipped_val_loss(out_dir: Path) -> float:
    path = out_dir / "training.json"
    if not path.exists():
        return math.inf
    return json.loads(path.read_text())["metrics"].get("val_loss", math.inf)


def ship_if_better(model: Transformer, out_dir: Path, data_dir: Path, run_dir: Path, cfg, state,
                   metrics: dict) -> bool:
    """Ship only when validation beats the model already in out_dir (same held-out batches and noise)."""
    if metrics["val_loss"] >= shipped_val_loss(out_dir):
        return False
    ship(model, out_dir, data_dir, run_dir, cfg, state, metrics)
    return True


def to_bf16(path: Path) -> None:
    tensors = {k: v.to(torch.bfloat16).contiguous() for k, v in load_file(str(path)).items()}
    save_file(tensors, str(path), metadata={"format": "pt"})
    config_path = path.parent / "config.json"
    config = json.loads(config_path.read_text())
    config["torch_dtype"] = "bfloat16"
    config_path.write_text(json.dumps(config, indent=2) + "\n")
