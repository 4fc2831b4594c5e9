"""Bad DiffusionGemma checkpoints: one line naming the file, tensor or field."""

import json
import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file

import engine
from engine import CheckpointError, DoesNotFit
from engine.gemma import GemmaConfig, is_diffusion_gemma
from engine.gemma.load import checkpoint_name

pytest.importorskip("transformers")


@pytest.fixture
def folder(gemma_checkpoint, tmp_path):
    return shutil.copytree(gemma_checkpoint[0], tmp_path / "ckpt")


def edit_config(folder, **text):
    config = json.loads((folder / "config.json").read_text())
    config["text_config"].update(text)
    (folder / "config.json").write_text(json.dumps(config))


def edit_tensors(folder, edit):
    tensors = load_file(folder / "model.safetensors")
    edit(tensors)
    save_file(tensors, folder / "model.safetensors", metadata={"format": "pt"})


def one_line(e: pytest.ExceptionInfo) -> str:
    assert "\n" not in str(e.value)
    return str(e.value)


def test_the_vision_tower_is_skipped_and_the_names_map(gemma_checkpoint):
    config = json.loads((gemma_checkpoint[0] / "config.json").read_text())
    assert is_diffusion_gemma(config) and not is_diffusion_gemma({"model_type": "dream"})
    assert checkpoint_name("layers.3.encoder_scalar") == "model.encoder.language_model.layers.3.layer_scalar"
    assert checkpoint_name("self_conditioning.mlp.up_proj.weight") == (
        "model.decoder.self_conditioning.up_proj.weight")
    tensors = load_file(gemma_checkpoint[0] / "model.safetensors")
    assert any(name.startswith("model.encoder.vision_tower.") for name in tensors)


def test_a_missing_expert_tensor(folder):
    edit_tensors(folder, lambda t: t.pop("model.decoder.layers.1.experts.down_proj"))
    with pytest.raises(CheckpointError) as e:
        engine.load_model(folder)
    assert one_line(e) == (
        "model.safetensors: missing tensor 'model.decoder.layers.1.experts.down_proj' (1 missing)")


def test_a_wrongly_shaped_tensor(folder):
    name = "model.decoder.layers.0.router.proj.weight"
    edit_tensors(folder, lambda t: t.update({name: torch.zeros(5, 16)}))
    with pytest.raises(CheckpointError, match=rf"^model.safetensors: tensor '{name}' \(5, 16\) does not fit "
                                              r"\(4, 16\) from config.json$"):
        engine.load_model(folder)


def test_an_unexpected_tensor(folder):
    edit_tensors(folder, lambda t: t.update({"model.decoder.extra.weight": torch.zeros(2)}))
    with pytest.raises(CheckpointError, match=r"^model.safetensors: unexpected tensor 'model.decoder.extra"):
        engine.load_model(folder)


def test_a_wrong_layer_types_length(folder):
    edit_config(folder, layer_types=["sliding_attention", "full_attention", "full_attention"])
    with pytest.raises(CheckpointError) as e:
        engine.load_model(folder)
    assert one_line(e) == "config.json: text_config.layer_types has 3 entries, num_hidden_layers is 4"


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("num_experts", None, "missing field 'text_config.num_experts'"),
        ("use_bidirectional_attention", "all", "text_config.use_bidirectional_attention='all' is not supp"),
        ("layer_types", ["sliding_attention", "chunked", "sliding_attention", "full_attention"],
         "text_config.layer_types entry 'chunked' is not"),
        ("per_layer_config", {"1": {"head_dim": 16, "sliding_window": 8}},
         r"text_config.per_layer_config\['1'\].sliding_window is not supported"),
    ],
)
def test_unsupported_config_fields(folder, field, value, message):
    edit_config(folder, **{field: value})
    with pytest.raises(CheckpointError, match=f"^config.json: {message}"):
        engine.load_model(folder)


def test_older_configs_name_the_full_layers_shape_globally():
    # transformers before per_layer_config: global_head_dim and num_global_key_value_heads
    text = dict(vocab_size=8, hidden_size=16, intermediate_size=8, num_hidden_layers=2, num_attention_heads=4,
                num_key_value_heads=2, head_dim=8, global_head_dim=32, num_global_key_value_heads=1,
                num_experts=2, top_k_experts=1, moe_intermediate_size=4)
    cfg = GemmaConfig.from_hf({"text_config": text})
    assert [(s.sliding, s.kv_heads, s.head_dim, s.rope_pairs) for s in cfg.layers] == [
        (True, 2, 8, 4), (False, 1, 32, 4)]


def test_fit_is_checked_with_the_quantized_bytes(gemma_checkpoint, monkeypatch):
    monkeypatch.setattr("engine.gemma.load.available_bytes", lambda device: 1000)
    with pytest.raises(DoesNotFit, match=r"^model '.*' needs 0.0 GB on cpu in float32 \(weights 0.0 GB"):
        engine.load_model(gemma_checkpoint[0])
    with pytest.raises(DoesNotFit, match=r"^model '.*' needs 0.0 GB on cpu in int4 with float32 "):
        engine.load_model(gemma_checkpoint[0], quantize="int4")
