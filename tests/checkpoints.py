"""Tiny checkpoints written by the tests themselves: a byte-level BPE tokenizer and random weights."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from engine.config import ModelConfig
from engine.load import save_checkpoint
from engine.model import Transformer

SAMPLE_CODE = [
    "def add(a, b):\n    return a + b\n",
    "import os\nimport sys\n\nclass Point:\n    def __init__(self, x, y):\n        self.x = x\n"
    "        self.y = y\n",
    "for i in range(10):\n    if i % 2 == 0:\n        print(i)\n",
    "function add(a, b) {\n  return a + b;\n}\n",
    'fn main() {\n    let x = vec![1, 2, 3];\n    println!("{:?}", x);\n}\n',
]
SPECIALS = ["<|endoftext|>", "<|mask|>"]


def write_tokenizer(folder: Path, vocab_size: int = 300, extra_specials: tuple[str, ...] = ()) -> Tokenizer:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIALS + list(extra_specials),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(SAMPLE_CODE * 20, trainer)
    folder.mkdir(parents=True, exist_ok=True)
    tok.save(str(folder / "tokenizer.json"))
    special_map = {"eos_token": "<|endoftext|>", "pad_token": "<|endoftext|>", "mask_token": "<|mask|>"}
    (folder / "tokenizer_config.json").write_text(json.dumps(special_map))
    return tok


def tiny_config(vocab_size: int, **overrides) -> ModelConfig:
    shape = dict(
        vocab_size=vocab_size,
        hidden_size=32,
        num_layers=2,
        num_heads=4,
        num_kv_heads=2,
        intermediate_size=64,
        rope_theta=10000.0,
        max_position_embeddings=512,
    )
    return ModelConfig(**{**shape, **overrides})


def write_dream_checkpoint(folder: Path, seed: int = 0, extra_specials: tuple[str, ...] = ()) -> Path:
    tok = write_tokenizer(folder, extra_specials=extra_specials)
    torch.manual_seed(seed)
    model = Transformer(tiny_config(tok.get_vocab_size()))
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.2)
    eos, mask = tok.token_to_id("<|endoftext|>"), tok.token_to_id("<|mask|>")
    save_checkpoint(model, folder, dict(mask_id=mask, eos_id=eos, pad_id=eos, bos_id=None))
    return folder
