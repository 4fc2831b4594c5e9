"""Where adapted checkpoints live and when one can be reused.

One folder per workspace (its folders' resolved paths, hashed) under `$XDG_CACHE_HOME/unmask/adapted`. The
checkpoint's `adaptation.json` names the base model it started from and a fingerprint of every file it read;
a later start reuses it when the base is the same and at most a `refresh` share of the project's bytes
changed (added, edited or removed files).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

CARD = "adaptation.json"


def root() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "unmask" / "adapted"


def folder_for(roots: list[Path]) -> Path:
    """The cache folder of a workspace made of these folders (in any order)."""
    resolved = sorted(str(r.resolve()) for r in roots)
    key = hashlib.sha256("\0".join(resolved).encode()).hexdigest()[:16]
    return root() / f"{Path(resolved[0]).name or 'root'}-{key}"


def base_identity(model_folder: Path) -> str:
    """The base checkpoint as it is on disk: its folder and its weight files' sizes and times."""
    parts = [str(model_folder.resolve())]
    for f in sorted(model_folder.glob("*.safetensors")):
        st = f.stat()
        parts.append(f"{f.name}:{st.st_size}:{st.st_mtime_ns}")
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def fingerprint(texts: dict[str, str]) -> dict[str, list]:
    """name -> [bytes, content hash]: enough to tell which files changed and by how much."""
    return {name: [len(t.encode()), hashlib.sha1(t.encode()).hexdigest()[:16]] for name, t in texts.items()}


def changed_share(old: dict[str, list], new: dict[str, list]) -> float:
    """Bytes of the files added, removed or edited, over the larger of the two projects' sizes."""
    changed = sum(size for name, (size, digest) in new.items() if old.get(name, [0, None])[1] != digest)
    changed += sum(size for name, (size, _) in old.items() if name not in new)
    total = max(sum(s for s, _ in old.values()), sum(s for s, _ in new.values()), 1)
    return changed / total


@dataclass(frozen=True)
class Cached:
    folder: Path
    card: dict
    changed: float  # share of the project changed since it was adapted

    def fresh(self, refresh: float) -> bool:
        return self.changed <= refresh


def cached(folder: Path, base: str, texts: dict[str, str]) -> Cached | None:
    """The adapted checkpoint in folder, if it is complete and was adapted from this base."""
    try:
        card = json.loads((folder / CARD).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if card.get("base") != base or not any(folder.glob("*.safetensors")):
        return None
    return Cached(folder, card, changed_share(card.get("fingerprint", {}), fingerprint(texts)))
