"""Evaluation sets outside the training corpus, pinned by version: DEVELOPMENT (to fit the calibrator and pick
thresholds) and HELD-OUT (for reported numbers only), never overlapping.

    python -m bench.trust_sets [--set heldout|development] [--check-corpus]

The training corpus (engine/training) is the Python standard library, the sdists of corpus.PINNED and the
Debian and npm packages of languages.PACKAGES. Nothing here is one of those, nor shipped inside one:
setuptools 84.2.1 (PINNED) vendors more_itertools 10.8.0 and packaging 26.3 in setuptools/_vendor, so
neither is used (more_itertools replaced by sqlparse in the held-out set). `--check-corpus`
measures it: the share of each project's distinctive lines (stripped, 30 characters or more) that also
occur in the corpus's sources of its language, and the files more than half of whose lines do (the corpus
is downloaded into the cache once, as `engine.training prepare` does).

Sources: Python sdists (`pip download --no-deps --no-binary :all:`; also looked for in the folders of
$UNMASK_SDISTS first), Debian bookworm `golang-github-*-dev` (Go, under /usr/share/gocode/src) and
`librust-*-dev` (Rust, under /usr/share/cargo/registry) packages (`apt-get download`, read with `dpkg-deb
--fsys-tarfile`, nothing installed), and npm packages that ship their TypeScript sources (`npm pack`; only
`src/` is kept, never the compiled `dist/`, whose JavaScript repeats the sources line for line). Each
archive's sha256 is pinned: a different download is refused.

`fetch(set_name)` unpacks each project once into `.cache/trust_sets/<label>/` (git-ignored) and returns
`Project`s: the folder is what an editor would open (the workspace); `files` are the ones cursors may be drawn
from (the language's sources, tests included, docs and examples not, and none that a file of the corpus
would refuse: over 400 KB, a line over 400 characters, Python that does not parse).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from engine.training import corpus
from engine.training.languages import members

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / ".cache" / "trust_sets"
# folders where the sdists may already lie (pip download's output), before downloading them again
SDIST_DIRS = tuple(Path(p) for p in os.environ.get("UNMASK_SDISTS", "").split(os.pathsep) if p)
EXTENSIONS = {"python": (".py",), "go": (".go",), "rust": (".rs",), "typescript": (".ts",)}
SKIP_PARTS = {"docs", "doc", "examples", "example", "benchmarks", "bench", "node_modules", "dist", "build"}
MAX_FILE_BYTES = 400_000
MAX_LINE_CHARS = 400


@dataclass(frozen=True)
class Source:
    """One pinned archive: kind "sdist", "deb" or "npm"; `under`: the folder inside it that is the project
    ("" for an sdist: its single top folder)."""

    kind: str
    name: str
    version: str
    language: str
    sha256: str
    under: str = ""
    skip: tuple[str, ...] = ()  # files (relative) no cursor is drawn from: derived from code in the corpus

    @property
    def label(self) -> str:
        return f"{self.name.replace('/', '-').lstrip('@')}-{self.version}"


@dataclass(frozen=True)
class Project:
    name: str  # the source's label, e.g. "attrs-25.4.0"
    language: str  # infill's language name
    root: Path  # the unpacked project: the workspace folder
    files: tuple[str, ...]  # paths relative to root that cursors may be drawn from

    def text(self, rel: str) -> str:
        return (self.root / rel).read_text(encoding="utf-8")


def _deb(name: str, version: str, language: str, sha: str, under: str, skip: tuple[str, ...] = ()) -> Source:
    return Source("deb", name, version, language, sha, under, skip)


SETS: dict[str, tuple[Source, ...]] = {
    "heldout": (
        Source("sdist", "attrs", "25.4.0", "python",
               "16d5969b87f0859ef33a48b35d55ac1be6e42ae49d5e853b597db70c35c57e11"),
        Source("sdist", "marshmallow", "4.1.0", "python",
               "daa9862f74e2f7864980d25c29b4ea72944cde48aa17537e3bd5797a4ae62d71"),
        Source("sdist", "toolz", "1.1.0", "python",
               "27a5c770d068c110d9ed9323f24f1543e83b2f300a687b7891c1a6d56b697b5b"),
        Source("sdist", "tqdm", "4.67.1", "python",
               "f8aef9c52c08c13a65f30ea34f4e5aac3fd1a34959879d7e59e63027286627f2"),
        Source("sdist", "sqlparse", "0.5.3", "python",
               "09f67787f56a0b16ecdbde1bfc7f5d9c3371ca683cfeaa8e6ff60b4807ec9272"),
        _deb("golang-github-sirupsen-logrus-dev", "1.9.0-1", "go",
             "51fb87b05452e96be38b97c03d5f997f6ce3a144421f911338d6c4ea2e8aa118",
             "usr/share/gocode/src/github.com/sirupsen/logrus/"),
        _deb("golang-github-spf13-cobra-dev", "1.6.1-1", "go",
             "4f5d20855133319beef3c5b49d3c21a0406f270bf94fb4b6f4d406b691283cb2",
             "usr/share/gocode/src/github.com/spf13/cobra/"),
        _deb("librust-itertools-dev", "0.10.3-1", "rust",
             "3e13fc328508275c2c84270133f41a300ffb58b9b77001b89373ba7f7ab57fde",
             "usr/share/cargo/registry/itertools-0.10.3/"),
        _deb("librust-serde-json-dev", "1.0.87-1", "rust",
             "2d053de630af6649c40a39d9ab6268d5469385289016a1205d0dec196e7b77d2",
             "usr/share/cargo/registry/serde_json-1.0.87/"),
        Source("npm", "mobx", "7.1.3", "typescript",
               "bbd07665d8851ee01df2fd4e12db106c60fd878839610dd8b899548969625616", "package/src/"),
        Source("npm", "@reduxjs/toolkit", "2.14.0", "typescript",
               "1e5a0946e81e9c365141d18c7067221b48ba66c6858d0a6e23296a31b095f82b", "package/src/"),
    ),
    "development": (
        Source("sdist", "idna", "3.10", "python",
               "12f65c9b470abda6dc35cf8e63cc574b1c52b11df2c86030af0ac09b01b13ea9"),
        Source("sdist", "pyparsing", "3.2.3", "python",
               "b9c13f1ab8b3b542f72e28f634bad4de758ab3ce4546e4301970ad6fa77c38be"),
        Source("sdist", "python-dateutil", "2.9.0.post0", "python",
               "37dd54208da7e1cd875388217d5e00ebd4179249f90fb72437e91a35459a0ad3"),
        Source("sdist", "jmespath", "1.0.1", "python",
               "90261b206d6defd58fdd5e85f478bf633a2901798906be2ad389150c5c60edbe"),
        _deb("golang-github-google-go-cmp-dev", "0.5.9-1", "go",
             "b68bd919daa7c1bdf02abfb68894e29e532f19b03b68c8615f50626c48f553b6",
             "usr/share/gocode/src/github.com/google/go-cmp/"),
        _deb("golang-github-burntsushi-toml-dev", "1.2.0-2", "go",
             "eb0bc9f96d02b33034311604f787ca7ab071de026c9abdffa6ae40a63362f7b8",
             "usr/share/gocode/src/github.com/BurntSushi/toml/",
             skip=("type_fields.go",)),  # adapted from Go's encoding/json (--check-corpus: 53% shared)
        _deb("librust-bytes-dev", "1.2.1-1", "rust",
             "86fbba5fe9d10f1eeb28944e52cfc8caa75f9a509c3603b70f8107f151744fcc",
             "usr/share/cargo/registry/bytes-1.2.1/"),
        _deb("librust-indexmap-dev", "1.9.2-1", "rust",
             "691b9efb8df4abdfdb238713c1f66416f31e2c2a33fd15687aae2c4dcb9b5308",
             "usr/share/cargo/registry/indexmap-1.9.2/"),
        Source("npm", "@tanstack/query-core", "5.108.0", "typescript",
               "295e04168c1afddc3c0c95a88751b4c3bb69ebe56aee81b523b41bb37daea815", "package/src/"),
        Source("npm", "immer", "11.2.10", "typescript",
               "f8184e2750790534d2faf01137b39133586ef2c14fa504ee82409568dbb0b32d", "package/src/"),
    ),
}


def _disjoint() -> None:
    """No package is in two sets (by name, whatever the version)."""
    seen: dict[str, str] = {}
    for set_name, sources in SETS.items():
        for s in sources:
            if seen.setdefault(s.name, set_name) != set_name:
                raise ValueError(f"{s.name} is in both {seen[s.name]} and {set_name}")


_disjoint()


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _find(source: Source, folder: Path) -> Path | None:
    if source.kind == "deb":
        patterns = [f"{source.name}_{source.version}_*.deb"]
    elif source.kind == "npm":
        patterns = [f"{source.label}.tgz"]
    else:
        stem = source.name.replace("-", "[-_]")
        patterns = [f"{stem}-{source.version}.tar.gz", f"{stem}-{source.version}.zip"]
    found = sorted(p for pattern in patterns for p in folder.glob(pattern))
    return found[0] if found else None


def download(source: Source, cache: Path = CACHE / "archives") -> Path:
    """The source's archive in the cache (copied from SDIST_DIRS or downloaded once), its sha256 checked."""
    cache.mkdir(parents=True, exist_ok=True)
    archive = _find(source, cache)
    for folder in SDIST_DIRS if archive is None and source.kind == "sdist" else ():
        if (there := _find(source, folder)) is not None:
            archive = Path(shutil.copy2(there, cache))
            break
    if archive is None:
        command = {
            "deb": ["apt-get", "download", f"{source.name}={source.version}"],
            "npm": ["npm", "pack", f"{source.name}@{source.version}", "--silent"],
            "sdist": [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", "--quiet",
                      "-d", ".", f"{source.name}=={source.version}"],
        }[source.kind]
        subprocess.run(command, cwd=cache, check=True, capture_output=True)
        archive = _find(source, cache)
        if archive is None:
            raise FileNotFoundError(f"{' '.join(command)} left no archive of {source.label} in {cache}")
    if (digest := _sha256(archive)) != source.sha256:
        raise ValueError(f"{archive}: sha256 {digest}, pinned {source.sha256}")
    return archive


def _relative(source: Source, path: str) -> str | None:
    """The path inside the project, None for a file outside it."""
    if source.kind == "sdist":
        top, _, rest = path.partition("/")
        return rest or None
    return path[len(source.under):] if path.startswith(source.under) else None


def unpack(source: Source, archive: Path, into: Path) -> None:
    """The project's files (only `under`) into `into`, written through a temporary folder."""
    partial = into.with_name(into.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    for path, data in members(archive):
        rel = _relative(source, path)
        if rel is None or any(part in ("", ".", "..") for part in PurePosixPath(rel).parts):
            continue
        target = partial / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    shutil.rmtree(into, ignore_errors=True)
    partial.rename(into)


def usable(text: str | None, language: str) -> bool:
    """Whether the corpus would take this file: not too large, no minified lines, Python that parses."""
    if not text or not text.strip() or len(text.encode()) > MAX_FILE_BYTES:
        return False
    if max(len(line) for line in text.split("\n")) > MAX_LINE_CHARS:
        return False
    return language != "python" or corpus.usable(text)


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8").replace("\r\n", "\n")
    except (OSError, UnicodeDecodeError):
        return None


def candidate_files(root: Path, language: str) -> tuple[str, ...]:
    """Files cursors may come from: the language's sources (tests kept; docs, examples, builds not)."""
    out = []
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if (
            path.is_file()
            and path.suffix in EXTENSIONS[language]
            and not rel.endswith(".d.ts")
            and not SKIP_PARTS & set(PurePosixPath(rel).parts[:-1])
            and PurePosixPath(rel).name not in {"setup.py", "noxfile.py"}
            and usable(_read(path), language)
        ):
            out.append(rel)
    return tuple(out)


def project(source: Source, cache: Path = CACHE) -> Project:
    root = cache / source.label
    if not (root / ".complete").exists():
        unpack(source, download(source, cache / "archives"), root)
        for path in root.rglob("*"):  # one line ending, as the corpus reads them
            if path.is_file() and path.suffix in EXTENSIONS[source.language]:
                text = _read(path)
                if text is not None:
                    path.write_text(text, encoding="utf-8")
        (root / ".complete").write_text(json.dumps({"archive_sha256": source.sha256}) + "\n")
    files = tuple(f for f in candidate_files(root, source.language) if f not in source.skip)
    return Project(source.label, source.language, root, files)


def fetch(set_name: str, languages: tuple[str, ...] | None = None) -> list[Project]:
    """The set's projects (of the given languages), unpacked into the cache on first use."""
    if set_name not in SETS:
        raise ValueError(f"unknown set {set_name!r}: one of {', '.join(SETS)}")
    return [project(s) for s in SETS[set_name] if languages is None or s.language in languages]


# ---- the corpus check --------------------------------------------------------------------------------------

def _distinctive(text: str) -> set[str]:
    return {s for line in text.split("\n") if len(s := line.strip()) >= 30}


def corpus_lines(language: str, cache: Path = CACHE / "corpus") -> set[str]:
    """Distinctive lines of the training corpus's sources of one language (downloaded once)."""
    sys.path.insert(0, str(ROOT))
    from engine.training import languages

    lines: set[str] = set()
    if language == "python":
        for _, data in corpus.stdlib_files():
            lines |= _distinctive(data.decode("utf-8", "replace"))
        for archive in corpus.download_sdists(cache / "sdists"):
            for _, data in corpus.sdist_files(archive):
                lines |= _distinctive(data.decode("utf-8", "replace"))
        return lines
    wanted = {"typescript": ("typescript", "javascript")}.get(language, (language,))
    for package in languages.PACKAGES:
        if {package.language, *package.extra} & set(wanted):
            for _, _, text in languages.package_files(package, languages.fetch(package, cache / "packages")):
                lines |= _distinctive(text)
    return lines


def check_corpus(set_names: list[str]) -> list[dict]:
    """Per project: its distinctive lines, and how many of them the corpus holds too."""
    rows, known = [], {}
    for name in set_names:
        for p in fetch(name):
            if p.language not in known:
                known[p.language] = corpus_lines(p.language)
            per_file = {f: _distinctive(p.text(f)) for f in p.files}
            mine = set().union(*per_file.values())
            shared = mine & known[p.language]
            worst = max(per_file, key=lambda f: len(per_file[f] & shared) / max(len(per_file[f]), 1))
            rows.append({"set": name, "project": p.name, "language": p.language, "files": len(p.files),
                         "distinctive_lines": len(mine), "in_corpus": len(shared),
                         "share": round(len(shared) / max(len(mine), 1), 4),
                         "files_over_half_in_corpus": sum(len(v & shared) * 2 > len(v) > 0
                                                          for v in per_file.values()),
                         "worst_file": worst,
                         "worst_file_share": round(len(per_file[worst] & shared)
                                                   / max(len(per_file[worst]), 1), 4),
                         "examples": sorted(shared)[:3]})
            print(json.dumps(rows[-1]), flush=True)
    return rows


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--set", choices=[*SETS, "all"], default="all")
    p.add_argument("--check-corpus", action="store_true",
                   help="also measure each project's line overlap with the training corpus (downloads it)")
    args = p.parse_args()
    names = list(SETS) if args.set == "all" else [args.set]
    if args.check_corpus:
        check_corpus(names)
        return 0
    for name in names:
        for proj in fetch(name):
            print(json.dumps({"set": name, "project": proj.name, "language": proj.language,
                              "files": len(proj.files), "root": str(proj.root)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
