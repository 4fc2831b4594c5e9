"""Parity for the Dream and Open-dCoder layouts (against transformers) and LLaDA (against its published
forward, written out here), and bad checkpoints."""

import json
import math
import shutil
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

import engine
from engine import CheckpointError
from tests.checkpoints import write_tokenizer

transformers = pytest.importorskip("transformers")

VOCAB = 300
SHAPE = dict(
    vocab_size=VOCAB,
    hidden_size=32,
    intermediate_size=64,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    max_position_embeddings=128,
    rms_norm_eps=1e-6,
)


def assert_close(a: torch.Tensor, b: torch.Tensor, atol: float = 1e-4):
    diff = (a.cpu().float() - b.cpu().float()).abs()
    assert diff.max() <= atol, f"max diff {diff.max():.3g}, mean {diff.mean():.3g}"


def bidirectional_logits(ref, ids: torch.Tensor) -> torch.Tensor:
    # an all-true 4D mask turns the reference's causal attention into full attention (is_causal=False)
    full = torch.ones(ids.shape[0], 1, ids.shape[1], ids.shape[1], dtype=torch.bool)
    with torch.no_grad():
        return ref(ids, attention_mask=full).logits


def qwen2_reference(folder: Path, tie: bool = False):
    torch.manual_seed(0)
    cfg = transformers.Qwen2Config(**SHAPE, tie_word_embeddings=tie)
    ref = transformers.Qwen2ForCausalLM(cfg).eval()
    with torch.no_grad():
        for p in ref.parameters():
            p.normal_(0, 0.3)  # random biases too, so a dropped bias would show
    ref.save_pretrained(folder, safe_serialization=True)
    write_tokenizer(folder, VOCAB)
    return ref


def edit_config(folder: Path, **changes) -> None:
    path = folder / "config.json"
    config = {**json.loads(path.read_text()), **changes}
    path.write_text(json.dumps({k: v for k, v in config.items() if v is not None}))


@pytest.fixture(scope="module")
def dream_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("dream")
    ref = qwen2_reference(folder)
    edit_config(
        folder,
        model_type="Dream",
        architectures=["DreamModel"],
        mask_token_id=1,
        auto_map={"AutoModel": "modeling_dream.DreamModel"},
    )
    return folder, ref


def test_dream_layout_matches_reference(dream_folder, device):
    folder, ref = dream_folder
    ids = torch.randint(0, VOCAB, (2, 17), generator=torch.Generator().manual_seed(1))
    model = engine.load_model(folder, device=device)
    assert model.family.name == "dream" and model.config.shift
    assert_close(model(ids), bidirectional_logits(ref, ids))


def test_open_dcoder_tied_layout_matches_reference(tmp_path, device):
    ref = qwen2_reference(tmp_path, tie=True)  # Qwen2.5-0.5B ties the head to the embedding
    ids = torch.randint(0, VOCAB, (1, 9), generator=torch.Generator().manual_seed(2))
    model = engine.load_model(tmp_path, device=device)
    assert model.family.name == "open-dcoder" and model.special.mask == 1  # mask id from the tokenizer
    assert_close(model(ids), bidirectional_logits(ref, ids))


# LLaDA's tensor names and forward, spelled out from its published modeling_llada.py (LLaDAModelLM wraps
# LLaDAModel as `model`; LLaDALlamaBlock; RMSLayerNorm; RotaryEmbedding), independently of engine/families.py.
LLADA = dict(layers=2, d=32, heads=4, kv_heads=2, ff=64, theta=500000.0, eps=1e-6)


def llada_state(layers, d, heads, kv_heads, ff, **_) -> dict[str, torch.Tensor]:
    kv = kv_heads * (d // heads)
    t = "model.transformer."
    shapes = {t + "wte.weight": (VOCAB, d), t + "ln_f.weight": (d,), t + "ff_out.weight": (VOCAB, d)}
    for i in range(layers):
        b = f"{t}blocks.{i}."
        shapes |= {
            b + "attn_norm.weight": (d,),
            b + "q_proj.weight": (d, d),
            b + "k_proj.weight": (kv, d),
            b + "v_proj.weight": (kv, d),
            b + "attn_out.weight": (d, d),
            b + "ff_norm.weight": (d,),
            b + "ff_proj.weight": (ff, d),
            b + "up_proj.weight": (ff, d),
            b + "ff_out.weight": (d, ff),
        }
    g = torch.Generator().manual_seed(0)
    return {name: torch.randn(shape, generator=g) * 0.3 for name, shape in shapes.items()}  # random norms too


def llada_forward(w: dict[str, torch.Tensor], ids, layers, d, heads, kv_heads, theta, eps, **_):
    # float64, full (bidirectional) attention; returns logits [B, T, V]
    w = {k: v.double() for k, v in w.items()}
    t, hd, (bsz, n) = "model.transformer.", d // heads, ids.shape

    def norm(x, name):  # RMSLayerNorm: normalise, then scale by the weight
        return w[name] * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps))

    def linear(x, name):
        return x @ w[name].T

    inv_freq = 1.0 / theta ** (torch.arange(0, hd, 2, dtype=torch.float64) / hd)
    angles = torch.outer(torch.arange(n, dtype=torch.float64), inv_freq)
    angles = torch.cat([angles, angles], -1)[:, None]  # [T, 1, hd]

    def rope(x):  # x: [B, T, H, hd]; rotate_half splits the head dimension in two halves
        x1, x2 = x.chunk(2, dim=-1)
        return x * angles.cos() + torch.cat([-x2, x1], -1) * angles.sin()

    x = w[t + "wte.weight"][ids]
    for i in range(layers):
        b = f"{t}blocks.{i}."
        h = norm(x, b + "attn_norm.weight")
        q = rope(linear(h, b + "q_proj.weight").view(bsz, n, heads, hd))
        k = rope(linear(h, b + "k_proj.weight").view(bsz, n, kv_heads, hd))
        v = linear(h, b + "v_proj.weight").view(bsz, n, kv_heads, hd)
        k, v = (z.repeat_interleave(heads // kv_heads, dim=2) for z in (k, v))
        att = (torch.einsum("bqhd,bkhd->bhqk", q, k) / math.sqrt(hd)).softmax(-1)
        x = x + linear(torch.einsum("bhqk,bkhd->bqhd", att, v).reshape(bsz, n, d), b + "attn_out.weight")
        h = norm(x, b + "ff_norm.weight")
        gated = F.silu(linear(h, b + "ff_proj.weight")) * linear(h, b + "up_proj.weight")
        x = x + linear(gated, b + "ff_out.weight")
    return linear(norm(x, t + "ln_f.weight"), t + "ff_out.weight")


def test_llada_layout_matches_reference(tmp_path, device):
    state = llada_state(**LLADA)
    save_file(state, str(tmp_path / "model.safetensors"))
    olmo = dict(
        model_type="llada",
        architectures=["LLaDAModelLM"],
        d_model=LLADA["d"],
        n_layers=LLADA["layers"],
        n_heads=LLADA["heads"],
        n_kv_heads=LLADA["kv_heads"],
        mlp_hidden_size=LLADA["ff"],
        vocab_size=VOCAB,
        embedding_size=VOCAB,
        rope_theta=LLADA["theta"],
        max_sequence_length=128,
        rms_norm_eps=LLADA["eps"],
        include_bias=False,
        weight_tying=False,
        block_type="llama",
        mask_token_id=1,
        eos_token_id=0,
    )
    (tmp_path / "config.json").write_text(json.dumps(olmo))
    write_tokenizer(tmp_path, VOCAB)
    ids = torch.randint(0, VOCAB, (2, 13), generator=torch.Generator().manual_seed(3))
    model = engine.load_model(tmp_path, device=device)
    assert model.family.name == "llada" and not model.config.shift
    assert_close(model(ids), llada_forward(state, ids, **LLADA))


def test_bf16_load_is_close_to_fp32(dream_folder, device):
    folder, _ = dream_folder
    ids = torch.randint(0, VOCAB, (1, 11), generator=torch.Generator().manual_seed(4))
    full = engine.load_model(folder, device=device)(ids)
    half = engine.load_model(folder, device=device, dtype=torch.bfloat16)(ids)
    assert half.dtype == torch.bfloat16
    assert_close(half.float(), full, atol=0.25 * full.abs().max().item())


# ---- bad checkpoints: each is one line naming the file, tensor or field


@pytest.fixture
def broken(dream_folder, tmp_path):
    folder = tmp_path / "ckpt"
    shutil.copytree(dream_folder[0], folder)
    return folder


def load_error(folder: Path) -> str:
    with pytest.raises(CheckpointError) as info:
        engine.load_model(folder)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_missing_folder_and_config(tmp_path):
    assert "checkpoint folder not found" in load_error(tmp_path / "nope")
    assert "config.json: not found" in load_error(tmp_path)


def test_missing_tokenizer(broken):
    (broken / "tokenizer.json").unlink()
    assert "tokenizer.json: not found" in load_error(broken)


def test_pickle_only_is_refused(broken):
    (broken / "model.safetensors").rename(broken / "pytorch_model.bin")
    message = load_error(broken)
    assert "pytorch_model.bin" in message and "safetensors only" in message


def test_truncated_safetensors(broken):
    path = broken / "model.safetensors"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    assert "model.safetensors" in load_error(broken)


def rewrite(folder: Path, change) -> None:
    state = load_file(str(folder / "model.safetensors"))
    change(state)
    save_file(state, str(folder / "model.safetensors"))


def test_missing_tensor(broken):
    rewrite(broken, lambda s: s.pop("model.layers.1.mlp.up_proj.weight"))
    message = load_error(broken)
    assert "model.safetensors" in message and "model.layers.1.mlp.up_proj.weight" in message


def test_extra_tensor(broken):
    rewrite(broken, lambda s: s.update({"model.layers.9.mlp.up_proj.weight": torch.zeros(2)}))
    assert "unexpected tensor 'model.layers.9.mlp.up_proj.weight'" in load_error(broken)


def test_wrong_shape(broken):
    rewrite(broken, lambda s: s.update({"model.norm.weight": torch.zeros(31)}))
    message = load_error(broken)
    assert "model.norm.weight (31,)" in message and "(32,)" in message


def test_unknown_model_type(broken):
    edit_config(broken, model_type="gpt9", architectures=["Gpt9"])
    assert "unknown model_type 'gpt9'" in load_error(broken)


def test_missing_config_field(broken):
    edit_config(broken, hidden_size=None)
    assert "missing field 'hidden_size'" in load_error(broken)


def test_no_mask_token(broken):
    edit_config(broken, mask_token_id=None)
    (broken / "tokenizer_config.json").write_text(json.dumps({"eos_token": "<|endoftext|>"}))
    tok = json.loads((broken / "tokenizer.json").read_text())
    for entry in tok["added_tokens"]:
        entry["content"] = entry["content"].replace("mask", "hidden")
    tok["model"]["vocab"] = {k.replace("mask", "hidden"): v for k, v in tok["model"]["vocab"].items()}
    (broken / "tokenizer.json").write_text(json.dumps(tok))
    assert "no mask token" in load_error(broken)


def test_remote_code_is_never_run(broken):
    (broken / "modeling_dream.py").write_text("raise SystemExit('remote code ran')\n")
    assert engine.load_model(broken).family.name == "dream"  # auto_map in config.json is ignored


def test_bad_dtype(dream_folder):
    with pytest.raises(ValueError, match="dtype 'float8'"):
        engine.load_model(dream_folder[0], dtype="float8")


@pytest.mark.parametrize(
    "flags, want",
    [
        ("fpu sse2 avx2 avx512f avx512_bf16", torch.bfloat16),  # Zen 4, Cooper Lake
        ("fpu sse2 avx2 avx512f amx_bf16 amx_tile", torch.bfloat16),  # Sapphire Rapids
        ("fpu sse2 avx2 avx512f avx512_vnni", torch.float32),  # AVX-512 without bf16
        ("", torch.float32),  # no /proc/cpuinfo
    ],
)
def test_auto_dtype_on_the_cpu_follows_its_flags(dream_folder, monkeypatch, flags, want):
    monkeypatch.setattr("engine.load.cpu_flags", lambda: set(flags.split()))
    model = engine.load_model(dream_folder[0], device="cpu", dtype="auto")
    assert model.model.embed.weight.dtype == want


def test_cpu_flags_are_read_from_the_flags_lines(tmp_path):
    from engine.load import cpu_flags

    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nmodel name\t: amx_bf16 lookalike\nflags\t\t: fpu avx512_bf16\n\n")
    assert cpu_flags(info) == {"fpu", "avx512_bf16"}
    assert cpu_flags(tmp_path / "missing") == set()


@pytest.mark.parametrize("supported, want", [(True, torch.bfloat16), (False, torch.float32)])
def test_auto_dtype_on_cuda_follows_bf16_support(dream_folder, device, monkeypatch, supported, want):
    if not device.startswith("cuda"):
        pytest.skip("needs --device cuda")
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *args, **kwargs: supported)
    model = engine.load_model(dream_folder[0], device=device, dtype="auto")
    assert model.model.embed.weight.dtype == want
