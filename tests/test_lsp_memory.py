"""The server's repository memory: the workspace's files and the open documents feed it, edits update it,
`unmask/status` reports it, an option turns it off; and the workspace scan's choice of files."""

import asyncio
import subprocess
from pathlib import Path

from lsprotocol import types

from lsp_server.documents import workspace
from tests.test_lsp_server import INVOKED, insert, serving, status

SHAPES = (
    "def area(rect):\n    return rect.width * rect.height\n\n\n"
    "def perimeter(rect):\n    return 2 * (rect.width + rect.height)\n"
)
OPTIONS = {"completion": {"maxTokens": 24, "debounceMs": 0}, "memory": {"weight": 0.99}}


async def wait_memory(client, condition, timeout: float = 30.0) -> dict:
    for _ in range(int(timeout / 0.05)):
        if condition((s := await status(client))["memory"]):
            return s["memory"]
        await asyncio.sleep(0.05)
    raise AssertionError(f"memory never satisfied the condition: {s['memory']}")


def project(tmp_path: Path) -> Path:
    root = tmp_path / "proj"
    (root / "pkg").mkdir(parents=True)
    (root / "pkg" / "shapes.py").write_text(SHAPES)
    (root / "node_modules" / "dep").mkdir(parents=True)
    (root / "node_modules" / "dep" / "big.js").write_text("var x = 1;\n")
    (root / "notes.txt").write_text("not source code\n")
    return root


async def test_the_workspace_and_open_documents_feed_the_memory(tiny_checkpoint, tmp_path):
    root = project(tmp_path)
    async with serving(tiny_checkpoint, "neovim", OPTIONS, root_uri=root.as_uri()) as client:
        memory = await wait_memory(client, lambda m: m["sources"] >= 1)
        assert memory["sources"] == 1 and memory["bytes"] == len(SHAPES)  # no node_modules, no .txt
        text = "def volume(rect, depth):\n    return rect.width * \n"
        uri = (root / "pkg" / "volume.py").as_uri()
        client.text_document_did_open(
            types.DidOpenTextDocumentParams(types.TextDocumentItem(uri, "python", 1, text))
        )
        await wait_memory(client, lambda m: m["sources"] == 2)
        result = await client.text_document_inline_completion_async(
            types.InlineCompletionParams(INVOKED, types.TextDocumentIdentifier(uri), types.Position(1, 23))
        )
        assert result.items and result.items[0].insert_text.endswith("rect.height")

        insert(client, uri, 2, types.Position(2, 0), "# more\n")  # an edit reaches the memory
        await wait_memory(client, lambda m: m["bytes"] == len(SHAPES) + len(text) + len("# more\n"))
        assert (await status(client))["memory"]["update_ms"] is not None


async def test_with_the_memory_off_the_workspace_is_not_read(tiny_checkpoint, tmp_path):
    root = project(tmp_path)
    options = {**OPTIONS, "memory": {"enabled": False}}
    async with serving(tiny_checkpoint, "neovim", options, root_uri=root.as_uri()) as client:
        await asyncio.sleep(0.5)
        assert (await status(client))["memory"]["sources"] == 0


def test_source_files_follow_git_ignore_rules_and_the_budget(tmp_path):
    root = project(tmp_path)
    (root / "pkg" / "generated.py").write_text("x = 1\n" * 10)
    (root / ".gitignore").write_text("generated.py\n")
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    found = {p.name for p, _ in workspace.source_files([root], {"py", "js"}, 10_000)}
    assert found == {"shapes.py", "big.js"}  # git decides: node_modules is not ignored here, generated.py is
    assert list(workspace.source_files([root], {"py"}, 10)) == []  # nothing fits a 10-byte budget


def test_without_git_dependency_and_build_folders_are_skipped(tmp_path):
    root = project(tmp_path)
    (root / "build").mkdir()
    (root / "build" / "copy.py").write_text(SHAPES)
    found = sorted(
        p.relative_to(root).as_posix() for p, _ in workspace.source_files([root], {"py", "js"}, 10**6)
    )
    assert found == ["pkg/shapes.py"]
    assert workspace.folder_of(root.as_uri()) == root and workspace.folder_of("untitled:x") is None


async def test_without_a_workspace_the_opened_files_project_is_read(tiny_checkpoint, tmp_path):
    root = project(tmp_path)
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    (root / "pkg" / "deep").mkdir()
    async with serving(tiny_checkpoint, "neovim", OPTIONS, root_uri=None) as client:
        await asyncio.sleep(0.3)
        assert (await status(client))["memory"]["sources"] == 0
        uri = (root / "pkg" / "deep" / "new.py").as_uri()
        client.text_document_did_open(
            types.DidOpenTextDocumentParams(types.TextDocumentItem(uri, "python", 1, "x = 1\n"))
        )
        # the git work tree above the file: shapes.py and node_modules/dep/big.js, plus the open document
        memory = await wait_memory(client, lambda m: m["sources"] >= 3)
        assert memory["sources"] == 3
