"""Hugging Face model ids (`org/name`, `org/name@revision`) resolved to a snapshot folder in the Hub's cache.

Only what the engine reads is downloaded (config, safetensors weights and index, tokenizer files), never
pickle weights or code. huggingface_hub resumes interrupted downloads, and answers from its cache when
HF_HUB_OFFLINE=1 or when the Hub cannot be reached. A folder that exists always wins over an id.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Callable
from pathlib import Path

from engine.errors import HubError

FILES = [
    "config.json",
    "generation_config.json",
    "*.safetensors",
    "model.safetensors.index.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
]
SUBFOLDERS = ["*/*"]  # fnmatch's * also matches "/": without this, onnx/ or original/ copies would come too
_ID = re.compile(r"^([A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*)(?:@([^\s@]+))?$")
Progress = Callable[[int, int], None]  # (bytes done, bytes in all), called from download threads


def parse_id(spec: str | Path) -> tuple[str, str | None] | None:
    """(repo id, revision or None) when spec names a Hub model rather than an existing folder, else None."""
    text = str(spec)
    found = _ID.match(text)
    if found is None or Path(text).expanduser().exists() or "--" in text or ".." in found.group(1):
        return None
    return found.group(1), found.group(2)


def repo_id_of(folder: str | Path) -> str | None:
    """`org/name` for a snapshot folder of the Hub cache (.../models--org--name/snapshots/<commit>)."""
    folder = Path(folder)
    repo = folder.parent.parent.name
    if folder.parent.name != "snapshots" or not repo.startswith("models--"):
        return None
    return repo.removeprefix("models--").replace("--", "/", 1)


def offline() -> bool:
    from huggingface_hub import constants

    flag = os.environ.get("HF_HUB_OFFLINE", "").upper()  # read now: constants read it at import
    return constants.HF_HUB_OFFLINE or flag in {"1", "ON", "YES", "TRUE"}


def resolve(spec: str | Path, progress: Progress | None = None) -> Path:
    """The folder spec names: itself, or a Hub model's snapshot (downloaded first when not cached). Without
    `progress`, huggingface_hub draws its own progress bars on stderr."""
    parsed = parse_id(spec)
    if parsed is None:
        return Path(spec).expanduser()
    import huggingface_hub

    repo, revision = parsed
    try:
        folder = huggingface_hub.snapshot_download(
            repo,
            revision=revision,
            allow_patterns=FILES,
            ignore_patterns=SUBFOLDERS,
            local_files_only=offline(),
            tqdm_class=None if progress is None else reporting_bars(progress),
        )
    # the HTTP client's own errors differ between huggingface_hub versions; each becomes one line
    except Exception as e:
        raise HubError(explain(str(spec), revision, e)) from None
    return Path(folder)


def config_file(spec: str) -> Path:
    """A Hub model's config.json alone (`unmask fit`): from the cache, else fetched by itself (a few KB,
    no weights); the same one-line errors as resolve."""
    parsed = parse_id(spec)
    assert parsed is not None, f"{spec!r} is not a Hub id"
    import huggingface_hub

    repo, revision = parsed
    try:
        return Path(huggingface_hub.hf_hub_download(repo, "config.json", revision=revision,
                                                    local_files_only=offline()))
    except Exception as e:  # as in resolve: each client error becomes one line
        raise HubError(explain(spec, revision, e)) from None


def explain(spec: str, revision: str | None, e: Exception) -> str:
    from huggingface_hub import constants, errors

    cache = constants.HF_HUB_CACHE
    if isinstance(e, errors.GatedRepoError):
        return f"model {spec!r} is gated on the Hugging Face Hub: accept its terms, then `hf auth login`"
    if isinstance(e, errors.RepositoryNotFoundError):
        return (
            f"model {spec!r} is neither a folder nor a model on the Hugging Face Hub "
            "(a private one needs `hf auth login`)"
        )
    if isinstance(e, errors.RevisionNotFoundError):
        return f"model {spec!r}: the Hugging Face Hub has no revision {revision!r}"
    if isinstance(e, getattr(errors, "IncompleteSnapshotError", ())):
        return f"model {spec!r}: the cached download in {cache} is incomplete; run once online to finish it"
    if isinstance(e, errors.LocalEntryNotFoundError):
        why = "HF_HUB_OFFLINE=1" if offline() else "the Hugging Face Hub cannot be reached"
        return (
            f"model {spec!r} is not in the Hugging Face cache ({cache}) and {why}: "
            "run once online or pass a folder"
        )
    if isinstance(e, errors.HfHubHTTPError):
        status = getattr(e.response, "status_code", "?")
        return f"model {spec!r}: the Hugging Face Hub answered HTTP {status}: try later or pass a folder"
    return f"model {spec!r}: download failed ({type(e).__name__}: {e}); run again to resume it"


def reporting_bars(progress: Progress) -> type:
    """A tqdm class for snapshot_download that draws nothing and reports the most advanced byte count.

    huggingface_hub opens several bars (files fetched; bytes received; bytes written) whose totals grow as
    files start; a bar in bytes is preferred, the count of files serves where there is none."""
    from tqdm.auto import tqdm

    lock, bars = threading.Lock(), []

    class Bar(tqdm):
        def __init__(self, *args, **kwargs):
            kwargs.pop("name", None)
            self.in_bytes = kwargs.get("unit") == "B"
            super().__init__(*args, **{**kwargs, "disable": True})  # disabled: keeps n and total only
            with lock:
                bars.append(self)

        def update(self, n=1):
            with lock:
                self.n += n or 0
                counted = [b for b in bars if b.in_bytes and b.total] or [b for b in bars if b.total]
                if not counted:
                    return
                best = max(counted, key=lambda b: b.n / b.total)
                done, total = int(best.n), int(best.total)
            progress(min(done, total), total)

    return Bar
