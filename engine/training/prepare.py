"""`prepare`: corpus -> tokenizer -> token streams, all in one data folder.

The folder is self-contained (corpus.jsonl.gz is enough to redo the rest elsewhere, e.g. on a GPU machine
whose interpreter has another standard library): `tokenize_only` rebuilds tokenizer and streams from it.
"""

from __future__ import annotations

import json
from pathlib import Path

from engine.training import bpe, corpus
from engine.training.data import save_stream, tokenize_files

SPLITS = ("train", "val", "test")


def prepare(data_dir: Path, vocab_size: int, with_sdists: bool, sdist_cache: Path,
            language_cache: Path | None = None) -> dict:
    files = corpus.collect(sdist_cache if with_sdists else None, language_cache)
    corpus.write(files, data_dir, with_sdists)
    return tokenize(data_dir, vocab_size, files)


def tokenize(data_dir: Path, vocab_size: int, files: list[corpus.SourceFile] | None = None) -> dict:
    files = files if files is not None else corpus.read(data_dir)
    tok_path = data_dir / "tokenizer.json"
    if tok_path.exists():
        tok = bpe.load(tok_path)  # keep ids stable: a continued run must see the tokenizer it started with
    else:
        tok = bpe.train((f.text for f in files if f.split == "train"), vocab_size)
        bpe.save(tok, data_dir)
    eos = bpe.special_ids(tok)["eos_token_id"]
    stats = {"vocab_size": tok.get_vocab_size()}
    for split in SPLITS:
        # training mixes every language; the held-out streams stay Python so that validation losses compare
        # with models trained before other languages came in; each other language gets streams of its own
        for language in sorted({f.language for f in files}):
            if split == "train" and language != "python":
                continue
            chosen = [f for f in files if f.split == split and (split == "train" or f.language == language)]
            stream = tokenize_files(tok, chosen, eos)
            suffix = "" if language == "python" else f"-{language}"
            save_stream(stream, data_dir / f"tokens-{split}{suffix}.bin")
            nbytes = sum(len(f.text.encode()) for f in chosen)
            stats[split + suffix] = {"files": len(chosen), "tokens": int(len(stream)),
                                     "bytes_per_token": nbytes / max(1, len(stream))}
    (data_dir / "tokens.json").write_text(json.dumps(stats, indent=2) + "\n")
    return stats
