"""Judged completions through the server: a checkpoint's trust.json decides what is shown; withheld answers
are empty and counted; `completion.explain` puts the probability on the inline item; the CLI says why."""

import shutil

import pytest
from lsprotocol import types

from infill.trust import FEATURES, Calibration
from tests.test_lsp_cli import unmask
from tests.test_lsp_server import AUTOMATIC, FAST, INVOKED, PY, RETURN, inline, open_doc, serving, status


def judged(tiny_checkpoint, tmp_path, bias: float):
    """The tiny checkpoint with a trust.json that gives every candidate the probability sigmoid(bias)."""
    folder = tmp_path / f"judged{bias:+}"
    shutil.copytree(tiny_checkpoint, folder)
    Calibration(tuple(bias if f == "bias" else 0.0 for f in FEATURES), "test").save(folder / "trust.json")
    return folder


@pytest.mark.asyncio
async def test_a_likely_answer_is_shown_with_its_probability(tiny_checkpoint, tmp_path):
    options = {**FAST, "completion": {**FAST["completion"], "explain": True, "minConfidence": 0.5}}
    async with serving(judged(tiny_checkpoint, tmp_path, 3.0), "neovim", options) as client:
        uri = open_doc(client, "trust.py", PY)
        result = await inline(client, uri, RETURN, AUTOMATIC)
        (item,) = result.items
        (why,) = item.command.arguments
        assert item.command.command == "unmask.explain"
        assert why["probability"] == pytest.approx(0.9526, abs=1e-3)
        assert why["source"] in ("network", "memory", "both") and why["kind"] == "rest_of_line"
        assert (await status(client))["completions"] == {"shown": 1, "withheld": 0}


@pytest.mark.asyncio
async def test_an_unlikely_answer_is_withheld_but_shown_when_asked_below_the_invoked_threshold(
        tiny_checkpoint, tmp_path):
    thresholds = {"minConfidence": 0.5, "minConfidenceInvoked": 0.1}
    options = {**FAST, "completion": {**FAST["completion"], **thresholds}}
    async with serving(judged(tiny_checkpoint, tmp_path, -1.0), "neovim", options) as client:  # p = 0.27
        uri = open_doc(client, "trust.py", PY)
        assert not (await inline(client, uri, RETURN, AUTOMATIC)).items
        assert (await status(client))["completions"] == {"shown": 0, "withheld": 1}
        asked = await inline(client, uri, RETURN, INVOKED)
        assert len(asked.items) == 1 and asked.items[0].command is None  # explain is off by default
        items = await client.text_document_completion_async(types.CompletionParams(
            types.TextDocumentIdentifier(uri), RETURN))
        data = items.items[0].data
        assert data["probability"] == pytest.approx(0.2689, abs=1e-3) and data["kind"] == "rest_of_line"


def test_the_cli_says_why_it_withholds(tiny_checkpoint, tmp_path):
    source = tmp_path / "a.py"
    source.write_text(PY)
    model = judged(tiny_checkpoint, tmp_path, -3.0)
    at = ("--line", "4", "--col", "12", "--model", str(model), "--threads", "1")
    done = unmask("complete", str(source), *at, "--options", '{"completion": {"minConfidenceInvoked": 0.5}}',
                  env={})
    assert done.returncode == 1 and "withheld" in done.stderr and "probability 0.05" in done.stderr
    shown = unmask("complete", str(source), *at, "--json", "--options",
                   '{"completion": {"minConfidenceInvoked": 0}}', env={})
    assert shown.returncode == 0 and '"probability": 0.0474' in shown.stdout
