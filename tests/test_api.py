"""engine/api.py: every family implements the contract, states what it supports, and refuses the rest in one
line; the contract's modules load no torch."""

import subprocess
import sys

import pytest

import engine
from engine.api import Capabilities, CompletionModel, ModelInfo, refuse_unsupported
from engine.errors import Unsupported
from engine.params import DEFAULT_REFRESH, InfillParams, MemoryConfig, SamplerConfig


def test_the_embedded_model_implements_the_contract():
    model = engine.load_model()
    assert isinstance(model, CompletionModel)
    assert model.capabilities == Capabilities(cache=True, memory=True, grows=False, batching=True, score=True,
                                              sampler=True)
    info = model.info
    assert isinstance(info, ModelInfo) and info.family == "dream" and info.device == "cpu"
    assert info.max_positions == model.max_positions == 512 and info.dtype in ("float32", "bfloat16")
    assert model.context_room(32) < model.max_positions and model.count_tokens("def f():") > 0


def test_the_gemma_family_implements_the_contract(gemma_checkpoint):
    model = engine.load_model(gemma_checkpoint[0])
    assert isinstance(model, CompletionModel) and model.info.family == "diffusion-gemma"
    assert not (model.capabilities.memory or model.capabilities.cache or model.capabilities.batching)


@pytest.mark.parametrize("caps, params, field", [
    (dict(memory=False), InfillParams(memory=MemoryConfig()), "memory"),
    (dict(cache=False), InfillParams(cache=False), "cache"),
    (dict(cache=False), InfillParams(refresh=DEFAULT_REFRESH + 1), "refresh"),
    (dict(grows=False), InfillParams(canvas=8, max_canvas=16), "max_canvas"),
])
def test_a_field_the_family_cannot_honour_is_refused_by_name(caps, params, field):
    full = dict(cache=True, memory=True, grows=True, batching=True, score=True, sampler=True)
    refuse_unsupported("fam", Capabilities(**full), params)  # all supported: nothing to refuse
    with pytest.raises(Unsupported, match=rf"^InfillParams\.{field}: fam "):
        refuse_unsupported("fam", Capabilities(**{**full, **caps}), params)


def test_params_are_checked_when_built():
    assert InfillParams(canvas=8, max_canvas=8).widest == 8
    assert InfillParams(canvas=8, max_canvas=20).widest == 20
    for bad in ({"canvas": 0}, {"seed": "1"}, {"sampler": {"steps": 2}}, {"memory": 0.5}, {"cache": 1}):
        with pytest.raises(ValueError, match=rf"^InfillParams\.{next(iter(bad))} must be"):
            InfillParams(**bad)
    with pytest.raises(ValueError, match=r"^SamplerConfig\.threshold must be"):
        SamplerConfig(threshold=2.0)


def test_score_prefers_the_middle_the_model_itself_writes():
    model = engine.load_model()
    prefix, suffix = "import os\n\n\ndef main():\n    path = os.path.", "\n    print(path)\n"
    written = model.infill(prefix, suffix, InfillParams(canvas=8, single_line=True)).text
    scores = model.score(prefix, suffix, [written, "zzzz qqqq", ""])
    assert scores[0] > scores[1] and scores[2] == float("-inf")
    # one batched forward equals each candidate scored alone (rows are kept apart)
    assert model.score(prefix, suffix, ["zzzz qqqq"])[0] == pytest.approx(scores[1], abs=1e-4)


def test_the_contract_modules_load_no_torch():
    code = ("import sys, engine, engine.api, engine.params, engine.errors, engine.catalogue\n"
            "engine.catalogue.find('Dream-org/Dream-v0-Base-7B'); engine.InfillParams(); engine.Unsupported\n"
            "heavy = ('torch', 'safetensors', 'tokenizers')\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
