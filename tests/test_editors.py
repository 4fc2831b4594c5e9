"""Editor clients (editors/) against the real server: headless Neovim running the repository's plugin,
headless Emacs running eglot with the repository's configuration (editors/README.md), VS Code's protocol
library (vscode-languageserver-protocol) from editors/vscode, the extension's own build and settings, and
the Helix snippet."""

import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import msgspec
import pytest
import tomllib

from infill.languages import languages
from lsp_server.options import SAMPLER_DEFAULTS, Options, SamplerOptions, parse

REPO = Path(__file__).resolve().parents[1]
VSCODE = REPO / "editors" / "vscode"
MANIFEST = json.loads((VSCODE / "package.json").read_text())
CLIENT_SETTINGS = {"unmask.enable", "unmask.serverCommand"}


def run(command: list[str], model: Path, **env: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "UNMASK_MODEL": str(model), "PYTHON": sys.executable, **env}
    return subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=90)


@pytest.mark.skipif(shutil.which("nvim") is None, reason="nvim not installed (apt-get install -y neovim)")
def test_neovim_plugin_completion_and_ghost_text(tiny_checkpoint, tmp_path):
    report_file = tmp_path / "report.json"
    lua = ["nvim", "--headless", "--clean", "-u", "NONE", "-c", "luafile tests/editors/nvim_completion.lua"]
    proc = run(lua, tiny_checkpoint, UNMASK_REPORT=str(report_file))
    assert report_file.exists(), f"nvim wrote no report (rc {proc.returncode}): {proc.stderr[-2000:]}"
    r = json.loads(report_file.read_text())
    assert r.get("error") is None, r["error"]
    assert tuple(map(int, r["nvim"].split("."))) >= (0, 7, 0)
    assert r["filetype"] == "python" and r["omnifunc"] == "v:lua.vim.lsp.omnifunc"
    assert r["loaded"] and r["status"]["state"] == "ready", r["status"]
    assert r["status"]["family"] == "dream" and r["statusline"].startswith("unmask")

    # 1. textDocument/completion at line 1, character 11 (after "    return ")
    items = r["completion"]["items"]
    assert items, r["completion"]
    edit = items[0]["textEdit"]
    assert edit["newText"].strip()
    assert edit["range"]["start"]["line"] == edit["range"]["end"]["line"] == 1
    assert edit["range"]["start"]["character"] <= 11 == edit["range"]["end"]["character"]

    # 2. typing "a" showed ghost text at the cursor, <C-]> dismissed it, <M-\> brought it back, <Tab> took it
    assert r["insert_mode"] and r["typed"][1] == "    return a"
    (_, row, col, mark), = r["ghost"]
    assert (row, col) == (1, len("    return a"))
    ghost = "".join(text for text, _ in mark["virt_text"])
    assert ghost.strip() and mark["virt_text"][0][1] == "UnmaskGhost"
    assert r["after_dismiss"] == {"marks": 0, "lines": r["typed"]}
    assert r["triggered"], "no ghost text after the trigger key"
    assert r["accepted"][1] == "    return a" + ghost.rstrip()
    assert r["accepted"][:1] + r["accepted"][2:] == r["typed"][:1] + r["typed"][2:]
    assert r["cursor_after_accept"] == [2, len(r["accepted"][1].encode())]
    assert r["mode"] == "i"


@pytest.mark.skipif(shutil.which("nvim") is None, reason="nvim not installed (apt-get install -y neovim)")
def test_neovim_code_action_commands_change_only_their_range(tiny_checkpoint, tmp_path):
    report_file = tmp_path / "report.json"
    lua = ["nvim", "--headless", "--clean", "-u", "NONE", "-c", "luafile tests/editors/nvim_actions.lua"]
    proc = run(lua, tiny_checkpoint, UNMASK_REPORT=str(report_file))
    assert report_file.exists(), f"nvim wrote no report (rc {proc.returncode}): {proc.stderr[-2000:]}"
    r = json.loads(report_file.read_text())
    assert r.get("error") is None, r["error"]
    assert r["loaded"] and r["rewrite_done"] and r["fill_done"]

    # :'<,'>UnmaskRewrite over "a + b": only those characters of line 4 changed
    before, after = r["before"], r["after"]
    assert before[3] == "    return a + b"
    assert len(after) == len(before) and after[:3] == before[:3] and after[4:] == before[4:]
    assert after[3].startswith("    return ") and after[3] != before[3]

    # :UnmaskFillHoles: both markers replaced on their own lines, every other line as it was
    holes, filled = r["holes_before"], r["holes_after"]
    assert not any("<|fill|>" in line for line in filled)
    assert filled[0].startswith("total = ") and filled[0] != "total = "
    assert filled[1:3] == holes[1:3] and filled[-2:] == holes[-2:]


@pytest.mark.skipif(shutil.which("emacs") is None,
                    reason="emacs not installed (apt-get install -y emacs-nox elpa-eglot)")
def test_emacs_eglot_completion(tiny_checkpoint, tmp_path):
    report_file = tmp_path / "report.json"
    emacs = ["emacs", "--batch", "-Q", "-l", "tests/editors/emacs_completion.el"]
    # eglot starts the server in the project's root (a temporary folder); it still runs this checkout's code
    path = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    proc = run(emacs, tiny_checkpoint, UNMASK_REPORT=str(report_file), PYTHONPATH=path)
    assert report_file.exists(), f"emacs wrote no report (rc {proc.returncode}): {proc.stderr[-2000:]}"
    r = json.loads(report_file.read_text())
    assert r.get("error") is None, (r["error"], r.get("stderr"))
    assert tuple(map(int, r["emacs"].split(".")[:2])) >= (28, 1) and r["eglot"], (r["emacs"], r["eglot"])
    # editors/README.md's eglot configuration, its program pointed at this Python, the model added
    assert r["configured"].startswith("((python-mode python-ts-mode) \"python3\" \"-m\" \"lsp_server\"")
    assert r["major_mode"] == "python-mode" and r["connected"] and r["server_name"] == "unmask"
    assert r["completion_provider"]["triggerCharacters"] and r["inline_completion_provider"] is None
    assert r["capf"], "eglot-completion-at-point is not in completion-at-point-functions"
    # its initializationOptions reached the server: the README's maxLines, the model path
    status = r["status"]
    assert status["state"] == "ready" and status["family"] == "dream", status
    assert status["model"]["path"] == str(tiny_checkpoint) and status["completion"]["maxLines"] == 8

    # 1. the capf's candidates at the end of "    return " (column 11)
    assert r["column"] == 11
    assert r["candidates"] and all(c.strip() for c in r["candidates"]), r["candidates"]
    # 2. completion-at-point inserted it through the item's textEdit; the other lines are as they were
    line, lines = r["line"], r["lines"]
    assert line.startswith("    return ") and len(line.rstrip()) > len("    return "), line
    assert lines[0] == "def add(a, b):" and lines[-3:] == ["", "print(add(1, 2))", ""], lines
    assert r["shutdown"] is True


GHOST_CASES = {  # tests/editors/nvim_ghost.lua: what is drawn (row, col, text, virtual lines), then accepted
    "eol": ([{"row": 0, "col": 4, "text": "compute(1)", "lines": []}], ["x = compute(1)"], [1, 14]),
    "mid_line": ([{"row": 0, "col": 9, "text": "ue + 1)", "lines": []}], ["print(value + 1)"], [1, 16]),
    "multi_line": ([{"row": 1, "col": 4, "text": "if a:", "lines": ["        return 1", "    return 0"]}],
                   ["def f(a):", "    if a:", "        return 1", "    return 0", "g()"], [4, 12]),
    "stale_then_fit": ([{"row": 0, "col": 8, "text": "r()", "lines": []}], ["foo = bar()"], [1, 11]),
    "cycle": ([{"row": 0, "col": 4, "text": "2", "lines": []}], ["n = 2"], [1, 5]),
    "utf16": ([{"row": 0, "col": 8, "text": ".upper()", "lines": []}], ["s = 'é'.upper()"], [1, 16]),
    "none": ([], ["abc"], [1, 3]),
}


@pytest.mark.skipif(shutil.which("nvim") is None, reason="nvim not installed (apt-get install -y neovim)")
def test_neovim_ghost_text_rendering_and_accept(tmp_path):
    report_file = tmp_path / "report.json"
    lua = ["nvim", "--headless", "--clean", "-u", "NONE", "-c", "luafile tests/editors/nvim_ghost.lua"]
    proc = subprocess.run(lua, cwd=REPO, env={**os.environ, "UNMASK_REPORT": str(report_file)},
                          capture_output=True, text=True, timeout=30)
    assert report_file.exists(), f"nvim wrote no report (rc {proc.returncode}): {proc.stderr[-2000:]}"
    report = json.loads(report_file.read_text())
    assert set(report) == set(GHOST_CASES)
    for name, (marks, lines, cursor) in GHOST_CASES.items():
        r = report[name]
        assert (r["shown"], r["marks"], r["lines"], r["cursor"], r["marks_after"]) == (
            bool(marks), marks, lines, cursor, 0), name


@pytest.mark.skipif(shutil.which("node") is None or not (VSCODE / "node_modules" / "vscode-jsonrpc").is_dir(),
                    reason="node or editors/vscode/node_modules missing (cd editors/vscode && npm ci)")
def test_vscode_protocol_inline_completion(tiny_checkpoint):
    proc = run(["node", "tests/editors/inline_completion.mjs"], tiny_checkpoint)
    assert proc.returncode == 0, proc.stderr[-3000:]
    r = json.loads(proc.stdout.strip().splitlines()[-1])
    for item, cursor in ((r["first"], 11), (r["second"], 15)):
        assert item["insertText"].strip()
        assert item["range"]["start"]["line"] == item["range"]["end"]["line"] == 1
        assert item["range"]["start"]["character"] <= cursor <= item["range"]["end"]["character"]
    assert r["status"]["state"] == "ready" and r["status"]["latencies_ms"]["count"] >= 2


@pytest.mark.skipif(shutil.which("npm") is None or not (VSCODE / "node_modules" / ".bin" / "vsce").exists(),
                    reason="npm or editors/vscode/node_modules missing (cd editors/vscode && npm ci)")
def test_vscode_extension_builds_runs_and_packages(tiny_checkpoint, tmp_path):
    tests = subprocess.run(["npm", "test"], cwd=VSCODE, capture_output=True, text=True, timeout=120)
    assert tests.returncode == 0, tests.stdout[-3000:] + tests.stderr[-2000:]
    assert "# fail 0" in tests.stdout

    # the compiled extension and its vscode-languageclient in a fake `vscode`, against the real server
    proc = run(["node", "tests/editors/vscode_extension.cjs"], tiny_checkpoint)
    assert proc.returncode == 0, proc.stderr[-3000:]
    r = json.loads(proc.stdout.strip().splitlines()[-1])
    assert r["seen"][0] == "$(loading~spin) unmask: loading" and r["seen"][-1].startswith("unmask")
    for item in (r["invoked"], r["automatic"]):
        assert item["insertText"].strip() and item["start"] <= 11 <= item["end"]
    assert re.fullmatch(r"unmask \d+ ms", r["ready"]["text"])
    assert re.search(r"dream · cpu · (float32|bfloat16)", r["ready"]["tooltip"])
    assert r["suggest"] is None  # the suggest widget does not ask the model a second time
    assert r["disabled"] is None and r["enable"] is False and r["offText"].startswith("$(circle-slash)")
    assert r["messages"] == []
    # the light bulb: *Rewrite selection* offered for "add(1, 2)", resolved to an edit of exactly that range
    action = r["action"]
    assert action["offered"] == [["Rewrite selection (unmask)", "refactor.rewrite.unmask.rewriteSelection"]]
    assert action["uri"].endswith("/example.py") and action["range"] == [4, 6, 4, 15]
    assert action["newText"].strip() and "\n" not in action["newText"]

    vsix = tmp_path / "unmask.vsix"
    package = subprocess.run(["npm", "run", "package", "--", "-o", str(vsix)], cwd=VSCODE,
                             capture_output=True, text=True, timeout=120)
    assert package.returncode == 0, package.stdout[-3000:] + package.stderr[-2000:]
    with zipfile.ZipFile(vsix) as z:
        names = set(z.namelist())
    assert {"extension/package.json", "extension/out/src/extension.js",
            "extension/node_modules/vscode-languageclient/package.json"} <= names
    assert not any(n.startswith(("extension/src/", "extension/test/", "extension/out/test/")) for n in names)


def _flatten(options: dict, prefix: str = "unmask.") -> dict:
    flat = {}
    for key, value in options.items():
        if isinstance(value, dict) and key != "languages":
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[prefix + key] = value
    return flat


def test_vscode_settings_mirror_server_options():
    settings = MANIFEST["contributes"]["configuration"]["properties"]
    # sampler options are unset unless the user sets them; the settings show the built-in defaults
    sampler = msgspec.to_builtins(SamplerOptions(**SAMPLER_DEFAULTS))
    server = _flatten({**msgspec.to_builtins(Options()), "sampler": sampler})
    mirrored = {key: spec["default"] for key, spec in settings.items() if key not in CLIENT_SETTINGS}
    assert mirrored == server


def test_vscode_languages_are_the_servers():
    ids = {i for spec in languages().values() for i in spec.language_ids}
    events = MANIFEST["activationEvents"]
    assert {e.removeprefix("onLanguage:") for e in events if e.startswith("onLanguage:")} == ids


def test_helix_snippet_is_valid():
    block = re.search(r"```toml\n(.*?)```", (REPO / "editors" / "README.md").read_text(), re.S).group(1)
    helix = tomllib.loads(block)
    options, messages = parse(helix["language-server"]["unmask"]["config"])
    assert messages == [] and options.completion.max_lines == 8
    unmask = {"name": "unmask", "only-features": ["completion", "code-action"]}
    assert helix["language"][0]["language-servers"][-1] == unmask
