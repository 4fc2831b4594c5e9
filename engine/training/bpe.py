"""Byte-level BPE for the embedded model, trained with `tokenizers` on the training split only."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers

EOS = "<|endoftext|>"  # end of text, and the pad that fills an infill canvas after the middle
MASK = "<|mask|>"
SPECIAL_TOKENS = [EOS, MASK]
# Qwen2's split, less its merging of punctuation with the line break after it: line breaks (with trailing
# spaces) and indentation are their own pieces, so every line end is a token boundary, and a middle that stops
# at the end of a line is tokenized as it is inside a file.
SPLIT_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+|\s*[\r\n]+|\s+(?!\S)|\s+"
)


def new_tokenizer() -> Tokenizer:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(SPLIT_PATTERN), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    return tok


def train(texts: Iterable[str], vocab_size: int) -> Tokenizer:
    tok = new_tokenizer()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=SPECIAL_TOKENS,  # ids 0 and 1
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer)
    return tok


def special_ids(tok: Tokenizer) -> dict[str, int]:
    eos, mask = tok.token_to_id(EOS), tok.token_to_id(MASK)
    assert eos is not None and mask is not None, "tokenizer lacks <|endoftext|> or <|mask|>"
    return {"eos_token_id": eos, "pad_token_id": eos, "bos_token_id": eos, "mask_token_id": mask}


def save(tok: Tokenizer, out_dir: Path) -> None:
    """tokenizer.json plus the HF side files that name the special tokens."""
    out_dir.mkdir(parents=True, exist_ok=True)
    tok.save(str(out_dir / "tokenizer.json"))
    names = {"eos_token": EOS, "pad_token": EOS, "bos_token": EOS, "mask_token": MASK}
    (out_dir / "special_tokens_map.json").write_text(json.dumps(names, indent=2) + "\n")
    config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "model_max_length": 4096,
        "clean_up_tokenization_spaces": False,
        **names,
    }
    (out_dir / "tokenizer_config.json").write_text(json.dumps(config, indent=2) + "\n")


def load(path: Path) -> Tokenizer:
    return Tokenizer.from_file(str(path))
