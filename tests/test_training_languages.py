"""The other languages' corpus packages: read from archives the tests build (a real .deb made with dpkg-deb,
an npm-style .tgz), filtered by extension and quality, capped per language."""

import io
import shutil
import subprocess
import tarfile
import zipfile

import pytest

from engine.training import corpus, languages
from engine.training.languages import Package

GO = "package main\n\nfunc main() {\n\tprintln(\"hi\")\n}\n"


def write_deb(root, files: dict[str, bytes], name="demo-src", version="1.0-1"):
    tree = root / "tree"
    (tree / "DEBIAN").mkdir(parents=True)
    (tree / "DEBIAN" / "control").write_text(
        f"Package: {name}\nVersion: {version}\nArchitecture: all\nMaintainer: t <t@t>\nDescription: t\n")
    for path, data in files.items():
        (tree / path).parent.mkdir(parents=True, exist_ok=True)
        (tree / path).write_bytes(data)
    out = root / f"{name}_{version}_all.deb"
    subprocess.run(["dpkg-deb", "--build", "--root-owner-group", str(tree), str(out)], check=True,
                   capture_output=True)
    return out


@pytest.mark.skipif(shutil.which("dpkg-deb") is None, reason="dpkg-deb is Debian's")
def test_a_deb_yields_its_source_files_of_the_language_under_the_folder(tmp_path):
    deb = write_deb(tmp_path, {
        "usr/share/go/src/main.go": GO.encode(),
        "usr/share/go/src/README": b"not code\n",
        "usr/share/go/src/min.go": b"x" * 1000 + b"\n",  # one 1000-character line: generated
        "usr/share/go/test/skipped.go": GO.encode(),
    })
    package = Package("deb", "demo-src", "1.0-1", "go", "usr/share/go/src/")
    assert languages.fetch(package, tmp_path) == deb  # already in the cache: nothing is downloaded
    assert list(languages.package_files(package, deb)) == [("demo-src-1.0-1/main.go", "go", GO)]


@pytest.mark.skipif(shutil.which("dpkg-deb") is None, reason="dpkg-deb is Debian's")
def test_sources_inside_an_inner_archive_are_read(tmp_path):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("java.base/java/lang/Demo.java", "class Demo {}\n")
        zf.writestr("java.desktop/Other.java", "class Other {}\n")
    deb = write_deb(tmp_path, {"usr/lib/src.zip": buf.getvalue()}, name="jdk-src")
    package = Package("deb", "jdk-src", "1.0-1", "java", "java.base/", inner="usr/lib/src.zip")
    assert [n for n, _, _ in languages.package_files(package, deb)] == ["jdk-src-1.0-1/java/lang/Demo.java"]


def test_an_npm_tarball_gives_typescript_and_javascript(tmp_path):
    tgz = tmp_path / "types-demo-2.0.0.tgz"
    with tarfile.open(tgz, "w:gz") as tar:
        for name, text in {"package/index.d.ts": "export declare const x: number;\n",
                           "package/lib/a.js": "module.exports = 1;\n",
                           "package/package.json": "{}\n"}.items():
            info = tarfile.TarInfo(name)
            info.size = len(text)
            tar.addfile(info, io.BytesIO(text.encode()))
    package = Package("npm", "@types/demo", "2.0.0", "typescript", "package/", extra=("javascript",))
    assert package.label == "types-demo-2.0.0" and languages.fetch(package, tmp_path) == tgz
    assert [(n, lang) for n, lang, _ in languages.package_files(package, tgz)] == [
        ("types-demo-2.0.0/index.d.ts", "typescript"), ("types-demo-2.0.0/lib/a.js", "javascript")]


def test_each_language_is_capped_and_cpp_headers_need_no_extension():
    files = [(f"p/f{i}.go", "go", "x" * 40) for i in range(10)] + [("p/f.c", "c", "y" * 40)]
    kept = languages.capped(files, budget=100)
    assert sum(lang == "go" for _, lang, _ in kept) == 2 and ("p/f.c", "c", "y" * 40) in kept
    assert languages.language_of("usr/include/c++/12/vector", ("cpp",)) == "cpp"
    assert languages.language_of("usr/share/doc/README", ("cpp",)) is None


def test_held_out_streams_stay_python_and_others_get_their_own(tmp_path):
    from engine.training import prepare
    from tests.test_training import SOURCE

    splits = ["train", "val", "test"]
    files = [corpus.SourceFile(f"m{i}.py", split, SOURCE) for i, split in enumerate(splits * 2)]
    files += [corpus.SourceFile(f"g{i}.go", split, GO, "go") for i, split in enumerate(splits)]
    corpus.write(files, tmp_path, with_sdists=False)
    stats = prepare.tokenize(tmp_path, 300, corpus.read(tmp_path))
    assert stats["train"]["files"] == 3 and stats["val"]["files"] == 2 and stats["val-go"]["files"] == 1
    assert (tmp_path / "tokens-test-go.bin").exists()
    assert {f.language for f in corpus.read(tmp_path, "val", "python")} == {"python"}
