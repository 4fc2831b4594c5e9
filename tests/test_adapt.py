"""engine/training/adapt.py and `unmask adapt`: a project's files fine-tune a checkpoint into a new folder
that loads and completes like any other."""

import json

import pytest
import torch

import engine
from engine.training.adapt import AdaptConfig, adapt
from tests.test_lsp_cli import unmask

PROJECT = {
    "shapes.py": "class Rect:\n    def __init__(self, width, height):\n        self.width = width\n"
                 "        self.height = height\n\n    def area(self):\n"
                 "        return self.width * self.height\n",
    "util.py": "def clamp(x, lo, hi):\n    return max(lo, min(x, hi))\n\n\n"
               "def scale(x, k):\n    return x * k\n",
}
QUICK = AdaptConfig(minutes=5.0, max_tokens=3 * 2 * 64, seq_len=64, batch_size=2)  # three steps


def test_adaptation_writes_a_checkpoint_that_moved_and_still_loads(tiny_checkpoint, tmp_path):
    out = tmp_path / "adapted"
    report = adapt(tiny_checkpoint, PROJECT, out, QUICK)
    assert report.steps == 3 and report.files == 2 and report.rows_tokens == 3 * 2 * 64
    assert report.loss_before > 0 and report.loss_after > 0
    card = json.loads((out / "adaptation.json").read_text())
    assert card["report"]["steps"] == 3 and card["files"] == ["shapes.py", "util.py"]
    before, after = engine.load_model(tiny_checkpoint), engine.load_model(out)
    moved = [not torch.equal(a, b) for a, b in zip(before.model.parameters(), after.model.parameters())]
    assert all(moved)  # every tensor trained (the anchor pulls back, it does not freeze)
    completed = after.infill("def f(x):\n    return ", "\n", engine.InfillParams(canvas=6))
    assert completed.stats.forward_passes >= 1
    again = adapt(tiny_checkpoint, PROJECT, tmp_path / "again", QUICK)
    assert again.loss_after == report.loss_after  # deterministic for a seed


def test_nothing_to_adapt_on_is_refused():
    with pytest.raises(ValueError, match="nothing to adapt on"):
        adapt(engine.registry.DEFAULT_MODEL, {}, None, QUICK)


def test_unmask_adapt_reads_the_project_and_names_its_errors(tiny_checkpoint, tmp_path):
    project = tmp_path / "project"
    project.mkdir()
    for name, text in PROJECT.items():
        (project / name).write_text(text)
    missing = unmask("adapt", str(tmp_path / "nowhere"), env={})
    assert missing.returncode != 0 and "nowhere: not a folder" in missing.stderr
    done = unmask("adapt", str(project), "--model", str(tiny_checkpoint), "--minutes", "0.02",
                  "--out", str(tmp_path / "out"), env={})
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "out" / "model.safetensors").exists() and "2 files" in done.stdout


def test_a_token_clock_writes_the_learning_curve_checkpoints_at_their_minutes(tiny_checkpoint, tmp_path):
    # a "minute" of 2 steps of 2 rows of 64 tokens: checkpoints after 2 and 4 steps, the end after 6
    cfg = AdaptConfig(minutes=3.0, seq_len=64, batch_size=2, minute_tokens=2 * 2 * 64)
    report = adapt(tiny_checkpoint, PROJECT, tmp_path / "end", cfg,
                   checkpoints=[(1.0, tmp_path / "one"), (2.0, tmp_path / "two")])
    assert report.steps == 6 and report.minutes >= 0
    weights = [engine.load_model(tmp_path / n).model.parameters().__next__() for n in ("one", "two", "end")]
    assert not torch.equal(weights[0], weights[1]) and not torch.equal(weights[1], weights[2])
    adapt(tiny_checkpoint, PROJECT, tmp_path / "again", cfg, checkpoints=[(1.0, tmp_path / "one2")])
    assert torch.equal(engine.load_model(tmp_path / "one2").model.parameters().__next__(), weights[0])


def test_the_replay_guard_trains_on_the_standard_library_too(tiny_checkpoint, tmp_path, monkeypatch):
    from engine.training import adapt as module

    seen = []
    real = module.replay_texts
    few = dict(list(real(200_000).items())[:5])
    monkeypatch.setattr(module, "replay_texts", lambda: seen.append(1) or few)
    cfg = AdaptConfig(minutes=5.0, max_tokens=4 * 2 * 64, seq_len=64, batch_size=2, guard="replay",
                      replay_every=2)
    report = adapt(tiny_checkpoint, PROJECT, tmp_path / "out", cfg)
    assert seen == [1] and report.steps == 4
    # the replayed batches trained: the weights differ from the same run without a guard
    unguarded = AdaptConfig(minutes=5.0, max_tokens=4 * 2 * 64, seq_len=64, batch_size=2, guard="none")
    adapt(tiny_checkpoint, PROJECT, tmp_path / "none", unguarded)
    replayed, plain = (engine.load_model(tmp_path / n).model.parameters().__next__() for n in ("out", "none"))
    assert not torch.equal(replayed, plain)
    with pytest.raises(ValueError, match="guard must be"):
        adapt(tiny_checkpoint, PROJECT, tmp_path / "bad", AdaptConfig(guard="lora"))


def test_an_adapted_folder_is_judged_by_the_calibration_fitted_on_adapted_networks(tiny_checkpoint, tmp_path):
    import shutil

    base = tmp_path / "base"
    shutil.copytree(tiny_checkpoint, base)
    (base / "trust.json").write_text('{"for": "the base network"}\n')
    adapt(base, PROJECT, tmp_path / "plain", QUICK)
    assert json.loads((tmp_path / "plain" / "trust.json").read_text()) == {"for": "the base network"}
    (base / "trust-adapted.json").write_text('{"for": "adapted networks"}\n')
    adapt(base, PROJECT, tmp_path / "adapted", QUICK)
    assert json.loads((tmp_path / "adapted" / "trust.json").read_text()) == {"for": "adapted networks"}
    # adapting the adapted folder again keeps judging by the adapted fit
    adapt(tmp_path / "adapted", PROJECT, tmp_path / "twice", QUICK)
    assert json.loads((tmp_path / "twice" / "trust.json").read_text()) == {"for": "adapted networks"}
