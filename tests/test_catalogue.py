import json
from pathlib import Path

import pytest

from engine import SamplerConfig, catalogue, hub
from engine.catalogue import CATALOGUE, Entry, find, lines
from engine.config import ModelConfig
from engine.families import FAMILIES
from engine.gemma.config import GemmaConfig
from lsp_server.cli import main
from lsp_server.models import sampler_config
from lsp_server.options import SAMPLER_DEFAULTS, SamplerOptions
from tests.test_hub import write_hub_cache

# published sizes (the model cards' "7B", "8B", "0.5B" rounded from these; DiffusionGemma's text weights:
# the reference's 25.2B, docs/engine.md's 25.3B), against our parameter counts
BILLIONS = {"dream": 7.62, "llada": 8.02, "open-dcoder": 0.49, "diffusion-gemma": 25.25}
MASKED = [e for e in CATALOGUE if isinstance(e.config, ModelConfig)]
GEMMA_ID = "google/diffusiongemma-26B-A4B-it"
GEMMA_CONFIG = Path(__file__).parent / "data" / "fit" / "diffusiongemma-26B-A4B-it" / "config.json"


@pytest.mark.parametrize("entry", CATALOGUE, ids=lambda e: e.id)
def test_entries_have_valid_ids_sizes_and_settings(entry):
    assert hub.parse_id(entry.id) == (entry.id, None)
    assert round(entry.parameters / 1e9, 2) == BILLIONS[entry.family]
    SamplerConfig(**{**SAMPLER_DEFAULTS, **entry.sampler.settings()})  # raises on an invalid setting
    assert not entry.checked  # nothing has been downloaded on this machine: say so
    if entry.format == "safetensors":
        assert entry.loads and entry.quantize is None
    else:  # a quantized checkpoint names what it loads as, and only NVFP4 (no kernel here) does not load
        assert entry.quantize in ("int8", "int4") and entry.loads == ("NVFP4" not in entry.format)


def test_red_hat_quantized_diffusion_gemmas_are_listed_with_their_memory():
    fp8, nvfp4 = catalogue.find("RedHatAI/diffusiongemma-26B-A4B-it-FP8-dynamic"), catalogue.find(
        "redhatai/diffusiongemma-26b-a4b-it-nvfp4")
    assert fp8.loads and fp8.quantize == "int8" and fp8.shape == catalogue.find(GEMMA_ID).shape
    assert not nvfp4.loads
    assert catalogue.memory(fp8, "int8") == catalogue.memory(catalogue.find(GEMMA_ID), "int8")


@pytest.mark.parametrize("entry", MASKED, ids=lambda e: e.id)
def test_masked_entries_are_loadable_families(entry):
    assert entry.family in FAMILIES and entry.shape.family == entry.family
    assert entry.shape.shift == (entry.family != "llada")


def test_diffusion_gemma_is_the_reference_shape_with_the_checkpoints_sampler():
    gemma = find(GEMMA_ID)
    assert gemma is not None and gemma.family == "diffusion-gemma" and gemma.mask_id is None
    # the catalogue's second-hand shape is the reference's config.json (tests/data), vision tower aside
    assert gemma.shape == GemmaConfig.from_hf(json.loads(GEMMA_CONFIG.read_text()))
    assert gemma.sampler.settings() == {}  # its generation_config.json decides; a user's steps carry over
    assert sampler_config(SamplerOptions(), GEMMA_ID, masked=False) == SamplerConfig(steps=None)
    assert sampler_config(SamplerOptions(steps=16), GEMMA_ID, masked=False).steps == 16


def test_ids_are_unique_and_cover_the_reference():
    ids = [e.id for e in CATALOGUE]
    assert len(set(ids)) == len(ids)
    for name in ("Dream-Coder-v0-Instruct-7B", "DiffuCoder-7B-Instruct", "DreamOn-v0-7B", "LLaDA-8B-Instruct",
                 "open-dcoder-0.5B", "diffusiongemma-26B-A4B-it"):
        assert any(i.endswith("/" + name) for i in ids)


def test_find_by_id_revision_or_cache_folder(tmp_path, tiny_checkpoint):
    entry = find("dream-org/dreamon-v0-7b@main")
    assert entry is not None and entry.id == "Dream-org/DreamOn-v0-7B"
    snapshot = write_hub_cache(tmp_path, "apple/DiffuCoder-7B-cpGRPO", tiny_checkpoint)
    assert find(snapshot).id == "apple/DiffuCoder-7B-cpGRPO"
    assert find("org/unknown") is None and find(tiny_checkpoint) is None and find(None) is None


def test_lines_one_per_entry():
    header, *rows = lines()
    head = ["id", "family", "params", "format", "bf16", "int8", "int4", "loads", "context"]
    assert header.split()[:9] == head
    assert len(rows) == len(CATALOGUE)
    dream = next(r for r in rows if r.startswith("Dream-org/Dream-Coder-v0-Instruct-7B "))
    # bf16: weights 2 x 7.616B = 15.23 GB, KV cache 2 x 28 layers x 4 x 128 x 2048 positions x 2 = 0.12 GB,
    # working: 7 fp32 copies of a 128 x 152,064 canvas's logits = 0.55 GB. int4: the untied head stays int8
    memory = ["15.9", "GB", "8.8", "GB", "5.8", "GB"]
    assert dream.split()[1:12] == ["dream", "7.62B", "safetensors", *memory, "yes", "2048"]
    assert "151666" in dream and "shifted" in dream and "entropy T=0.1 top-p=0.95" in dream
    assert all("not checked" in r for r in rows)


def test_models_shows_the_memory_each_needs(capsys):
    assert main(["models"]) == 0
    gemma = next(r for r in capsys.readouterr().out.splitlines() if r.startswith(GEMMA_ID + " "))
    # 50.50 GB of bf16 weights, 0.25 GB of cache at 2,048 positions, 1.88 GB of logits (7 fp32 copies of
    # 256 x 262,144); int4: 14.76 GB of weights (tests/test_fit.py counts them by hand)
    memory = ["52.6", "GB", "28.2", "GB", "16.9", "GB"]
    assert gemma.split()[1:11] == ["diffusion-gemma", "25.25B", "safetensors", *memory, "yes"]
    assert "none" in gemma.split() and "block" in gemma.split() and "entropy bound 0.1, 48 steps" in gemma


def test_a_format_the_engine_cannot_load_yet_says_so(monkeypatch):
    nvfp4 = Entry("org/diffusiongemma-NVFP4", "diffusion-gemma", catalogue.DIFFUSION_GEMMA_26B, None, None,
                  "", catalogue.GEMMA_SAMPLING, "a test", format="compressed-tensors NVFP4", quantize="int4")
    assert not nvfp4.loads
    monkeypatch.setattr(catalogue, "CATALOGUE", (nvfp4,))
    row = lines()[1].split()
    # only the packed weights it loads as have a figure: the same as the bf16 checkpoint with --quantize int4
    assert row[3:10] == ["compressed-tensors", "NVFP4", "-", "-", "16.9", "GB", "not"] and row[10] == "yet"


@pytest.mark.parametrize("form, packing", [("gguf Q4_K_M", "int4"), ("gguf Q8_0", "int8"),
                                           ("compressed-tensors FP8-dynamic", "int8"),
                                           ("compressed-tensors W4A16", "int4")])
def test_gguf_and_compressed_tensors_formats_load(form, packing, monkeypatch):
    # engine/formats/ reads them (tests/test_formats_gguf.py, tests/test_formats_ct.py)
    entry = Entry("org/diffusiongemma-quantized", "diffusion-gemma", catalogue.DIFFUSION_GEMMA_26B, None,
                  None, "", catalogue.GEMMA_SAMPLING, "a test", format=form, quantize=packing)
    assert entry.loads
    monkeypatch.setattr(catalogue, "CATALOGUE", (entry,))
    assert lines()[1].split()[9] == "yes"


def test_precedence_user_then_catalogue_then_builtin(tmp_path, tiny_checkpoint):
    instruct = "GSAI-ML/LLaDA-8B-Instruct"  # recommends T=0, gumbel, blocks of 32
    chosen = sampler_config(SamplerOptions(temperature=0.5, tokens_per_step=3), instruct)
    assert chosen.temperature == 0.5 and chosen.tokens_per_step == 3  # the user's
    assert chosen.gumbel and chosen.block_size == 32  # the catalogue's
    assert chosen.threshold == SAMPLER_DEFAULTS["threshold"] == 0.9  # built in
    assert sampler_config(SamplerOptions(block_size=None), instruct).block_size is None  # set, to None
    snapshot = write_hub_cache(tmp_path, "apple/DiffuCoder-7B-Instruct", tiny_checkpoint)
    from_cache = sampler_config(SamplerOptions(), snapshot)
    assert (from_cache.confidence, from_cache.temperature, from_cache.top_p) == ("entropy", 0.4, 0.95)
    assert sampler_config(SamplerOptions(), tiny_checkpoint) == SamplerConfig(**SAMPLER_DEFAULTS)
