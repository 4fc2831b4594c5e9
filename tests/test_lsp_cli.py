import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

import infill
from engine import fit
from engine.catalogue import CATALOGUE
from lsp_server import cli
from lsp_server.cli import HOLE, main
from lsp_server.completion import filler
from tests.test_hub import closed_port, write_hub_cache
from tests.test_lsp_server import ENV, PY

FAST = '{"completion": {"maxTokens": 8}}'


@pytest.fixture
def source(tmp_path):
    path = tmp_path / "a.py"
    path.write_text(PY)
    return path


def test_complete_prints_the_completion(source, tiny_checkpoint, capsys):
    args = [
        "complete",
        str(source),
        "--line",
        "4",
        "--col",
        "12",
        "--model",
        str(tiny_checkpoint),
        "--options",
        FAST,
    ]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert main([*args, "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["text"] + "\n" == text
    assert result["start"] == {"line": 4, "col": 12} and result["end"]["line"] == 4
    assert result["kind"] == "rest_of_line" and 0 <= result["confidence"] <= 1 and result["ms"] > 0


@pytest.mark.parametrize(
    "where, message",
    [
        (["--line", "99", "--col", "1"], "--line must be in 1..7"),
        (["--line", "4", "--col", "13"], "--col must be in 1..12"),
    ],
)
def test_complete_rejects_positions_outside_the_file(source, where, message):
    with pytest.raises(SystemExit, match=message):
        main(["complete", str(source), *where])


def test_unsupported_files_are_refused(tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("hello\n")
    with pytest.raises(SystemExit, match="unsupported language"):
        main(["complete", str(notes), "--line", "1", "--col", "1"])


def scripted(monkeypatch, *answers) -> list[tuple[str, int]]:
    """`unmask fill` with answers in place of the model, one per hole in order: (code points replaced before
    the hole, text, code points replaced after it), or None for no answer. The (text, offset) each hole was
    asked at, in order."""
    asked = []

    def complete(model, doc, offset, options, *, invoked):
        asked.append((doc.text, offset))
        if (answer := answers[len(asked) - 1]) is None:
            return None
        before, text, after = answer
        return infill.Completion(offset - before, offset + after, text, "rest_of_line", 0.9)

    monkeypatch.setattr(cli, "load", lambda opts: None)
    monkeypatch.setattr(filler, "complete", complete)
    return asked


def around(asked: tuple[str, int]) -> tuple[str, str]:
    text, offset = asked
    return text[max(0, offset - 8) : offset], text[offset : offset + 8]


def test_fill_fills_each_hole_where_it_is_after_the_ones_before(source, monkeypatch, capsys):
    source.write_text(f"def add(a, b):\n    return {HOLE}\n\nprint({HOLE})\nx = {HOLE} + {HOLE}  # sum\n")
    asked = scripted(
        monkeypatch,
        (1, " a + b", 0),  # replaces the blank before the hole: 5 code points longer
        (0, "add(1, 2))", 1),  # replaces the ")" after it
        (0, "1", len(" +   # sum")),  # replaces the rest of the line, the fourth hole with it
        None,  # the fourth hole, now at the end of "x = 1", stays empty
    )
    assert main(["fill", str(source)]) == 1
    out, err = capsys.readouterr()
    assert out == "def add(a, b):\n    return a + b\n\nprint(add(1, 2))\nx = 1\n"
    assert [around(a) for a in asked] == [
        (" return ", "\n\nprint("),
        ("\n\nprint(", ")\nx =  +"),
        ("2))\nx = ", " +   # s"),
        ("))\nx = 1", "\n"),
    ]
    assert err == f"unmask: {source}: hole 4 of 4 left empty\n"


def test_fill_in_place_and_custom_marker(source, monkeypatch, capsys):
    source.write_text(PY.replace("return ", "return ??"))
    asked = scripted(monkeypatch, (0, "a + b", 0))
    assert main(["fill", str(source), "--marker", "??", "--in-place"]) == 0
    assert capsys.readouterr() == ("", "")
    assert source.read_text() == PY.replace("return ", "return a + b")
    assert around(asked[0]) == (" return ", "\n\nprint(")


def test_fill_with_the_model_keeps_every_hole_in_place(source, tiny_checkpoint, monkeypatch, capsys):
    source.write_text(PY.replace("return ", "return " + HOLE).replace("print(add(1, 2))", f"print({HOLE})"))
    model_complete, asked = filler.complete, []

    def complete(model, doc, offset, options, **kwargs):
        c = model_complete(model, doc, offset, options, **kwargs)
        asked.append((doc.text, offset, c))
        return c

    monkeypatch.setattr(filler, "complete", complete)
    main(["fill", str(source), "--model", str(tiny_checkpoint), "--options", FAST])  # exit status: above
    out = capsys.readouterr().out
    (first, at_return, c1), (second, at_print, c2) = asked
    assert first == PY.replace("add(1, 2)", "") and first[:at_return].endswith("\n    return ")
    assert second == first if c1 is None else first[: c1.start] + c1.text + first[c1.end :]
    assert second[:at_print].endswith("\nprint(") and second[at_print:] == ")\n"
    assert out == second if c2 is None else second[: c2.start] + c2.text + second[c2.end :]


def test_fill_without_holes(source):
    with pytest.raises(SystemExit, match=re.escape(f"no {HOLE} holes")):
        main(["fill", str(source)])


def test_invalid_model_options(source):
    with pytest.raises(SystemExit, match="device"):
        main(["complete", str(source), "--line", "1", "--col", "1", "--device", "tpu"])


def test_options_that_are_not_json_are_named(source):
    with pytest.raises(SystemExit, match="--options is not JSON"):
        main(["complete", str(source), "--line", "1", "--col", "1", "--options", "{"])


def test_train_forwards_to_engine_training(capsys):
    with pytest.raises(SystemExit) as exit:
        main(["train", "--help"])
    assert exit.value.code == 0 and "engine.training" in capsys.readouterr().out


def unmask(*args: str, env: dict) -> subprocess.CompletedProcess:
    command = [sys.executable, "-c", "from lsp_server.cli import main; raise SystemExit(main())", *args]
    return subprocess.run(command, env={**ENV, **env}, capture_output=True, text=True, timeout=120)


def test_complete_with_a_hub_id_from_the_cache_offline(source, tiny_checkpoint, tmp_path):
    cache = tmp_path / "hf-cache"
    write_hub_cache(cache, "org/tiny", tiny_checkpoint)
    # offline, and an endpoint nobody listens on should anything still try the network
    env = {"HF_HOME": str(tmp_path / "hf-home"), "HF_HUB_CACHE": str(cache), "HF_HUB_OFFLINE": "1",
           "HF_ENDPOINT": f"http://127.0.0.1:{closed_port()}"}
    where = [str(source), "--line", "4", "--col", "12", "--options", FAST]
    done = unmask("complete", *where, "--model", "org/tiny", "--json", env=env)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["start"] == {"line": 4, "col": 12}
    missing = unmask("complete", *where, "--model", "org/missing", env=env)
    assert missing.returncode == 1 and missing.stdout == ""
    assert missing.stderr == (
        f"unmask: model 'org/missing' is not in the Hugging Face cache ({cache}) and HF_HUB_OFFLINE=1: "
        "run once online or pass a folder\n"
    )


def test_a_model_that_cannot_fit_is_one_line(source, tiny_checkpoint, monkeypatch):
    monkeypatch.setattr(fit, "available_bytes", lambda device: 1000)
    with pytest.raises(SystemExit, match=r"^unmask: model '.*' needs .* GB is available; .*`unmask models`"):
        main(["complete", str(source), "--line", "4", "--col", "12", "--model", str(tiny_checkpoint)])


def test_models_lists_the_catalogue(capsys):
    assert main(["models"]) == 0
    header, *rows = capsys.readouterr().out.splitlines()
    assert header.startswith("id ") and [r.split()[0] for r in rows] == [e.id for e in CATALOGUE]


def test_the_readme_quick_start_prints_what_the_readme_says(tmp_path, capsys):
    # the README's first command, on the embedded model: its file, its cursor and the completion it promises
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    quick = readme.split("## Quick start", 1)[1].split("Run the tests", 1)[0]
    command = quick.split("```sh\n", 1)[1].split("\n```", 1)[0]
    text = re.search(r"printf '([^']*)'", command).group(1).encode().decode("unicode_escape")
    line, col = re.search(r"unmask complete \S+ --line (\d+) --col (\d+)$", command).groups()
    promised = re.search(r"It prints `([^`]*)`", quick).group(1)
    path = tmp_path / "demo.py"
    path.write_text(text, encoding="utf-8")
    assert main(["complete", str(path), "--line", line, "--col", col]) == 0
    assert capsys.readouterr().out == promised + "\n"
