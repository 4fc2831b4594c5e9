"""Training corpus: the running interpreter's standard library plus pinned PyPI sdists (`.py` files), and with
`languages` the other served languages from pinned Debian and npm packages (engine/training/languages.py).

Every file gets a stable name (`stdlib/<rel>` or `<pkg>-<version>/<rel>`) and a split chosen by a hash of that
name, so the held-out files never change between machines or sessions. `../shared/data` is never read.
"""

from __future__ import annotations

import ast
import gzip
import hashlib
import json
import os
import subprocess
import sys
import sysconfig
import tarfile
import warnings
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

PINNED = {
    "django": "5.2.19",
    "sqlalchemy": "2.1.9",
    "sympy": "1.14.0",
    "requests": "2.34.2",
    "flask": "3.1.3",
    "werkzeug": "3.1.9",
    "jinja2": "3.1.6",
    "click": "8.5.1",
    "rich": "15.0.0",
    "pytest": "9.2.0",
    "setuptools": "84.2.1",
    "networkx": "3.6.1",
}
SPLIT_BUCKETS = 1000
VAL_BUCKETS = range(0, 10)  # 1% of files: validation loss and checkpoint selection
TEST_BUCKETS = range(10, 20)  # 1% of files: the evaluation in bench/eval_model.py
MAX_FILE_BYTES = 400_000  # generated tables (unicode data, sympy's big rule files) teach little


@dataclass(frozen=True)
class SourceFile:
    name: str
    split: str
    text: str
    language: str = "python"


def split_of(name: str) -> str:
    bucket = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big") % SPLIT_BUCKETS
    if bucket in VAL_BUCKETS:
        return "val"
    if bucket in TEST_BUCKETS:
        return "test"
    return "train"


def usable(text: str) -> bool:
    if len(text.encode()) > MAX_FILE_BYTES or not text.strip():
        return False
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ast.parse(text)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return False
    return True


def stdlib_files() -> Iterator[tuple[str, bytes]]:
    root = Path(sysconfig.get_paths()["stdlib"])
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root).as_posix()
        if rel.startswith("site-packages/") or "/site-packages/" in rel:
            continue
        yield f"stdlib/{rel}", path.read_bytes()


def download_sdists(cache: Path, packages: dict[str, str] = PINNED) -> list[Path]:
    cache.mkdir(parents=True, exist_ok=True)
    archives = []
    for pkg, version in packages.items():
        found = find_sdist(cache, pkg, version)
        if found is None:
            subprocess.run(
                # the sdist itself, never a wheel; its build requirements (for pip's metadata step) may be
                # wheels
                [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", pkg, "--quiet",
                 "-d", str(cache), f"{pkg}=={version}"],
                check=True,
            )
            found = find_sdist(cache, pkg, version)
            assert found is not None, f"pip saved no sdist for {pkg}=={version} in {cache}"
        archives.append(found)
    return archives


def find_sdist(cache: Path, pkg: str, version: str) -> Path | None:
    norm = pkg.lower().replace("-", "_")
    for path in cache.glob("*"):
        stem = path.name.lower().replace("-", "_")
        if stem.startswith(f"{norm}_{version}.") and path.suffix in {".gz", ".zip"}:
            return path
    return None


def sdist_files(archive: Path) -> Iterator[tuple[str, bytes]]:
    if archive.suffix == ".zip":
        with zipfile.ZipFile(archive) as zf:
            for info in sorted(zf.infolist(), key=lambda i: i.filename):
                if info.filename.endswith(".py") and not info.is_dir():
                    yield info.filename, zf.read(info)
        return
    with tarfile.open(archive) as tf:
        for member in sorted(tf.getmembers(), key=lambda m: m.name):
            if member.isfile() and member.name.endswith(".py"):
                yield member.name, tf.extractfile(member).read()


def collect(sdist_cache: Path | None, language_cache: Path | None = None) -> list[SourceFile]:
    """All usable files, sorted by name; `sdist_cache=None` means standard library only; `language_cache`
    adds the other languages' packages (downloaded there)."""
    raw: list[tuple[str, bytes]] = list(stdlib_files())
    if sdist_cache is not None:
        for archive in download_sdists(sdist_cache):
            raw.extend(sdist_files(archive))  # names start with "<pkg>-<version>/"
    files = []
    for name, data in raw:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            continue
        text = text.replace("\r\n", "\n")
        if usable(text):
            files.append(SourceFile(name, split_of(name), text))
    if language_cache is not None:
        from engine.training import languages

        collected = languages.collect(language_cache)
        files += [SourceFile(name, split_of(name), text, lang) for name, lang, text in collected]
    return sorted(files, key=lambda f: f.name)


def file_list_hash(names: list[str]) -> str:
    return hashlib.sha256("\n".join(sorted(names)).encode()).hexdigest()


def manifest(files: list[SourceFile], with_sdists: bool) -> dict:
    out: dict = {
        "python": sys.version.split()[0],
        "packages": PINNED if with_sdists else {},
        "splits": {},
    }
    others = sorted({f.language for f in files} - {"python"})
    if others:
        from engine.training import languages

        out["language_packages"] = {p.label: p.language for p in languages.PACKAGES}
        out["languages"] = {lang: {"files": sum(f.language == lang for f in files),
                                   "bytes": sum(len(f.text.encode()) for f in files if f.language == lang)}
                            for lang in ["python", *others]}
    for split in ("train", "val", "test"):
        chosen = [f for f in files if f.split == split]
        out["splits"][split] = {
            "files": len(chosen),
            "bytes": sum(len(f.text.encode()) for f in chosen),
            "file_list_sha256": file_list_hash([f.name for f in chosen]),
            "content_sha256": hashlib.sha256(
                b"".join(hashlib.sha256(f.text.encode()).digest() for f in chosen)
            ).hexdigest(),
        }
    return out


def write(files: list[SourceFile], out_dir: Path, with_sdists: bool) -> None:
    """`corpus.jsonl.gz` (one file per line: name, split, text), `manifest.json` and `files-<split>.txt`."""
    out_dir.mkdir(parents=True, exist_ok=True)
    with gzip.open(out_dir / "corpus.jsonl.gz", "wt", encoding="utf-8", compresslevel=6) as fh:
        for f in files:
            row = {"name": f.name, "split": f.split, "text": f.text, "language": f.language}
            fh.write(json.dumps(row) + "\n")
    for split in ("train", "val", "test"):
        names = [f.name for f in files if f.split == split]
        (out_dir / f"files-{split}.txt").write_text("\n".join(names) + "\n")
    (out_dir / "manifest.json").write_text(json.dumps(manifest(files, with_sdists), indent=2) + "\n")


def read(corpus_dir: Path, split: str | None = None, language: str | None = None) -> list[SourceFile]:
    """The corpus's files, of one split and one language when given (a corpus without languages is Python)."""
    path = corpus_dir / "corpus.jsonl.gz"
    if not path.exists():
        raise FileNotFoundError(f"{path}: no corpus; run `python -m engine.training prepare` first")
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        rows = (json.loads(line) for line in fh)
        files = (SourceFile(r["name"], r["split"], r["text"], r.get("language", "python")) for r in rows)
        return [f for f in files if split in (None, f.split) and language in (None, f.language)]


def default_cache() -> Path:
    return Path(os.environ.get("UNMASK_CORPUS_CACHE", ".cache/corpus"))
