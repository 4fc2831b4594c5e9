"""GGUF files (engine/formats/gguf.py, ggml.py): written by the gguf package's own GGUFWriter
(tests/gguf_checkpoints.py), the block decoders against gguf's reference ones, the packed weights a loaded
model holds against gguf's decoding of the file, canvas logits against the fp32 model, completions through
`unmask complete`, and the one-line refusals."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open
from torch import nn

import engine
from engine.errors import CheckpointError
from engine.families import family_for
from engine.formats import gguf as formats_gguf
from engine.formats.ggml import BLOCKS, INT4, decode, int4
from engine.gemma.config import GemmaConfig
from engine.gemma.load import checkpoint_name
from engine.int4 import Int4Linear
from engine.plan import find_shape
from engine.quantize import Int8Linear, packed_modules
from lsp_server import models
from lsp_server.cli import main
from tests.gguf_checkpoints import q4_k, write_gguf
from tests.test_int4 import (
    ROOT,
    agreement,
    dequantized,
    dream_canvas_rows,
    gemma_canvas,
    gemma_logits,
    quantized_layer_bytes,
)
from tests.test_lsp_server import PY
from tests.test_quantize import state_bytes

gguf = pytest.importorskip("gguf")
EMBEDDED = ROOT / "engine" / "default_model"  # trained, Dream layout: every width a multiple of 256
KINDS = ("Q8_0", "Q4_K")


@pytest.fixture(scope="module")
def files(tmp_path_factory, wide_gemma) -> dict[tuple[str, str], Path]:
    """(family, kind) -> a GGUF file: the embedded Dream model and a calm tiny DiffusionGemma, in Q8_0 and
    Q4_K; Dream also with attn_v in Q8_0 beside Q4_K (a mixed fused q/k/v, as Q4_K_M mixes types)."""
    root = tmp_path_factory.mktemp("gguf")
    made = {(family, kind): write_gguf(source, root / f"{family}-{kind}" / "model.gguf", kind)
            for family, source in (("dream", EMBEDDED), ("gemma", wide_gemma)) for kind in KINDS}
    mixed = root / "dream-mixed" / "model.gguf"
    made["dream", "mixed"] = write_gguf(EMBEDDED, mixed, "Q4_K", {"attn_v": "Q8_0"})
    return made


def reference_blocks(kind: str, rows: int = 6, width: int = 512) -> tuple[np.ndarray, np.ndarray]:
    # (blocks, the weight they were made from) by gguf's own quantizers; Q4_K by tests/gguf_checkpoints.py,
    # Q6_K (which nothing here writes) as random bytes with a sane fp16 d
    w = np.random.default_rng(0).standard_normal((rows, width)).astype(np.float32)
    if kind == "Q4_K":
        return q4_k(w), w
    if kind == "Q6_K":
        b = np.random.default_rng(1).integers(0, 256, (rows, width // 256, BLOCKS[kind][1]), dtype=np.uint8)
        b[..., 208:210] = np.frombuffer(np.float16(0.01).tobytes(), np.uint8)
        return b.reshape(rows, -1), w
    return gguf.quants.quantize(w, gguf.GGMLQuantizationType[kind]), w


@pytest.mark.parametrize("kind", sorted(BLOCKS))
def test_block_types_decode_as_the_gguf_reference(kind):
    blocks, w = reference_blocks(kind)
    want = gguf.quants.dequantize(blocks, gguf.GGMLQuantizationType[kind])
    got = decode(torch.from_numpy(blocks.copy()), kind).numpy()
    assert np.array_equal(got, want)
    if kind in INT4:  # the values Int4Linear takes: q, and W = (q - 8) * scale + offset per group of 32
        packed, scale, offset = int4(torch.from_numpy(blocks.copy()), kind)
        q = torch.stack([packed & 15, packed >> 4], -1).flatten(-2).float().unflatten(-1, (-1, 32))
        mapped = ((q - 8) * scale[..., None] + offset[..., None]).flatten(-2).numpy()
        assert np.abs(mapped - want).max() <= 1e-6 * np.abs(want).max()
    if kind == "Q4_K":  # the test's own encoder is a sound Q4_K: within a 4-bit step of each sub-block
        steps = np.repeat(np.ptp(w.reshape(6, -1, 32), -1) / 15, 32, -1).reshape(w.shape)
        assert np.all(np.abs(want - w) <= steps * 1.2)


def test_names_map_both_ways(wide_gemma):
    for folder, layout in ((EMBEDDED, formats_gguf.DREAM), (wide_gemma, formats_gguf.GEMMA)):
        with safe_open(folder / "model.safetensors", "pt") as f:
            names = [n for n in f.keys() if "vision" not in n]
        for name in names:
            assert formats_gguf.hf_name(formats_gguf.gguf_name(name, layout), layout) == name
    dream, gemma = formats_gguf.DREAM, formats_gguf.GEMMA
    pairs = [("blk.3.attn_q.weight", "model.layers.3.self_attn.q_proj.weight", dream),
             ("blk.0.ffn_norm.weight", "model.layers.0.post_attention_layernorm.weight", dream),
             ("blk.2.ffn_gate_up_exps.weight", "model.decoder.layers.2.experts.gate_up_proj", gemma),
             ("blk.1.ffn_gate_inp.scale", "model.decoder.layers.1.router.scale", gemma),
             ("enc.blk.1.layer_output_scale.weight", "model.encoder.language_model.layers.1.layer_scalar",
              gemma)]
    for ours, theirs, layout in pairs:
        assert formats_gguf.hf_name(ours, layout) == theirs and formats_gguf.gguf_name(theirs, layout) == ours


def file_weight(file: Path, names: tuple[str, ...], layout: str) -> torch.Tensor:
    # gguf's own decoding of the tensors a packed module holds, concatenated along the output channels
    tensors = {t.name: t for t in gguf.GGUFReader(file).tensors}
    parts = []
    for name in names:
        t = tensors[formats_gguf.gguf_name(name, layout)]
        parts.append(torch.from_numpy(gguf.quants.dequantize(t.data, t.tensor_type).copy()))
    return torch.cat(parts, -2)


def held(module: nn.Module) -> torch.Tensor:
    # the weight [E?, out, in] a packed module multiplies by, in fp32
    if isinstance(module, Int8Linear):
        return module.weight.float() * module.scale.float()[..., None]
    if module.experts is None:
        return module.dequantize()
    return torch.stack([module.dequantize(e) for e in range(module.experts)])


@pytest.mark.parametrize("family, kind", [("dream", "Q8_0"), ("dream", "Q4_K"), ("dream", "mixed"),
                                          ("gemma", "Q8_0"), ("gemma", "Q4_K")])
def test_a_loaded_model_holds_the_files_blocks(files, family, kind):
    # every packed layer and expert stack against gguf's decoding of the same tensors (the name table, the
    # fusing of q/k/v and the expert stacks, the block mappings): Q4_K exactly up to its scale and offset in
    # bf16; Q8_0 (and the int4 parts of a fused layer holding a Q8_0 one) within half an int8 step per row
    model = engine.load_model(files[family, kind])
    layout = formats_gguf.DREAM if family == "dream" else formats_gguf.GEMMA
    network = model.model
    theirs = model.family.weights(network.cfg) if family == "dream" else None
    for ours, (_, module) in packed_modules(network).items():
        names = (theirs[ours],) if family == "dream" else (checkpoint_name(ours),)
        names = names[0] if isinstance(names[0], tuple) else names
        want = file_weight(files[family, kind], names, layout)
        got = held(module)
        assert got.shape == want.shape, ours
        four = kind == "Q4_K" or kind == "mixed" and "wqkv" not in ours  # mixed: q, k Q4_K with v Q8_0
        if four:
            assert isinstance(module, Int4Linear) and module.group == 32, ours
            pairs = module.scale_offset.float()  # [E?, groups, out, 2]: bf16's 8 bits of each
            bound = (8 * pairs[..., 0].abs() + pairs[..., 1].abs()).transpose(-1, -2) / 128
            assert torch.all((got - want).abs() <= bound.repeat_interleave(32, -1) + 1e-7), ours
        else:
            assert isinstance(module, Int8Linear), ours
            assert torch.all((got - want).abs() <= module.scale.float()[..., None] * 0.5001 + 1e-7), ours
    if family == "gemma":  # the routers and the embedding stay wide, as the file's F32 and F16
        assert isinstance(network.layers[0].router.proj, nn.Linear)
        embed = file_weight(files[family, kind], ("model.decoder.embed_tokens.weight",), layout)
        assert torch.equal(network.embed_tokens.weight, embed)


@pytest.fixture(scope="module")
def dream_rows() -> torch.Tensor:
    # as tests/test_int4.py: twelve of the engine's files, 120 tokens, a canvas of 8 masks, 32 tokens after
    return dream_canvas_rows(engine.load_model())


@pytest.mark.parametrize("kind, least", [("Q8_0", 0.95), ("Q4_K", 0.85)])
def test_canvas_logits_agree_with_fp32_on_the_embedded_model(files, dream_rows, kind, least):
    # the embedded model is trained, so its agreement means something. Measured over the 96 canvas
    # positions: Q8_0 0.990 (as --quantize int8), Q4_K 0.948 (groups of 32, the head Q4_K too: the file's)
    want = engine.load_model()(dream_rows)[:, 120:128]
    model = engine.load_model(files["dream", kind])
    assert model.info.quantize == ("int8" if kind == "Q8_0" else "int4")
    assert agreement(want, model(dream_rows)[:, 120:128]) >= least


@pytest.mark.parametrize("kind, least", [("Q8_0", 0.95), ("Q4_K", 0.85)])
def test_canvas_logits_agree_with_fp32_on_a_tiny_diffusion_gemma(files, wide_gemma, kind, least):
    # 4 prompts of 12 tokens, each with a canvas of 32 noise tokens. Measured over the 128 positions: 1.0 for
    # both, since this random model answers its own canvas token at every position (a trained one would
    # not); with that token left out of both argmaxes, 0.94 (Q8_0) and 0.67 (Q4_K): a small change of the
    # residual moves a token to other experts. The arithmetic itself is checked exactly by
    # test_a_loaded_model_holds_the_files_blocks and test_a_gguf_model_computes_what_its_weights_do
    reference = engine.load_model(wide_gemma)
    prompt, canvas = gemma_canvas(reference)
    model = engine.load_model(files["gemma", kind])
    assert model.info.quantize == ("int8" if kind == "Q8_0" else "int4")
    assert agreement(reference.canvas_logits(prompt, canvas), model.canvas_logits(prompt, canvas)) >= least


@pytest.mark.parametrize("family", ["dream", "gemma"])
def test_a_gguf_model_computes_what_its_weights_do(files, family):
    # the Q4_K layers and expert stacks built from the file's blocks (Int4Linear.from_pairs, torch's CPU
    # kernel) against plain fp32 math on the weights they hold: measured 0.6% (Dream) and 0.8%
    # (DiffusionGemma) of the largest logit, the kernel's bf16 activations
    network = engine.load_model(files[family, "Q4_K"]).model
    ids = torch.randint(3, 300, (2, 28), generator=torch.Generator().manual_seed(1))
    forward = (lambda m: m(ids)) if family == "dream" else (lambda m: gemma_logits(m, ids))
    with torch.inference_mode():
        got, want = forward(network), forward(dequantized(network))
    assert (got - want).abs().max() <= 1e-2 * want.abs().max()


def test_packed_weights_stay_packed(files):
    # measured on the loaded tensors: Q4_K's layers hold 0.313 of their bf16 bytes (a byte per two weights,
    # a bf16 scale and offset per 32: Q4_K's own 4.5 bits a weight are 0.28), Q8_0's 0.504
    bf16 = engine.load_model(dtype="bfloat16").model
    wide = dict(bf16.named_modules())
    for kind, kept, most in (("Q4_K", Int4Linear, 0.32), ("Q8_0", Int8Linear, 0.51)):
        layers = quantized_layer_bytes(engine.load_model(files["dream", kind], dtype="bfloat16").model, kept)
        assert layers and sum(layers.values()) <= most * sum(state_bytes(wide[n]) for n in layers)


@pytest.mark.parametrize("family, kind", [("dream", "Q8_0"), ("dream", "Q4_K"), ("gemma", "Q8_0"),
                                          ("gemma", "Q4_K")])
def test_unmask_complete_runs_on_gguf(files, family, kind, tmp_path, capsys, monkeypatch):
    loaded = []
    load = models.load
    monkeypatch.setattr(models, "load", lambda opts: loaded.append(load(opts)) or loaded[-1])
    source = tmp_path / "a.py"
    source.write_text(PY)
    file = files[family, kind]
    args = ["complete", str(source), "--line", "4", "--col", "12", "--model",
            str(file if family == "dream" else file.parent), "--threads", "1",
            "--options", '{"completion": {"maxTokens": 8}}', "--json"]
    assert main(args) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["start"] == {"line": 4, "col": 12} and 0 <= result["confidence"] <= 1
    assert loaded[0].info.quantize == ("int8" if kind == "Q8_0" else "int4")


def test_the_config_comes_from_the_metadata_or_a_config_json_beside_it(files, wide_gemma, tmp_path):
    gemma = formats_gguf.config(files["gemma", "Q4_K"])
    saved = json.loads((wide_gemma / "config.json").read_text())
    assert GemmaConfig.from_hf(gemma) == GemmaConfig.from_hf(saved)  # float32 metadata read back as written
    dream = formats_gguf.config(files["dream", "Q8_0"])
    original = json.loads((EMBEDDED / "config.json").read_text())
    family = family_for(dream)
    assert family.name == "dream" and family.config(dream) == family.config(original)
    special = ("mask_token_id", "eos_token_id", "pad_token_id", "bos_token_id")
    assert [dream[k] for k in special] == [original[k] for k in special]
    beside = write_gguf(EMBEDDED, tmp_path / "beside" / "model.gguf", "Q8_0", config_beside=True)
    assert formats_gguf.config(beside) == original
    assert find_shape(str(files["gemma", "Q8_0"]))[0] == GemmaConfig.from_hf(gemma)  # `unmask fit` too


def write_raw(file: Path, arch: str, tensors: dict[str, np.ndarray], kind: str | None = None) -> Path:
    file.parent.mkdir(parents=True, exist_ok=True)
    writer = gguf.GGUFWriter(file, arch)
    for name, w in tensors.items():
        if kind is None:
            writer.add_tensor(name, w)
        else:
            qtype = gguf.GGMLQuantizationType[kind]
            writer.add_tensor(name, gguf.quants.quantize(w, qtype), raw_dtype=qtype)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return file


def test_what_the_engine_cannot_read_is_refused_in_one_line(files, tmp_path):
    w = np.ones((32, 64), dtype=np.float32)
    for folder in ("a", "c"):  # the config beside the file: the refusal is the tensor's
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "config.json").write_text((EMBEDDED / "config.json").read_text())
    cases = [
        (write_raw(tmp_path / "a" / "model.gguf", "dream", {"blk.0.attn_q.weight": w}, "MXFP4"),
         r"model.gguf: tensor 'blk.0.attn_q.weight' has type MXFP4, which unmask does not read \(supported"),
        (write_raw(tmp_path / "b" / "model.gguf", "llama", {"token_embd.weight": w}),
         r"model.gguf: GGUF architecture 'llama' is not supported \(supported: dream, diffusion-gemma\)"),
        (write_raw(tmp_path / "c" / "model.gguf", "dream", {"blk.0.attn_qkv.weight": w}),
         r"model.gguf: tensor 'blk.0.attn_qkv.weight' has no counterpart in the dream layout"),
        (write_raw(tmp_path / "d" / "model.gguf", "dream", {"token_embd.weight": w}),
         r"model.gguf: missing metadata dream.embedding_length \(or a config.json beside it\)"),
    ]
    (tmp_path / "e").mkdir()
    (tmp_path / "e" / "model.gguf").write_bytes(b"not a gguf file at all")
    cases.append((tmp_path / "e" / "model.gguf", r"model.gguf: not a readable GGUF file"))
    for name in ("one.gguf", "two.gguf"):
        (tmp_path / "f" / name).parent.mkdir(exist_ok=True)
        (tmp_path / "f" / name).write_bytes(files["dream", "Q8_0"].read_bytes())
    cases.append((tmp_path / "f", r"several GGUF files \(one.gguf, two.gguf\); pass the one to load"))
    for path, message in cases:
        with pytest.raises(CheckpointError, match=message) as refused:
            engine.load_model(path)
        assert "\n" not in str(refused.value)
