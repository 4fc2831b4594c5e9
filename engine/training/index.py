"""The corpus index a checkpoint ships (engine/corpus_index.py): a sample of the training split's text.

Only the train split goes in (validation and test files stay unseen), and only sources under permissive
licences, since the text ships inside the package: the Python part (PSF, BSD, MIT, Apache-2.0 packages),
Go's standard library (BSD), rust-src (MIT/Apache-2.0) and the npm packages (MIT/Apache-2.0). Java (OpenJDK,
GPLv2 with the classpath exception), C (glibc, LGPL) and C++ (libstdc++, GPLv3 with the runtime exception)
are left out. Files are taken in an order fixed by a hash of their names, so a rebuild picks the same ones.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import lzma
from pathlib import Path

from engine.corpus_index import INDEX_FILE
from engine.memory import SEP

# bytes of text per language; Python is what most users complete and most of the corpus
BUDGET = {"python": 14_000_000, "go": 1_500_000, "rust": 1_500_000, "javascript": 1_000_000,
          "typescript": 1_000_000}


def _order(name: str) -> bytes:
    return hashlib.sha256(name.encode()).digest()


def sample(data: Path, budget: dict[str, int] = BUDGET) -> tuple[bytes, dict[str, dict[str, int]]]:
    """(texts joined by SEP, {language: {"files", "bytes"}}) from <data>/corpus.jsonl.gz's train split."""
    picked: dict[str, list[tuple[bytes, str]]] = {lang: [] for lang in budget}
    with gzip.open(data / "corpus.jsonl.gz", "rt", encoding="utf-8") as f:
        for line in f:
            doc = json.loads(line)
            lang = doc.get("language", "python")
            if doc["split"] == "train" and lang in budget:
                picked[lang].append((_order(doc["name"]), doc["text"]))
    parts, stats = [], {}
    for lang, docs in picked.items():
        used = files = 0
        for _, text in sorted(docs, key=lambda d: d[0]):
            raw = text.encode("utf-8", "replace")
            if used + len(raw) > budget[lang]:
                continue
            parts.append(raw)
            used, files = used + len(raw), files + 1
        stats[lang] = {"files": files, "bytes": used}
    return SEP.join(parts), stats


def write(data: Path, out: Path, budget: dict[str, int] = BUDGET) -> dict:
    text, stats = sample(data, budget)
    out.mkdir(parents=True, exist_ok=True)
    (out / INDEX_FILE).write_bytes(lzma.compress(text, preset=9))
    return {"languages": stats, "bytes": len(text), "compressed": (out / INDEX_FILE).stat().st_size}
