import pytest

from engine import SamplerConfig, hub
from engine.catalogue import CATALOGUE, find, lines
from engine.families import FAMILIES
from lsp_server.models import sampler_config
from lsp_server.options import SAMPLER_DEFAULTS, SamplerOptions
from tests.test_hub import write_hub_cache

# published sizes (the model cards' "7B", "8B", "0.5B" rounded from these), against our parameter counts
BILLIONS = {"dream": 7.62, "llada": 8.02, "open-dcoder": 0.49}


@pytest.mark.parametrize("entry", CATALOGUE, ids=lambda e: e.id)
def test_entries_are_loadable_families_with_valid_settings(entry):
    assert hub.parse_id(entry.id) == (entry.id, None)
    assert entry.family in FAMILIES and entry.shape.family == entry.family
    assert entry.shape.shift == (entry.family != "llada")
    assert round(entry.parameters / 1e9, 2) == BILLIONS[entry.family]
    SamplerConfig(**{**SAMPLER_DEFAULTS, **entry.sampler.settings()})  # raises on an invalid setting
    assert not entry.checked  # nothing has been downloaded on this machine: say so


def test_ids_are_unique_and_cover_the_reference():
    ids = [e.id for e in CATALOGUE]
    assert len(set(ids)) == len(ids)
    for name in ("Dream-Coder-v0-Instruct-7B", "DiffuCoder-7B-Instruct", "DreamOn-v0-7B", "LLaDA-8B-Instruct",
                 "open-dcoder-0.5B"):
        assert any(i.endswith("/" + name) for i in ids)


def test_find_by_id_revision_or_cache_folder(tmp_path, tiny_checkpoint):
    entry = find("dream-org/dreamon-v0-7b@main")
    assert entry is not None and entry.id == "Dream-org/DreamOn-v0-7B"
    snapshot = write_hub_cache(tmp_path, "apple/DiffuCoder-7B-cpGRPO", tiny_checkpoint)
    assert find(snapshot).id == "apple/DiffuCoder-7B-cpGRPO"
    assert find("org/unknown") is None and find(tiny_checkpoint) is None and find(None) is None


def test_lines_one_per_entry():
    header, *rows = lines()
    assert header.split()[:5] == ["id", "family", "params", "bf16", "int8"]
    assert len(rows) == len(CATALOGUE)
    dream = next(r for r in rows if r.startswith("Dream-org/Dream-Coder-v0-Instruct-7B "))
    assert dream.split()[1:7] == ["dream", "7.62B", "15.3", "GB", "8.3", "GB"]
    assert "151666" in dream and "shifted" in dream and "entropy T=0.1 top-p=0.95" in dream
    assert all("not checked" in r for r in rows)


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
