import dataclasses

import msgspec
import pytest

from infill import InfillOptions
from lsp_server.models import ModelOptions
from lsp_server.options import SAMPLER_DEFAULTS, Options, SamplerOptions, merge, parse


def test_defaults_agree_with_the_engine_and_infill():
    engine = pytest.importorskip("engine")
    ours = dict(SAMPLER_DEFAULTS)
    theirs = {f: getattr(engine.SamplerConfig(), f) for f in msgspec.structs.asdict(SamplerOptions())}
    # the server's latency choice
    assert ours.pop("tokens_per_step") == 3 and theirs.pop("tokens_per_step") == 1
    assert ours == theirs
    # the server's thresholds, chosen on development projects; infill alone shows everything
    shown = dataclasses.replace(Options().infill(), min_probability=0.0, min_probability_invoked=0.0)
    assert shown == InfillOptions() and Options().infill().min_probability == 0.3


def test_camel_case_on_the_wire():
    options, messages = parse(
        {
            "completion": {"maxTokens": 16, "debounceMs": 0, "canvas": 6},
            "sampler": {"topP": 0.5, "threshold": None},
            "languages": {"rust": False},
        }
    )
    assert messages == []
    assert options.completion.max_tokens == 16 and options.completion.debounce_ms == 0
    assert options.sampler.top_p == 0.5 and options.sampler.threshold is None
    assert not options.enabled("rust") and options.enabled("python")
    assert options.infill().max_tokens == 16 and options.infill().canvas == 6


def test_each_invalid_value_falls_back_to_the_base_with_a_message():
    base = Options(model=ModelOptions(path="ckpt"))
    options, messages = parse(
        {
            "model": {"device": "tpu"},
            "completion": {"maxLines": 0, "maxTokens": 8},
            "sampler": {"temperature": "hot", "topK": 3},
            "colour": "red",
        },
        base,
    )
    assert options.model == ModelOptions(path="ckpt")
    assert options.completion.max_lines == Options().completion.max_lines
    assert options.completion.max_tokens == 8 and options.sampler.top_k == 3
    assert options.sampler.temperature is msgspec.UNSET  # unset again: the model's or the built-in default
    assert len(messages) == 4
    assert any("'model.device'" in m for m in messages)
    assert any("'completion.maxLines'" in m for m in messages)
    assert any("'sampler.temperature'" in m for m in messages)
    assert any("unknown unmask option 'colour'" in m for m in messages)


@pytest.mark.parametrize("raw", [{"completion": 5}, {"languages": {"python": "yes"}}, {"model": {"x": 1}}])
def test_wrong_shapes_fall_back(raw):
    options, messages = parse(raw)
    assert options == Options() and len(messages) == 1


def test_non_object_options():
    assert parse(None) == (Options(), [])
    options, messages = parse(["x"])
    assert options == Options() and "must be an object" in messages[0]


def test_merge_recurses():
    assert merge({"a": {"b": 1, "c": 2}, "d": 3}, {"a": {"b": 5}}) == {"a": {"b": 5, "c": 2}, "d": 3}


def test_sampler_options_left_unset_are_filled_in_order():
    options, messages = parse({"sampler": {"temperature": 0.3, "blockSize": None}})
    assert messages == [] and msgspec.to_builtins(options.sampler) == {"temperature": 0.3, "blockSize": None}
    recommended = {"temperature": 0.1, "top_p": 0.95, "block_size": 32}
    assert options.sampler.resolve(recommended) == {
        **SAMPLER_DEFAULTS, "temperature": 0.3, "top_p": 0.95, "block_size": None,
    }
    assert SamplerOptions().resolve() == SAMPLER_DEFAULTS
