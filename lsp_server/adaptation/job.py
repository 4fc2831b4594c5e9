"""One adaptation, as a process of its own: `python -m lsp_server.adaptation.job` reads a Request (JSON) on
stdin, fine-tunes the base model on the workspace's files (the ones the repository memory reads:
documents/workspace.py) on one thread, and writes the checkpoint into the cache folder named by the request,
atomically (a partial folder renamed into place, so a killed process leaves the previous checkpoint or
nothing). It prints one JSON object per line: {"progress", "loss"} as it goes, then {"report", "folder"},
or {"error"} and exit status 1. `unmask adapt` runs the same `adapt_workspace` in process.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import msgspec

from ..documents import workspace
from . import cache


class Request(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    roots: list[str]  # the workspace's folders
    extensions: list[str]  # of the served languages
    budget: int  # bytes of source read, the memory's own budget
    model: str  # the base checkpoint folder
    out: str  # the checkpoint folder to write
    minutes: float
    seed: int = 0


def project_texts(roots: list[Path], extensions: set[str], budget: int) -> dict[str, str]:
    """name -> text of the workspace's source files; names relative to their folder (prefixed with the
    folder's name when there are several)."""
    out = {}
    for path, text in workspace.source_files(roots, extensions, budget):
        top = next(r for r in roots if path == r or r in path.parents)
        rel = path.relative_to(top).as_posix()
        out[f"{top.name}/{rel}" if len(roots) > 1 else rel] = text
    return out


def adapt_workspace(request: Request, progress: Callable[[float, float], None] | None = None):
    """Adapt request.model to the workspace's files into request.out (replaced as a whole at the end)."""
    from engine.training.adapt import AdaptConfig, adapt

    roots = [Path(r).resolve() for r in request.roots]
    texts = project_texts(roots, set(request.extensions), request.budget)
    if not texts:
        raise ValueError(f"{', '.join(map(str, roots))}: no source files of a served language")
    model, out = Path(request.model), Path(request.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    for left in out.parent.glob(f".{out.name}.*-*"):  # of processes killed before they could clean up
        if not _alive(int(left.name.rsplit("-", 1)[1] or 0)):
            shutil.rmtree(left, ignore_errors=True)
    partial = out.with_name(f".{out.name}.partial-{os.getpid()}")
    card = {"base": cache.base_identity(model), "roots": [str(r) for r in roots],
            "fingerprint": cache.fingerprint(texts)}
    try:
        report = adapt(model, texts, partial, AdaptConfig(minutes=request.minutes, seed=request.seed),
                       progress, card=card)
        replace(partial, out)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return report


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return pid > 0


def replace(new: Path, out: Path) -> None:
    """Put folder new where out is; a reader sees the old folder or the new one, never a mixture."""
    old = out.with_name(f".{out.name}.old-{os.getpid()}")
    if out.exists():
        os.rename(out, old)
    os.rename(new, out)
    shutil.rmtree(old, ignore_errors=True)


def main() -> int:
    import torch

    torch.set_num_threads(1)  # one core: the server keeps the others
    emit = _emitter()
    try:
        request = msgspec.json.decode(sys.stdin.buffer.read(), type=Request)
        last = [0.0]

        def progress(done: float, loss: float) -> None:
            if time.monotonic() - last[0] >= 0.5 or done >= 1.0:
                last[0] = time.monotonic()
                emit({"progress": round(done, 4), "loss": round(loss, 4)})

        report = adapt_workspace(request, progress)
    except (ValueError, OSError, msgspec.ValidationError, msgspec.DecodeError) as e:
        emit({"error": str(e)})
        return 1
    emit({"report": asdict(report), "folder": request.out})
    return 0


def _emitter() -> Callable[[dict], None]:
    out = sys.stdout

    def emit(message: dict) -> None:
        out.write(json.dumps(message) + "\n")
        out.flush()

    return emit


if __name__ == "__main__":
    sys.exit(main())
