"""Source code of the server's other languages for the corpus, from pinned Debian and npm packages.

The server completes nine languages; the corpus's Python part is the standard library plus pinned sdists.
These packages add Go, Rust, Java, C, C++, TypeScript and JavaScript, each pinned by version, fetched with
`apt-get download` / `npm pack` (no root, nothing installed) into a cache, and read from the archives. Each
language is capped at LANGUAGE_BYTES so that Python stays well over half of the mixture. File names in the
corpus are `<package>-<version>/<path>`, so the hash split (corpus.split_of) is as stable as Python's.
"""

from __future__ import annotations

import hashlib
import io
import subprocess
import tarfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

LANGUAGE_BYTES = 10_000_000  # per language: 7 x 10 MB beside Python's 113 MB keeps Python at ~62%
MAX_FILE_BYTES = 400_000
MAX_LINE_CHARS = 400  # longer lines mean minified or generated code
EXTENSIONS = {
    "go": ("go",),
    "rust": ("rs",),
    "java": ("java",),
    "c": ("c", "h"),
    "cpp": ("cc", "cpp", "cxx", "hpp", "hh", "h", "tcc", ""),  # libstdc++'s headers have no extension
    "typescript": ("ts",),
    "javascript": ("js", "mjs", "cjs"),
}


@dataclass(frozen=True)
class Package:
    kind: str  # "deb" (Debian bookworm) or "npm"
    name: str
    version: str
    language: str  # what its files are, by EXTENSIONS (a package may hold two, e.g. typescript's .ts and .js)
    under: str  # folder inside the package whose files count
    inner: str | None = None  # an archive inside the package that holds the sources (src.zip, a .tar.xz)
    extra: tuple[str, ...] = ()  # other languages taken from the same files

    @property
    def label(self) -> str:
        return f"{self.name.replace('/', '-').lstrip('@')}-{self.version}"


PACKAGES = (
    Package("deb", "golang-1.19-src", "1.19.8-2", "go", "usr/share/go-1.19/src/"),
    Package("deb", "rust-src", "1.63.0+dfsg1-2", "rust", "usr/src/rustc-1.63.0/library/"),
    Package("deb", "openjdk-17-source", "17.0.19+10-1~deb12u2", "java", "java.base/",
            inner="usr/lib/jvm/openjdk-17/lib/src.zip"),
    Package("deb", "glibc-source", "2.36-9+deb12u14", "c", "glibc-2.36/",
            inner="usr/src/glibc/glibc-2.36.tar.xz"),
    Package("deb", "libstdc++-12-dev", "12.2.0-14+deb12u1", "cpp", "usr/include/c++/12/"),
    Package("npm", "typescript", "5.9.3", "typescript", "package/lib/", extra=("javascript",)),
    Package("npm", "@types/node", "22.20.7", "typescript", "package/"),
    Package("npm", "rxjs", "7.8.2", "typescript", "package/src/"),  # ships its TypeScript sources
    Package("npm", "webpack", "5.113.0", "javascript", "package/lib/"),
    Package("npm", "lodash", "4.18.1", "javascript", "package/"),
    Package("npm", "express", "5.3.0", "javascript", "package/"),
)


def language_of(path: str, languages: tuple[str, ...]) -> str | None:
    ext = PurePosixPath(path).suffix.lstrip(".")
    if path.endswith(".d.ts"):
        ext = "ts"
    for language in languages:
        if ext in EXTENSIONS[language] and (ext or "/include/c++/" in f"/{path}"):
            return language
    return None


def usable(data: bytes) -> str | None:
    """The text of a source file worth training on, else None."""
    if not data.strip() or len(data) > MAX_FILE_BYTES or b"\0" in data:
        return None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if max((len(line) for line in text.splitlines()), default=0) > MAX_LINE_CHARS:
        return None
    return text.replace("\r\n", "\n")


def fetch(package: Package, cache: Path) -> Path:
    """The package's archive in cache, downloaded once: a .deb by apt-get download, a .tgz by npm pack."""
    cache.mkdir(parents=True, exist_ok=True)
    if package.kind == "deb":
        pattern = f"{package.name}_{package.version}_*.deb"  # apt-get download's file name
    else:
        pattern = f"{package.label}.tgz"  # npm pack's: "@types/node" -> types-node-<version>.tgz
    found = sorted(cache.glob(pattern))
    if found:
        return found[0]
    if package.kind == "deb":
        cmd = ["apt-get", "download", f"{package.name}={package.version}"]
    else:
        cmd = ["npm", "pack", f"{package.name}@{package.version}", "--silent"]
    subprocess.run(cmd, cwd=cache, check=True, capture_output=True)
    found = sorted(cache.glob(pattern))
    if not found:
        raise FileNotFoundError(f"{' '.join(cmd)} left no {pattern} in {cache}")
    return found[0]


def members(archive: Path) -> Iterator[tuple[str, bytes]]:
    """(path, bytes) of the regular files in a .deb (its data tarball) or a .tgz."""
    if archive.suffix == ".deb":
        unpack = ["dpkg-deb", "--fsys-tarfile", str(archive)]
        data = subprocess.run(unpack, check=True, capture_output=True).stdout
        tar = tarfile.open(fileobj=io.BytesIO(data))
    else:
        tar = tarfile.open(archive)
    with tar:
        for m in tar:
            if m.isfile():
                yield m.name.removeprefix("./"), tar.extractfile(m).read()


def inner_members(name: str, data: bytes) -> Iterator[tuple[str, bytes]]:
    if name.endswith(".zip"):
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            for info in zf.infolist():
                if not info.is_dir():
                    yield info.filename, zf.read(info)
        return
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        for m in tar:
            if m.isfile():
                yield m.name, tar.extractfile(m).read()


def package_files(package: Package, archive: Path) -> Iterator[tuple[str, str, str]]:
    """(corpus name, language, text) of the package's usable source files, in name order."""
    languages = (package.language, *package.extra)
    found: list[tuple[str, str, str]] = []
    for path, data in members(archive):
        if package.inner is not None:
            if path != package.inner:
                continue
            source = inner_members(path, data)
        else:
            source = iter([(path, data)])
        for inner_path, inner_data in source:
            if not inner_path.startswith(package.under):
                continue
            rel = inner_path[len(package.under) :]
            language = language_of(inner_path, languages)
            text = usable(inner_data) if language else None
            if text is not None:
                found.append((f"{package.label}/{rel}", language, text))
    yield from sorted(found)


def capped(files: list[tuple[str, str, str]], budget: int = LANGUAGE_BYTES) -> list[tuple[str, str, str]]:
    """Per language, files in an order fixed by a hash of their names (not by folder, so no one corner of a
    library fills the budget) until LANGUAGE_BYTES."""
    spent: dict[str, int] = {}
    out = []
    for name, language, text in sorted(files, key=lambda f: hashlib.sha256(f[0].encode()).digest()):
        size = len(text.encode())
        if spent.get(language, 0) + size > budget:
            continue
        spent[language] = spent.get(language, 0) + size
        out.append((name, language, text))
    return sorted(out)


def collect(cache: Path, packages: tuple[Package, ...] = PACKAGES) -> list[tuple[str, str, str]]:
    files = []
    for package in packages:
        files.extend(package_files(package, fetch(package, cache)))
    return capped(files)
