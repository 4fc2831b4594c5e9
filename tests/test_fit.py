import json
import shutil
from pathlib import Path

import pytest
import torch

import engine
import engine.registry
from engine import fit, quantize
from engine.catalogue import find
from engine.gemma.config import GemmaConfig
from engine.gemma.model import DiffusionGemma
from engine.model import Transformer
from engine.plan import plan
from engine.quantize import quantize_model, quantized_names, stacked_names
from lsp_server.cli import main
from tests.checkpoints import tiny_config
from tests.gemma_checkpoints import text_config
from tests.test_hub import cache, write_hub_cache  # noqa: F401 (cache: the offline Hub-cache fixture)

SHAPES = {
    "dream": tiny_config(300),
    "tied": tiny_config(300, tie_word_embeddings=True),
    "llada": tiny_config(300, qkv_bias=False, shift=False, family="llada", head_dim=16),
}
TINY_GEMMA = GemmaConfig.from_hf({"text_config": text_config(300)})  # sliding and full layers, 4 experts
# google/diffusiongemma-26B-A4B-it's config.json as ../shared/reference/diffusion-gemma.md gives it
GEMMA_26B = Path(__file__).parent / "data" / "fit" / "diffusiongemma-26B-A4B-it"

# its text weights counted by hand from the reference (hidden 2816, 25 sliding layers with 16 query and 8 KV
# heads of 256 and their own V, 5 full ones with 16 query and 2 KV heads of 512 and K = V; dense MLP 2112 in
# every layer and in self-conditioning; 128 experts of width 704; vocabulary 262,144, head tied)
H, V, MLP_WIDTH, E, M = 2816, 262144, 2112, 128, 704
SLIDING_ATTN, FULL_ATTN = (4096 + 2048 + 2048 + 4096) * H, (8192 + 1024 + 8192) * H
MLP, EXPERTS, ROUTER = 3 * MLP_WIDTH * H, E * 3 * M * H, E * H + H + E
LINEAR = 25 * SLIDING_ATTN + 5 * FULL_ATTN + 31 * MLP + 30 * EXPERTS  # what int8 and int4 replace
NORMS = 25 * 2 * 256 + 5 * 2 * 512 + 30 * 7 * H + 2 * H  # q/k norms, seven a layer, final, self-conditioning
PARAMETERS = LINEAR + NORMS + 30 * (ROUTER + 2) + V * H  # + routers, layer scalars, the (tied) embedding


def int4_scales(rows: int, inputs: int) -> int:
    # a bf16 scale and offset (4 bytes) per row and group of 128 inputs; 64 where 128 does not divide
    # (2112, 704)
    return rows * inputs // (128 if inputs % 128 == 0 else 64) * 4


INT4_WEIGHTS = LINEAR // 2 + 2 * (PARAMETERS - LINEAR) + (
    25 * (int4_scales(8192, H) + int4_scales(H, 4096)) + 5 * (int4_scales(9216, H) + int4_scales(H, 8192))
    + 31 * (int4_scales(2 * MLP_WIDTH, H) + int4_scales(H, MLP_WIDTH))
    + 30 * E * (int4_scales(2 * M, H) + int4_scales(H, M))
)
GEMMA_26B_SHAPE = GemmaConfig.from_hf(json.loads((GEMMA_26B / "config.json").read_text()))


@pytest.mark.parametrize("name", SHAPES)
def test_parameters_count_what_the_transformer_allocates(name):
    cfg = SHAPES[name]
    with torch.device("meta"):
        model = Transformer(cfg)
    linear, rows, other = fit.parameters(cfg)
    assert linear + other == sum(p.numel() for p in model.parameters())
    modules = dict(model.named_modules())
    replaced = [modules[n].weight for n in quantized_names(model)]  # what engine/quantize.py makes int8
    assert (linear, rows) == (sum(w.numel() for w in replaced), sum(w.shape[0] for w in replaced))


@pytest.mark.parametrize("cfg", [TINY_GEMMA, GEMMA_26B_SHAPE], ids=["tiny", "26b-a4b"])
def test_parameters_count_what_diffusion_gemma_allocates(cfg):
    with torch.device("meta"):
        model = DiffusionGemma(cfg)
    linear, rows, other = fit.parameters(cfg)
    assert linear + other == sum(t.numel() for t in model.state_dict().values())  # buffers too: all resident
    layers = [model.get_submodule(n).weight for n in quantized_names(model, "int4")]
    stacks = [model.get_parameter(n) for n in stacked_names(model)]  # every expert of every layer
    assert linear == sum(w.numel() for w in layers + stacks)
    assert rows == sum(w.shape[0] for w in layers) + sum(w.shape[0] * w.shape[1] for w in stacks)


def test_bytes_per_weight_of_each_format():
    # int8: a byte a weight and a scale per output row in the compute dtype
    assert fit.FORMATS["int8"].bytes(4, 256, torch.bfloat16) == 4 * 256 + 4 * 2
    assert fit.FORMATS["int8"].bytes(4, 256, torch.float32) == 4 * 256 + 4 * 4
    # int4: half a byte, and a bf16 scale and offset per 128 inputs (64 where 128 does not divide)
    assert fit.FORMATS["int4"].bytes(4, 256, torch.bfloat16) == 4 * 128 + 4 * 2 * 2 * 2
    assert fit.FORMATS["int4"].bytes(4, 704, torch.float32) == 4 * 352 + 4 * 11 * 2 * 2
    assert fit.FORMATS["int4"].bytes(4, 3, torch.bfloat16) == 4 * 3 * 2  # an odd width stays wide


def held_bytes(model) -> int:
    # what the model holds, each storage once (a tied head shares the embedding's)
    storages = {t.untyped_storage().data_ptr(): t.untyped_storage() for t in model.state_dict().values()}
    return sum(s.nbytes() for s in storages.values())


def random_weights(model, dtype):
    model = model.to(dtype)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.02)
    return model


@pytest.mark.parametrize("quantize", [None, "int8", "int4"])
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32], ids=["bf16", "fp32"])
@pytest.mark.parametrize("cfg", [SHAPES["dream"], SHAPES["tied"], TINY_GEMMA], ids=["dream", "tied", "gemma"])
def test_weight_bytes_are_what_the_quantized_model_holds(cfg, dtype, quantize):
    network = Transformer if cfg is not TINY_GEMMA else DiffusionGemma
    torch.manual_seed(0)
    model = random_weights(network(cfg), dtype)
    if quantize is not None:
        quantize_model(model, quantize, activations=False)  # no fbgemm copy: weight_bytes leaves it out
    assert held_bytes(model) == fit.weight_bytes(cfg, dtype, quantize)


def test_need_in_bytes():
    cfg = SHAPES["dream"]
    linear, rows, other = fit.parameters(cfg)
    bf16 = fit.need(cfg, torch.bfloat16)
    assert bf16.weights == 2 * (linear + other)
    assert fit.need(cfg, torch.float32).weights == 2 * bf16.weights
    assert fit.need(cfg, torch.bfloat16, "int8").weights == linear + 2 * rows + 2 * other
    # fp32 on an x86 CPU: fbgemm holds a packed copy of each int8 weight beside it
    packed = linear if quantize.FBGEMM else 0
    assert fit.need(cfg, torch.float32, "int8").weights == linear + 4 * rows + 4 * other + packed
    assert fit.need(cfg, torch.float32, "int8", device="cuda").weights == linear + 4 * rows + 4 * other
    # keys and values: 2 layers x 2 kv heads x 8 dims x 512 positions (the model's, below KV_POSITIONS)
    assert bf16.positions == 512 and bf16.kv_cache == 2 * 2 * 2 * 8 * 512 * 2
    assert bf16.working == 0 and bf16.total == bf16.weights + bf16.kv_cache  # the loader's: no activations
    long = tiny_config(300, max_position_embeddings=32768)
    assert fit.need(long, torch.bfloat16).positions == fit.KV_POSITIONS


def test_diffusion_gemma_cache_keeps_a_window_on_sliding_layers():
    # tiny: sliding layers (2 KV heads of 8) keep window - 1 = 3 positions, full ones (1 KV head of 16) all
    need = fit.need(TINY_GEMMA, torch.bfloat16, positions=100)
    assert need.kv_cache == (2 * (2 * 8 * 3) + 2 * (1 * 16 * 100)) * 2 * 2  # 2 layers each, K and V, bf16


def test_the_26b_a4b_in_bf16_and_int4_with_a_4096_token_prompt():
    assert PARAMETERS == 25_250_986_812  # the 25.3B text parameters of the reference (vision tower excluded)
    bf16 = plan(str(GEMMA_26B), context=4096, device="80GB")
    assert bf16.need.weights == 2 * PARAMETERS and abs(bf16.need.weights - 50.5e9) <= 0.02 * 50.5e9
    int4 = plan(str(GEMMA_26B), "int4", context=4096, device="18GB")
    assert int4.need.weights == INT4_WEIGHTS  # 14.76 GB: experts, attention and MLPs in int4
    assert int4.need.positions == 4096 + 256 and int4.need.total < 18e9 and int4.fits  # Google: under 18 GB
    n = int4.need
    assert n.working > 0 and n.total == n.weights + n.kv_cache + n.working


def test_fit_json_has_exactly_the_four_keys(capsys):
    args = ["fit", str(GEMMA_26B), "--quantize", "int4", "--context", "4096", "--json"]
    assert main(args + ["--device", "18GB"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert list(out) == ["weights_bytes", "cache_bytes", "total_bytes", "fits"]
    assert out["weights_bytes"] == INT4_WEIGHTS and out["fits"] is True
    assert out["total_bytes"] > out["weights_bytes"] + out["cache_bytes"]  # working memory counted
    assert main(args + ["--device", "16GB"]) == 1  # does not fit: exit status 1
    assert json.loads(capsys.readouterr().out)["fits"] is False


def test_fit_prints_bytes_and_the_loaders_advice(capsys):
    assert main(["fit", str(GEMMA_26B), "--context", "4096", "--device", "24GB"]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert "diffusion-gemma, 25.25B weights" in lines[0] and "4,096 tokens of context" in lines[0]
    assert lines[1].split()[:3] == ["weights", "50,501,973,624", "bytes"]
    assert [line.split()[0] for line in lines[2:5]] == ["KV", "working", "total"]
    assert lines[-1].startswith("does not fit on 24GB (24.0 GB); it fits with --quantize int4 (16.9 GB)")


def test_a_folder_with_only_config_json(tmp_path, tiny_checkpoint, capsys):
    shutil.copy(tiny_checkpoint / "config.json", tmp_path / "config.json")
    assert main(["fit", str(tmp_path), "--json", "--device", "1GB", "--dtype", "float32"]) == 0
    loaded = engine.load_model(tiny_checkpoint, dtype="float32").model  # the same shape, its weights read
    assert json.loads(capsys.readouterr().out)["weights_bytes"] == held_bytes(loaded)


def test_a_hub_id_from_the_cache_or_the_catalogue(cache, capsys):  # noqa: F811
    write_hub_cache(cache, "org/gemma", GEMMA_26B)  # cached: its config.json alone
    args = ["fit", "org/gemma", "--quantize", "int4", "--context", "4096", "--json", "--device", "18GB"]
    assert main(args) == 0
    assert json.loads(capsys.readouterr().out)["weights_bytes"] == INT4_WEIGHTS
    # not cached, offline: a catalogue id falls back to the catalogue's shape, the same as the file's
    gemma = find("google/diffusiongemma-26B-A4B-it")
    assert gemma is not None
    p = plan(gemma.id, "int4", context=4096, device="18GB")
    assert "catalogue" in p.source and p.need.weights == INT4_WEIGHTS
    with pytest.raises(SystemExit, match=r"^unmask: model 'org/unknown' is not in the Hugging Face cache"):
        main(["fit", "org/unknown"])


def write_config(folder: Path, config) -> Path:
    folder.mkdir(exist_ok=True)
    (folder / "config.json").write_text(config if isinstance(config, str) else json.dumps(config))
    return folder


def test_errors_are_one_line_naming_the_file_and_field(tmp_path):
    dream = json.loads((Path(engine.__file__).parent / "default_model" / "config.json").read_text())
    gemma = json.loads((GEMMA_26B / "config.json").read_text())
    text = gemma["text_config"]
    cases = {
        "no-folder": (None, "checkpoint folder not found"),
        "no-config": ({}, "config.json: not found"),
        "bad-json": ("{vocab", "config.json: not valid JSON"),
        "a-list": ("[1, 2]", "config.json: not a JSON object"),
        "no-hidden": ({k: v for k, v in dream.items() if k != "hidden_size"},
                      "config.json: missing field 'hidden_size'"),
        "bad-hidden": (dream | {"hidden_size": "big"},
                       "config.json: field 'hidden_size' must be a positive integer, got 'big'"),
        "unknown": ({k: v for k, v in dream.items() if k != "architectures"} | {"model_type": "gpt2"},
                    "config.json: unknown model_type 'gpt2'"),
        "gemma-no-experts": (gemma | {"text_config": {k: v for k, v in text.items() if k != "num_experts"}},
                             "config.json: missing field 'text_config.num_experts'"),
        "gemma-no-heads": (gemma | {"text_config": text | {"num_attention_heads": 0}},
                           "config.json: field 'text_config.num_attention_heads' must be a positive integer"),
    }
    for name, (config, expected) in cases.items():
        folder = tmp_path / name
        if config == {}:
            folder.mkdir()
        elif config is not None:
            write_config(folder, config)
        with pytest.raises(SystemExit) as e:
            main(["fit", str(folder), "--device", "1GB"])
        message = str(e.value)
        assert message.startswith(f"unmask: {folder}") and expected in message and "\n" not in message, name
    with pytest.raises(SystemExit, match=r"^unmask: device 'tpu' is not one of cpu, cuda, cuda:N, mps$"):
        main(["fit", str(GEMMA_26B), "--device", "tpu"])


def test_available_memory():
    free = fit.available_bytes("cpu")
    assert free is None or free > 0
    assert fit.available_bytes("mps") is None


def test_a_model_that_fits_loads(tiny_checkpoint, monkeypatch):
    cfg = engine.load_model(tiny_checkpoint).config
    monkeypatch.setattr(fit, "available_bytes", lambda device: fit.need(cfg, torch.float32).total)
    assert engine.load_model(tiny_checkpoint, dtype="float32").config == cfg


def test_a_model_that_cannot_fit_is_refused_before_loading(tiny_checkpoint, monkeypatch):
    monkeypatch.setattr(fit, "available_bytes", lambda device: 1000)

    def never(*args, **kwargs):
        raise AssertionError("weights were read")

    monkeypatch.setattr(engine.registry, "load_transformer", never)
    with pytest.raises(engine.DoesNotFit) as e:
        engine.load_model(tiny_checkpoint, dtype="float32")
    message = str(e.value)
    assert "\n" not in message and repr(str(tiny_checkpoint)) in message
    assert " on cpu in float32 (weights " in message and "but 0.0 GB is available" in message
    assert "nothing smaller fits (least: --quantize int4 --dtype bfloat16" in message


def test_the_refusal_names_what_would_fit(tiny_checkpoint, monkeypatch):
    cfg = engine.load_model(tiny_checkpoint).config
    int8, int4 = (fit.need(cfg, torch.bfloat16, q).total for q in ("int8", "int4"))
    assert int4 < int8 < fit.need(cfg, torch.bfloat16).total
    monkeypatch.setattr(fit, "available_bytes", lambda device: int4)
    with pytest.raises(engine.DoesNotFit, match=r"it fits with --quantize int4 \(0\.0 GB\)$"):
        engine.load_model(tiny_checkpoint, dtype="bfloat16")
    monkeypatch.setattr(fit, "available_bytes", lambda device: int8)
    with pytest.raises(engine.DoesNotFit, match=r"fits with --quantize int8 --dtype bfloat16 \(0\.0 GB\) or "
                                                 r"--quantize int4 --dtype bfloat16 \(0\.0 GB\)$"):
        engine.load_model(tiny_checkpoint, dtype="float32")
