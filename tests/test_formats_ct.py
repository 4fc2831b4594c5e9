"""compressed-tensors checkpoints (engine/formats/compressed.py): written by the compressed-tensors package
itself (tests/ct_checkpoints.py), the packed weights a loaded model holds against the package's own
decompression, canvas logits against the fp32 model, completions through `unmask complete`, the `ignore`
list, the one-line refusals, and that loading needs neither compressed-tensors nor transformers."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file
from torch import nn

import engine
from engine.errors import CheckpointError
from engine.gemma.load import checkpoint_name
from engine.int4 import Int4Linear
from engine.quantize import Int8Linear, packed_modules
from lsp_server import models
from lsp_server.cli import main
from tests.test_formats_gguf import held
from tests.test_int4 import ROOT, agreement, dequantized, dream_canvas_rows, gemma_canvas, gemma_logits
from tests.test_lsp_server import PY

pytest.importorskip("compressed_tensors")
EMBEDDED = ROOT / "engine" / "default_model"  # trained, Dream layout, bf16
# (scheme, group size): FP8 dynamic per channel; int4 symmetric and asymmetric, in groups of 128 for the
# embedded model (compressed-tensors' default) and 64 and 32 for the tiny DiffusionGemma, whose experts are
# 256 wide
SCHEMES = {"dream": (("FP8_DYNAMIC", None), ("W4A16", None), ("W4A16_ASYM", None)),
           "gemma": (("FP8_DYNAMIC", None), ("W4A16", 64), ("W4A16_ASYM", 32))}


@pytest.fixture(scope="module")
def folders(tmp_path_factory, wide_gemma) -> dict[tuple[str, str], Path]:
    from tests.ct_checkpoints import write_compressed

    root = tmp_path_factory.mktemp("compressed")
    sources = {"dream": EMBEDDED, "gemma": wide_gemma}
    return {(family, scheme): write_compressed(sources[family], root / f"{family}-{scheme}", scheme, group)
            for family, schemes in SCHEMES.items() for scheme, group in schemes}


def file_weight(folder: Path, name: str) -> torch.Tensor:
    """compressed-tensors' own decompression of a full-precision weight name: a linear layer's, or a fused
    expert stack's from its experts' linears (gate rows, then up rows, per expert)."""
    from compressed_tensors.compressors.base import BaseCompressor
    from compressed_tensors.quantization import QuantizationConfig

    tensors = load_file(folder / "model.safetensors")
    saved = json.loads((folder / "config.json").read_text())["quantization_config"]
    config = QuantizationConfig.model_validate(saved)
    scheme = config.config_groups["group_0"]

    def linear(module: str) -> torch.Tensor:
        state = {k.rpartition(".")[2]: v for k, v in tensors.items() if k.startswith(module + ".weight")}
        if "weight_scale" not in state:  # left unquantized (`ignore`)
            return state["weight"].float()
        compressor = BaseCompressor.get_value_from_registry(config.format)
        return compressor.decompress(state, scheme)["weight"].float()

    if name.endswith("experts.gate_up_proj"):
        stack = name.removesuffix(".gate_up_proj")
        experts = sum(k.startswith(f"{stack}.") and k.endswith("down_proj.weight_scale") for k in tensors)
        return torch.stack([torch.cat([linear(f"{stack}.{e}.gate_proj"), linear(f"{stack}.{e}.up_proj")])
                            for e in range(experts)])
    if name.endswith("experts.down_proj"):
        stack = name.removesuffix(".down_proj")
        experts = sum(k.startswith(f"{stack}.") and k.endswith("down_proj.weight_scale") for k in tensors)
        return torch.stack([linear(f"{stack}.{e}.down_proj") for e in range(experts)])
    return linear(name.removesuffix(".weight"))


@pytest.mark.parametrize("family, scheme", [(f, s) for f, schemes in SCHEMES.items() for s, _ in schemes])
def test_a_loaded_model_holds_the_files_weights(folders, family, scheme):
    # every packed layer and expert stack against compressed-tensors' decompression of the same weights
    # (rounded to the file's bf16 where the checkpoint is bf16, the embedded model): W4A16 exactly up to its
    # scale and offset in bf16; FP8 within half an int8 step per output channel
    folder = folders[family, scheme]
    model = engine.load_model(folder)
    network = model.model
    theirs = model.family.weights(network.cfg) if family == "dream" else None
    group = dict(SCHEMES[family])[scheme] or 128
    for ours, (_, module) in packed_modules(network).items():
        names = theirs[ours] if family == "dream" else checkpoint_name(ours)
        names = (names,) if isinstance(names, str) else names
        want = torch.cat([file_weight(folder, n) for n in names], -2)
        got = held(module)
        assert got.shape == want.shape, ours
        rounding = want.abs() / 128 if family == "dream" else 0  # the package decompresses in bf16 there
        if scheme == "FP8_DYNAMIC":
            assert isinstance(module, Int8Linear), ours
            bound = module.scale.float()[..., None] * 0.5001
        else:
            assert isinstance(module, Int4Linear) and module.group == group, ours
            pairs = module.scale_offset.float()
            bound = ((8 * pairs[..., 0].abs() + pairs[..., 1].abs()) / 128).transpose(-1, -2)
            bound = bound.repeat_interleave(group, -1)
        assert torch.all((got - want).abs() <= bound + rounding + 1e-7), ours
    # the `ignore` list: the layers it names load as the file holds them, wide
    ignored = json.loads((folder / "config.json").read_text())["quantization_config"]["ignore"]
    if family == "dream":
        assert "lm_head" in ignored and isinstance(network.head, nn.Linear)
        assert torch.equal(network.head.weight, file_weight(folder, "lm_head.weight"))
    else:
        assert any("router" in n for n in ignored) and isinstance(network.layers[0].router.proj, nn.Linear)
        assert isinstance(network.layers[0].experts.gate_up_proj, Int8Linear if scheme == "FP8_DYNAMIC"
                          else Int4Linear)


@pytest.fixture(scope="module")
def dream_rows() -> torch.Tensor:
    return dream_canvas_rows(engine.load_model())


@pytest.mark.parametrize("scheme, least", [("FP8_DYNAMIC", 0.95), ("W4A16", 0.85), ("W4A16_ASYM", 0.85)])
def test_canvas_logits_agree_with_fp32_on_the_embedded_model(folders, dream_rows, scheme, least):
    # as tests/test_int4.py, over the 96 canvas positions: FP8 1.0, W4A16 0.948, W4A16_ASYM 0.969 (groups of
    # 128, the head left bf16 by the `ignore` list)
    want = engine.load_model()(dream_rows)[:, 120:128]
    model = engine.load_model(folders["dream", scheme])
    assert model.info.quantize == ("int8" if scheme == "FP8_DYNAMIC" else "int4")
    assert agreement(want, model(dream_rows)[:, 120:128]) >= least


@pytest.mark.parametrize("scheme, least", [("FP8_DYNAMIC", 0.95), ("W4A16", 0.85), ("W4A16_ASYM", 0.85)])
def test_canvas_logits_agree_with_fp32_on_a_tiny_diffusion_gemma(folders, wide_gemma, scheme, least):
    # 4 prompts of 12 tokens and canvases of 32 noise tokens. Measured over the 128 positions: 1.0 for all
    # three, since this random model answers its own canvas token at every position; with that token left
    # out of both argmaxes, FP8 0.84, W4A16 0.59, W4A16_ASYM 0.62 (a token moved to other experts). The
    # arithmetic is checked by test_a_loaded_model_holds_the_files_weights and the test below
    reference = engine.load_model(wide_gemma)
    prompt, canvas = gemma_canvas(reference)
    model = engine.load_model(folders["gemma", scheme])
    assert agreement(reference.canvas_logits(prompt, canvas), model.canvas_logits(prompt, canvas)) >= least


def test_a_compressed_gemma_computes_what_its_weights_do(folders):
    # W4A16 in groups of 64: the layers and expert stacks against fp32 math on the weights they hold
    network = engine.load_model(folders["gemma", "W4A16"]).model
    ids = torch.randint(3, 300, (2, 28), generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        got, want = gemma_logits(network, ids), gemma_logits(dequantized(network), ids)
    assert (got - want).abs().max() <= 1e-2 * want.abs().max()


@pytest.mark.parametrize("family, scheme",
                         [("dream", "W4A16"), ("gemma", "FP8_DYNAMIC"), ("gemma", "W4A16")])
def test_unmask_complete_runs_on_compressed_tensors(folders, family, scheme, tmp_path, capsys, monkeypatch):
    loaded = []
    load = models.load
    monkeypatch.setattr(models, "load", lambda opts: loaded.append(load(opts)) or loaded[-1])
    source = tmp_path / "a.py"
    source.write_text(PY)
    args = ["complete", str(source), "--line", "4", "--col", "12", "--model", str(folders[family, scheme]),
            "--threads", "1", "--options", '{"completion": {"maxTokens": 8}}', "--json"]
    assert main(args) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["start"] == {"line": 4, "col": 12} and 0 <= result["confidence"] <= 1
    assert loaded[0].info.quantize == ("int8" if scheme == "FP8_DYNAMIC" else "int4")


def copy_of(folder: Path, to: Path, config=None, tensors=None) -> Path:
    # the checkpoint with its quantization_config or tensors changed
    to.mkdir()
    for f in folder.iterdir():
        (to / f.name).write_bytes(f.read_bytes())
    if config is not None:
        c = json.loads((folder / "config.json").read_text())
        config(c["quantization_config"])
        (to / "config.json").write_text(json.dumps(c))
    if tensors is not None:
        state = load_file(folder / "model.safetensors")
        tensors(state)
        save_file(state, str(to / "model.safetensors"))
    return to


def test_what_the_engine_cannot_read_is_refused_in_one_line(folders, tmp_path):
    from tests.ct_checkpoints import write_compressed

    w4 = folders["dream", "W4A16"]
    q = "model.layers.0.self_attn.q_proj"
    cases = [
        (write_compressed(EMBEDDED, tmp_path / "w2", "W2A16"),
         r"model.safetensors: tensor 'model.layers.0.self_attn.q_proj.weight' is compressed-tensors "
         r"pack-quantized int2 group \(config group group_0\), which unmask does not read \(supported: "),
        (copy_of(w4, tmp_path / "ignored", config=lambda c: c["ignore"].append("re:.*q_proj")),
         rf"model.safetensors: tensor '{q}.weight' is stored quantized but quantization_config.ignore lists"),
        (copy_of(w4, tmp_path / "untargeted", config=lambda c: c["config_groups"]["group_0"].update(
            targets=["re:.*mlp.*"])),
         rf"model.safetensors: tensor '{q}.weight' is stored quantized but no quantization_config"),
        (copy_of(w4, tmp_path / "reordered", tensors=lambda s: s.update(
            {f"{q}.weight_g_idx": torch.arange(256).flip(0).int() // 128})),
         rf"model.safetensors: tensor '{q}.weight_g_idx' reorders the input channels"),
    ]
    for folder, message in cases:
        with pytest.raises(CheckpointError, match=message) as refused:
            engine.load_model(folder)
        assert "\n" not in str(refused.value)


def test_loading_needs_neither_compressed_tensors_nor_transformers(folders):
    # the package only writes the tests' checkpoints: the engine reads them with safetensors and its mapping
    child = ("import sys, engine\n"
             f"m = engine.load_model({str(folders['gemma', 'W4A16'])!r})\n"
             "print(m.info.quantize, 'compressed_tensors' in sys.modules, 'transformers' in sys.modules)\n")
    done = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, timeout=120,
                          env={"PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "PATH": ""})
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["int4", "False", "False"]
