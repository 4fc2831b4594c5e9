"""lsp_server/adaptation: which files an adaptation reads, the checkpoint it writes into the cache, when a
cached one is reused, the engine thread's swap to adapted weights, and the server's process (runs, is
reused on the next start, and when killed leaves the base model serving)."""

import asyncio
import json
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest
import torch
from lsprotocol import types

from lsp_server.adaptation import cache, job
from lsp_server.completion.worker import Worker
from lsp_server.documents import workspace
from lsp_server.documents.documents import DocumentText
from lsp_server.models import ModelOptions
from lsp_server.options import Options
from lsp_server.outcomes import Loaded, LoadFailed
from tests.test_lsp_server import INVOKED, serving, status, wait_for

SHAPES = (
    "class Rect:\n    def __init__(self, width, height):\n        self.width = width\n"
    "        self.height = height\n\n    def area(self):\n        return self.width * self.height\n"
)
UTIL = "def clamp(x, lo, hi):\n    return max(lo, min(x, hi))\n"


def project(root: Path) -> Path:
    (root / "pkg").mkdir(parents=True)
    (root / "pkg" / "shapes.py").write_text(SHAPES)
    (root / "util.py").write_text(UTIL)
    return root


def request(root: Path, model: Path, out: Path, minutes: float = 0.01) -> job.Request:
    extensions = sorted(Options().source_extensions())
    return job.Request([str(root)], extensions, 2**20, str(model), str(out), minutes)


# ---- the files read ----

def test_ignored_huge_and_binary_files_are_not_read(tmp_path):
    root = project(tmp_path / "proj")
    (root / ".venv" / "lib").mkdir(parents=True)
    (root / ".venv" / "lib" / "dep.py").write_text("x = 1\n")
    (root / "generated.py").write_text("y = 2\n")
    (root / ".gitignore").write_text("generated.py\n.venv/\n")
    (root / "huge.py").write_text("z = 3\n" * (workspace.MAX_FILE_BYTES // 6 + 1))
    (root / "blob.py").write_bytes(b"data = 1\n\x00\x01\x02binary\n")
    (root / "notes.txt").write_text("prose\n")
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    texts = job.project_texts([root], Options().source_extensions(), 2**20)
    assert texts == {"pkg/shapes.py": SHAPES, "util.py": UTIL}


def test_several_folders_name_files_by_their_folder(tmp_path):
    a, b = project(tmp_path / "a"), tmp_path / "b"
    b.mkdir()
    (b / "main.go").write_text("package main\n")
    texts = job.project_texts([a, b], {"py", "go"}, 2**20)
    assert set(texts) == {"a/pkg/shapes.py", "a/util.py", "b/main.go"}


# ---- the cache ----

def test_changed_share_counts_added_edited_and_removed_bytes():
    old = cache.fingerprint({"a.py": "x" * 60, "b.py": "y" * 40})
    assert cache.changed_share(old, old) == 0
    assert cache.changed_share(old, cache.fingerprint({"a.py": "x" * 60, "b.py": "z" * 40})) == 0.4
    assert cache.changed_share(old, cache.fingerprint({"a.py": "x" * 60})) == 0.4
    grown = cache.fingerprint({"a.py": "x" * 60, "b.py": "y" * 40, "c.py": "w" * 100})
    assert cache.changed_share(old, grown) == 0.5


def test_cache_folder_is_keyed_by_the_workspace(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir(), b.mkdir()
    assert cache.folder_for([a, b]) == cache.folder_for([b, a])
    assert cache.folder_for([a]) != cache.folder_for([b])
    assert cache.folder_for([a]).parent == tmp_path / "cache" / "unmask" / "adapted"


# ---- the job ----

def test_the_job_writes_a_checkpoint_with_its_card_and_replaces_the_old_one(tiny_checkpoint, tmp_path):
    root, out = project(tmp_path / "proj"), tmp_path / "cache" / "proj-1"
    report = job.adapt_workspace(request(root, tiny_checkpoint, out))
    assert report.files == 2 and report.steps >= 1
    card = json.loads((out / cache.CARD).read_text())
    assert card["base"] == cache.base_identity(tiny_checkpoint)
    assert set(card["fingerprint"]) == {"pkg/shapes.py", "util.py"}
    assert {"config.json", "model.safetensors", "tokenizer.json", "MODEL_CARD.md"} <= {
        p.name for p in out.iterdir()}
    same = {"pkg/shapes.py": SHAPES, "util.py": UTIL}
    found = cache.cached(out, cache.base_identity(tiny_checkpoint), same)
    assert found is not None and found.changed == 0 and found.fresh(0.2)
    assert cache.cached(out, "another base", {"util.py": UTIL}) is None
    edited = cache.cached(out, card["base"], {"pkg/shapes.py": SHAPES, "util.py": UTIL + "# more\n" * 40})
    assert edited is not None and not edited.fresh(0.2)

    first = (out / "model.safetensors").read_bytes()
    (root / "util.py").write_text(UTIL + "\n\ndef double(x):\n    return 2 * x\n")
    job.adapt_workspace(request(root, tiny_checkpoint, out))
    assert (out / "model.safetensors").read_bytes() != first
    assert [p.name for p in out.parent.iterdir()] == ["proj-1"]  # no partial or old folders left


def test_a_failed_job_leaves_the_previous_checkpoint(tiny_checkpoint, tmp_path):
    root, out = project(tmp_path / "proj"), tmp_path / "cache" / "proj-1"
    job.adapt_workspace(request(root, tiny_checkpoint, out))
    before = (out / "model.safetensors").read_bytes()
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match="no source files"):
        job.adapt_workspace(request(empty, tiny_checkpoint, out))
    assert (out / "model.safetensors").read_bytes() == before


def test_the_job_process_speaks_json_lines(tiny_checkpoint, tmp_path):
    root, out = project(tmp_path / "proj"), tmp_path / "out"
    import msgspec

    run = subprocess.run(
        [os.sys.executable, "-m", "lsp_server.adaptation.job"], input=msgspec.json.encode(
            request(root, tiny_checkpoint, out)), capture_output=True, timeout=120, check=False)
    messages = [json.loads(line) for line in run.stdout.decode().splitlines()]
    assert run.returncode == 0, run.stderr.decode()[-2000:]
    assert "progress" in messages[0] and messages[-1]["folder"] == str(out)
    bad = subprocess.run([os.sys.executable, "-m", "lsp_server.adaptation.job"], input=b'{"roots": 1}',
                         capture_output=True, timeout=60, check=False)
    assert bad.returncode == 1 and "error" in json.loads(bad.stdout.decode().splitlines()[-1])


# ---- the swap ----

def perturbed_copy(checkpoint: Path, out: Path) -> Path:
    """A checkpoint folder like `checkpoint` whose weights differ (what an adaptation writes)."""
    import shutil

    from safetensors.torch import load_file, save_file

    shutil.copytree(checkpoint, out)
    tensors = load_file(out / "model.safetensors")
    save_file({k: v + 0.01 for k, v in tensors.items()}, out / "model.safetensors", metadata={"format": "pt"})
    return out


def test_the_swap_happens_between_engine_jobs_and_never_mid_request(tiny_checkpoint, tmp_path, monkeypatch):
    from lsp_server import models

    worker = Worker()
    base = ModelOptions(path=str(tiny_checkpoint), dtype="float32")
    assert isinstance(worker.load(base).result(timeout=60), Loaded)
    old = worker.model
    adapted = perturbed_copy(tiny_checkpoint, tmp_path / "adapted")
    gate, loading = threading.Event(), threading.Event()
    real_load = models.load

    def slow_load(opts):
        loading.set()
        gate.wait(30)
        return real_load(opts)

    monkeypatch.setattr(models, "load", slow_load)
    swapped = worker.adopt(adapted, worker.base)
    assert loading.wait(30)
    # while the adapted weights load, the engine thread keeps serving the base model
    content = DocumentText("file:///a.py", "python", "def add(a, b):\n    return \n")
    worker.open(content)
    worker.complete(content, 26, Options(), True, threading.Event()).result(timeout=60)
    assert worker.model is old

    seen: list = []

    def long_job(model, parse):  # a request on the engine thread when the loaded weights arrive
        seen.append(model)
        time.sleep(0.5)
        seen.append(worker.model)

    running = worker.run(long_job, content)
    time.sleep(0.1)
    gate.set()
    outcome = swapped.result(timeout=60)
    running.result(timeout=60)
    assert isinstance(outcome, Loaded)
    assert seen == [old, old]  # the job that was running finished on one whole model
    assert worker.model is not old and worker.model.info.folder == str(adapted)
    after = [p.detach().clone() for p in worker.model.model.parameters()]
    assert not torch.equal(after[0], next(old.model.parameters()))
    worker.shutdown()


def test_an_adaptation_of_a_replaced_base_model_is_not_adopted(tiny_checkpoint, tmp_path):
    worker = Worker()
    assert isinstance(worker.load(ModelOptions(path=str(tiny_checkpoint))).result(timeout=60), Loaded)
    refused = worker.adopt(tmp_path, "/some/other/base").result(timeout=10)
    assert isinstance(refused, LoadFailed) and "changed" in refused.message
    worker.shutdown()


# ---- the server ----

OPTIONS = {"completion": {"maxTokens": 8, "debounceMs": 0}, "model": {"dtype": "float32"}}
PY = "import os\n\ndef add(a, b):\n    return \n"


async def complete_here(client, root: Path) -> object:
    uri = (root / "new.py").as_uri()
    item = types.TextDocumentItem(uri, "python", 1, PY)
    client.text_document_did_open(types.DidOpenTextDocumentParams(item))
    return await client.text_document_inline_completion_async(
        types.InlineCompletionParams(INVOKED, types.TextDocumentIdentifier(uri), types.Position(3, 11)))


@pytest.mark.asyncio
async def test_the_server_adapts_serves_the_result_and_reuses_it_next_start(tiny_checkpoint, tmp_path):
    root, env = project(tmp_path / "proj"), {"XDG_CACHE_HOME": str(tmp_path / "cache")}
    options = {**OPTIONS, "adapt": {"enabled": True, "minutes": 0.02}}
    async with serving(tiny_checkpoint, "neovim", options, root.as_uri(), env) as client:
        ready = await wait_for(client, lambda s: s["adaptation"]["state"] in ("ready", "failed"), 120)
        a = ready["adaptation"]
        assert a["state"] == "ready" and not a["reused"], a
        assert a["tokens"] > 0 and a["loss_before"] > 0 and a["loss_after"] > 0 and a["pid"] is None
        assert Path(a["folder"]).parent == tmp_path / "cache" / "unmask" / "adapted"
        assert (await complete_here(client, root)) is not None  # the adapted model answers
        reports = [rs for rs in client.progress_reports.values()
                   if rs and "adapting" in (getattr(rs[0], "message", None) or "")]
        assert reports and reports[0][0].kind == "begin" and reports[0][-1].kind == "end"
    async with serving(tiny_checkpoint, "neovim", options, root.as_uri(), env) as client:
        again = (await wait_for(client, lambda s: s["adaptation"]["state"] in ("ready", "failed"), 60))
        assert again["adaptation"]["state"] == "ready" and again["adaptation"]["reused"], again["adaptation"]
        assert again["adaptation"]["changed"] == 0 and again["adaptation"]["folder"] == a["folder"]
        assert again["adaptation"]["tokens"] == a["tokens"]  # the card's facts, not a new run


@pytest.mark.asyncio
async def test_files_that_changed_enough_are_adapted_to_again_while_serving(tiny_checkpoint, tmp_path):
    root, env = project(tmp_path / "proj"), {"XDG_CACHE_HOME": str(tmp_path / "cache")}
    options = {**OPTIONS, "adapt": {"enabled": True, "minutes": 0.02, "checkMinutes": 0.01, "refresh": 0.5}}
    async with serving(tiny_checkpoint, "neovim", options, root.as_uri(), env) as client:
        first = (await wait_for(client, lambda s: s["adaptation"]["state"] == "ready", 120))["adaptation"]
        (root / "util.py").write_text(UTIL + "# a small edit\n")  # under the refresh share: kept
        await asyncio.sleep(2)
        kept = (await status(client))["adaptation"]
        assert kept["state"] == "ready" and kept["tokens"] == first["tokens"] and 0 < kept["changed"] < 0.5
        (root / "big.py").write_text("def scale(x, k):\n    return x * k\n" * 40)  # the project doubles
        again = await wait_for(client, lambda s: s["adaptation"]["tokens"] not in (None, first["tokens"])
                               and s["adaptation"]["state"] == "ready", 120)
        assert again["adaptation"]["tokens"] > first["tokens"] and not again["adaptation"]["reused"]


@pytest.mark.asyncio
async def test_a_killed_adaptation_leaves_the_base_model_serving(tiny_checkpoint, tmp_path):
    root, env = project(tmp_path / "proj"), {"XDG_CACHE_HOME": str(tmp_path / "cache")}
    options = {**OPTIONS, "adapt": {"enabled": True, "minutes": 30}}
    async with serving(tiny_checkpoint, "neovim", options, root.as_uri(), env) as client:
        running = await wait_for(client, lambda s: s["adaptation"]["pid"] is not None, 60)
        os.kill(running["adaptation"]["pid"], signal.SIGKILL)
        failed = await wait_for(client, lambda s: s["adaptation"]["state"] == "failed", 30)
        assert "signal 9" in failed["adaptation"]["error"] and failed["adaptation"]["folder"] is None
        assert failed["state"] == "ready"
        result = await complete_here(client, root)
        assert result is not None and (await status(client))["requests"].get("model", 0) >= 1
    kept = (tmp_path / "cache" / "unmask" / "adapted").glob("*")
    assert not [p for p in kept if not p.name.startswith(".")]  # nothing half-written where it is read


@pytest.mark.asyncio
async def test_adaptation_is_off_by_default_and_stops_with_the_server(tiny_checkpoint, tmp_path):
    root = project(tmp_path / "proj")
    async with serving(tiny_checkpoint, "neovim", OPTIONS, root.as_uri()) as client:
        assert (await status(client))["adaptation"]["state"] == "off"
    env = {"XDG_CACHE_HOME": str(tmp_path / "cache")}
    options = {**OPTIONS, "adapt": {"enabled": True, "minutes": 30}}
    async with serving(tiny_checkpoint, "neovim", options, root.as_uri(), env) as client:
        pid = (await wait_for(client, lambda s: s["adaptation"]["pid"] is not None, 60))["adaptation"]["pid"]
    for _ in range(100):
        if not Path(f"/proc/{pid}").exists() or "zombie" in _state(pid):
            break
        await asyncio.sleep(0.1)
    assert not Path(f"/proc/{pid}").exists() or "zombie" in _state(pid)


def test_the_adaptation_process_dies_with_a_killed_server(tiny_checkpoint, tmp_path):
    from tests.lsp_raw import RawServer

    root = project(tmp_path / "proj")
    options = {**OPTIONS, "adapt": {"enabled": True, "minutes": 30}}
    server = RawServer(tiny_checkpoint, options, root.as_uri(), {"XDG_CACHE_HOME": str(tmp_path / "cache")})
    pid = None
    for _ in range(600):
        if (pid := server.request("unmask/status")["result"]["adaptation"]["pid"]) is not None:
            break
        time.sleep(0.1)
    assert pid is not None
    server.process.kill()  # no shutdown, no exit: the parent-death signal ends the child
    server.process.wait(10)
    for _ in range(100):
        if _state(pid) in ("gone",) or "zombie" in _state(pid):
            break
        time.sleep(0.1)
    assert _state(pid) == "gone" or "zombie" in _state(pid)


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/status").read_text().split("State:")[1].split("\n")[0].lower()
    except (OSError, IndexError):
        return "gone"
