"""Hugging Face ids: a cache laid out as huggingface_hub lays it out, and a fake Hub on 127.0.0.1; no test
reaches the network."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
from huggingface_hub import constants

import engine
from engine import hub

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def write_hub_cache(cache: Path, repo: str, source: Path, commit: str = COMMIT) -> Path:
    """source's files as huggingface_hub stores a download: blobs named by hash, snapshots/<commit>/ of
    relative links to them, refs/main naming the commit. Returns the snapshot folder."""
    root = cache / ("models--" + repo.replace("/", "--"))
    snapshot = root / "snapshots" / commit
    snapshot.mkdir(parents=True)
    (root / "blobs").mkdir(exist_ok=True)
    for file in sorted(source.iterdir()):
        data = file.read_bytes()
        blob = root / "blobs" / hashlib.sha256(data).hexdigest()
        blob.write_bytes(data)
        (snapshot / file.name).symlink_to(os.path.relpath(blob, snapshot))
    (root / "refs").mkdir(exist_ok=True)
    (root / "refs" / "main").write_text(commit)
    return snapshot


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """An empty Hub cache in tmp_path, offline: HF_HUB_OFFLINE=1 and an endpoint nobody listens on."""
    folder = tmp_path / "hf-cache"
    folder.mkdir()
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(folder))
    monkeypatch.setenv("HF_HUB_CACHE", str(folder))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    point_at(monkeypatch, f"http://127.0.0.1:{closed_port()}")
    return folder


def point_at(monkeypatch, endpoint: str) -> None:
    # constants read HF_ENDPOINT at import; the URL template is built from it then
    monkeypatch.setattr(constants, "ENDPOINT", endpoint)
    template = endpoint + "/{repo_id}/resolve/{revision}/{filename}"
    monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", template)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize(
    "spec, parsed",
    [
        ("Dream-org/Dream-Coder-v0-Instruct-7B", ("Dream-org/Dream-Coder-v0-Instruct-7B", None)),
        ("org/name@v1.0", ("org/name", "v1.0")),
        (f"org/name@{COMMIT}", ("org/name", COMMIT)),
        ("org/name@refs/pr/1", ("org/name", "refs/pr/1")),
        ("/abs/folder", None),
        ("a/b/c", None),
        ("name", None),
        ("org--x/name", None),
        ("org/na..me", None),
    ],
)
def test_parse_id(spec, parsed):
    assert hub.parse_id(spec) == parsed


def test_an_existing_folder_wins_over_an_id(tmp_path, monkeypatch, cache, tiny_checkpoint):
    write_hub_cache(cache, "org/tiny", tiny_checkpoint)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "org" / "tiny").mkdir(parents=True)
    assert hub.parse_id("org/tiny") is None
    assert hub.resolve("org/tiny") == Path("org/tiny")


def test_repo_id_of_a_snapshot_folder(cache, tiny_checkpoint):
    snapshot = write_hub_cache(cache, "Org-1/tiny.v2", tiny_checkpoint)
    assert hub.repo_id_of(snapshot) == "Org-1/tiny.v2"
    assert hub.repo_id_of(tiny_checkpoint) is None


@pytest.mark.parametrize("suffix", ["", "@main", f"@{COMMIT}"])
def test_offline_from_the_cache(cache, tiny_checkpoint, suffix):
    snapshot = write_hub_cache(cache, "org/tiny", tiny_checkpoint)
    assert hub.resolve("org/tiny" + suffix) == snapshot
    model = engine.load_model("org/tiny" + suffix)
    assert model.path == snapshot and model.family.name == "dream"


@pytest.mark.parametrize("spec", ["org/missing", "org/tiny@v9"])
def test_offline_and_not_cached_is_one_line(cache, tiny_checkpoint, spec):
    write_hub_cache(cache, "org/tiny", tiny_checkpoint)
    with pytest.raises(engine.HubError) as e:
        engine.load_model(spec)
    message = str(e.value)
    assert "\n" not in message
    assert f"model {spec!r} is not in the Hugging Face cache" in message and str(cache) in message
    assert "HF_HUB_OFFLINE=1: run once online or pass a folder" in message


def test_the_cache_answers_when_the_hub_cannot_be_reached(cache, tiny_checkpoint, monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    snapshot = write_hub_cache(cache, "org/tiny", tiny_checkpoint)
    assert hub.resolve("org/tiny") == snapshot
    with pytest.raises(engine.HubError, match="not in the Hugging Face cache .* cannot be reached"):
        hub.resolve("org/other")


# ---- downloads from a fake Hub


class FakeHub(ThreadingHTTPServer):
    """The endpoints snapshot_download calls, for one repository: revision info, the file tree, and each
    file by commit (HEAD for metadata, GET for the bytes). Other repositories are not found."""

    def __init__(self, repo: str, files: dict[str, bytes]):
        super().__init__(("127.0.0.1", 0), FakeHubHandler)
        self.repo, self.files, self.fetched = repo, files, []

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class FakeHubHandler(BaseHTTPRequestHandler):
    def do_HEAD(self):
        self.answer(body=False)

    def do_GET(self):
        self.answer(body=True)

    def answer(self, body: bool) -> None:
        s, path = self.server, unquote(urlsplit(self.path).path)
        resolve = f"/{s.repo}/resolve/{COMMIT}/"
        if path == f"/api/models/{s.repo}/revision/main":
            data = json.dumps({"id": s.repo, "sha": COMMIT, "siblings": [{"rfilename": f} for f in s.files]})
            return self.send(200, data.encode(), {"Content-Type": "application/json"}, body)
        if path == f"/api/models/{s.repo}/tree/{COMMIT}":
            tree = [{"type": "file", "path": f, "size": len(d), "oid": hashlib.sha1(d).hexdigest()}
                    for f, d in s.files.items()]
            return self.send(200, json.dumps(tree).encode(), {"Content-Type": "application/json"}, body)
        if path.startswith(resolve) and path[len(resolve):] in s.files:
            name = path[len(resolve):]
            data = s.files[name]
            if body:
                s.fetched.append(name)
            etag = f'"{hashlib.sha256(data).hexdigest()}"'
            return self.send(200, data, {"X-Repo-Commit": COMMIT, "ETag": etag}, body)
        self.send(404, b"{}", {"X-Error-Code": "RepoNotFound"}, body)

    def send(self, status: int, data: bytes, headers: dict, body: bool) -> None:
        self.send_response(status)
        for key, value in {**headers, "Content-Length": str(len(data))}.items():
            self.send_header(key, value)
        self.end_headers()
        if body:
            self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture
def fake_hub(cache, tiny_checkpoint, monkeypatch):
    files = {p.name: p.read_bytes() for p in tiny_checkpoint.iterdir()}
    # never wanted: pickle weights, code, copies in subfolders
    files |= {"pytorch_model.bin": b"pickle", "modeling_dream.py": b"import os"}
    files["onnx/model.safetensors"] = b"0"
    server = FakeHub("org/tiny", files)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    point_at(monkeypatch, server.endpoint)
    yield server
    server.shutdown()
    server.server_close()


def test_download_fetches_only_what_the_engine_reads(fake_hub, cache, tiny_checkpoint):
    reports = []
    folder = hub.resolve("org/tiny", lambda done, total: reports.append((done, total)))
    wanted = sorted(p.name for p in tiny_checkpoint.iterdir())
    assert sorted(p.name for p in folder.iterdir()) == wanted and sorted(fake_hub.fetched) == wanted
    assert folder == cache / "models--org--tiny" / "snapshots" / COMMIT
    assert reports and all(0 <= done <= total for done, total in reports)
    size = sum(p.stat().st_size for p in tiny_checkpoint.iterdir())
    assert reports[-1] == (size, size)
    assert engine.load_model("org/tiny").path == folder
    fake_hub.fetched.clear()
    assert hub.resolve("org/tiny") == folder and fake_hub.fetched == []  # cached: nothing fetched again


def test_an_unknown_id_is_one_line(fake_hub):
    with pytest.raises(engine.HubError) as e:
        hub.resolve("org/unknown")
    assert str(e.value) == (
        "model 'org/unknown' is neither a folder nor a model on the Hugging Face Hub "
        "(a private one needs `hf auth login`)"
    )


def test_progress_prefers_the_most_advanced_byte_count():
    reports = []
    bar = hub.reporting_bars(lambda done, total: reports.append((done, total)))
    files = bar(total=2, desc="Fetching 2 files")  # the only bar older huggingface_hub versions open
    files.update(1)
    assert reports == [(1, 2)]
    received, written = bar(total=100, unit="B"), bar(total=100, unit="B")
    written.update(40)
    received.update(10)
    assert reports[1:] == [(40, 100), (40, 100)]
