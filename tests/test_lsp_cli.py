import json
import re

import pytest

from lsp_server.cli import HOLE, main
from tests.test_lsp_server import PY

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


def test_fill_fills_every_hole(source, tiny_checkpoint, capsys):
    source.write_text(
        PY.replace("return ", "return " + HOLE).replace("print(add(1, 2))", "print(" + HOLE + ")")
    )
    status = main(["fill", str(source), "--model", str(tiny_checkpoint), "--options", FAST])
    out = capsys.readouterr().out
    assert HOLE not in out and out.startswith("import os\n\ndef add(a, b):\n    return ")
    assert out.count("\n") >= PY.count("\n") and out != PY
    assert status == (1 if "left empty" in capsys.readouterr().err else 0)


def test_fill_in_place_and_custom_marker(source, tiny_checkpoint, capsys):
    source.write_text(PY.replace("return ", "return ??"))
    main(
        [
            "fill",
            str(source),
            "--marker",
            "??",
            "--in-place",
            "--model",
            str(tiny_checkpoint),
            "--options",
            FAST,
        ]
    )
    assert capsys.readouterr().out == ""
    filled = source.read_text()
    assert (
        "??" not in filled and filled.startswith("import os\n\ndef add(a, b):\n    return ") and filled != PY
    )


def test_fill_without_holes(source):
    with pytest.raises(SystemExit, match=re.escape(f"no {HOLE} holes")):
        main(["fill", str(source)])


def test_invalid_model_options(source):
    with pytest.raises(SystemExit, match="device"):
        main(["complete", str(source), "--line", "1", "--col", "1", "--device", "tpu"])


def test_train_forwards_to_engine_training(capsys):
    with pytest.raises(SystemExit) as exit:
        main(["train", "--help"])
    assert exit.value.code == 0 and "engine.training" in capsys.readouterr().out
