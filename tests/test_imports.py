"""Import boundaries at run time: the command line's help, infill and the team server's replicas load only
what they use (the static rules are import-linter's, in pyproject.toml)."""

import subprocess
import sys

import pytest

HEAVY = ("torch", "safetensors", "tokenizers")


def loaded(code: str) -> set[str]:
    """Top-level packages imported after running `code` in a fresh interpreter."""
    code += "\nimport sys; print(' '.join(sorted({m.split('.')[0] for m in sys.modules})))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    return set(out.stdout.split())


def test_unmask_help_loads_no_torch():
    mods = loaded("import sys\nfrom lsp_server.cli import main\nsys.argv = ['unmask', '--help']\n"
                  "try:\n    main()\nexcept SystemExit:\n    pass")
    assert "lsp_server" in mods and not mods.intersection(HEAVY)


def test_infill_completes_without_torch_or_the_engine():
    mods = loaded("import infill\n"
                  "doc = infill.Document('def add(a, b):\\n    return \\n', 'python')\n"
                  "fill = lambda prefix, suffix, canvas, max_canvas, single_line: ('a + b', 0.9)\n"
                  "c = infill.complete(doc, 26, fill, count_tokens=len, invoked=True)\n"
                  "assert c is not None and c.text == 'a + b', c")
    assert "tree_sitter" in mods and not mods.intersection(HEAVY + ("engine", "lsprotocol", "pygls"))


def test_the_team_servers_replica_module_loads_no_infill_or_tree_sitter():
    pytest.importorskip("ray")
    mods = loaded("import lsp_server.team.app")
    assert "ray" in mods and not mods.intersection({"infill", "tree_sitter", "pygls"})
