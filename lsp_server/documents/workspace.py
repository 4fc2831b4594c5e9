"""The workspace's source files, for the repository memory: what a project holds besides its open documents.

Only files of the served languages, not ignored by the project (git's own ignore rules when the folder is a
git work tree; otherwise the usual virtual-environment, dependency and build folders are skipped), each at
most MAX_FILE_BYTES, most recently modified first, until the byte budget is spent; binary files (a NUL
byte) are skipped.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterable, Iterator
from pathlib import Path
from urllib.parse import unquote, urlparse

MAX_FILE_BYTES = 1_000_000
MAX_FILES = 20_000  # listed; read only until the budget is spent
SKIP_DIRS = {
    ".git",
    ".hg",
    ".svn",
    ".venv",
    "venv",
    "env",
    ".env",
    "node_modules",
    "__pycache__",
    "build",
    "dist",
    "target",
    "site-packages",
    ".tox",
    ".nox",
    ".mypy_cache",
    ".pytest_cache",
    ".idea",
    ".vscode",
    ".cache",
    "vendor",
    "third_party",
}


def folder_of(uri: str) -> Path | None:
    """A workspace folder URI (or path) as a local folder; None for anything not on disk."""
    parsed = urlparse(uri)
    if not uri or parsed.scheme not in ("", "file"):
        return None
    path = Path(unquote(parsed.path) if parsed.scheme else uri)
    return path if path.is_dir() else None


def project_of(folder: Path) -> Path:
    """The git work tree holding folder, else folder itself: where a file opened without a workspace lives."""
    try:
        run = subprocess.run(
            ["git", "-C", str(folder), "rev-parse", "--show-toplevel"],
            capture_output=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return folder
    top = run.stdout.decode("utf-8", "replace").strip()
    return Path(top) if run.returncode == 0 and top else folder


def listed(root: Path) -> list[Path] | None:
    """Files git tracks or would track (not ignored) under root; None when root is not in a git work tree."""
    try:
        run = subprocess.run(
            ["git", "-C", str(root), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            capture_output=True,
            timeout=20,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if run.returncode != 0:
        return None
    return [root / name for name in run.stdout.decode("utf-8", "replace").split("\0") if name][:MAX_FILES]


def walked(root: Path) -> list[Path]:
    out = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d not in SKIP_DIRS and not d.startswith("."))
        out.extend(Path(folder) / f for f in sorted(files))
        if len(out) >= MAX_FILES:
            break
    return out[:MAX_FILES]


def source_files(roots: Iterable[Path], extensions: set[str], budget: int) -> Iterator[tuple[Path, str]]:
    """(path, text) of the roots' source files, most recently modified first, within `budget` bytes."""
    candidates = []
    for root in roots:
        for path in listed(root) or walked(root):
            if path.suffix.lstrip(".") not in extensions:
                continue
            try:
                st = path.stat()
            except OSError:
                continue
            if 0 < st.st_size <= MAX_FILE_BYTES:
                candidates.append((st.st_mtime, st.st_size, path))
    spent = 0
    for _, size, path in sorted(candidates, key=lambda c: (-c[0], str(c[2]))):
        if spent + size > budget:
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        if "\0" in text:  # binary data that happens to decode (a NUL is valid UTF-8)
            continue
        spent += size
        yield path, text
