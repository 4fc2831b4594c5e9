"""int8 weights (engine/quantize.py) against fp32 and bf16: logits drift, speed per forward, weight bytes and
peak memory while loading, on the embedded model and on a random slice of the Dream-7B shape. Not run in CI.

    python -m bench.bench_quantize --threads 1
    python -m bench.bench_quantize --int4   # int4 (engine/int4.py) vs int8 vs bf16 vs fp32, under a minute

Timings are interleaved (every arm once per round, the median of the rounds) in one process, so the ratios
hold on a busy machine even where the absolute milliseconds do not.
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

import engine
from engine import int4, quantize
from engine.config import ModelConfig
from engine.int4 import chunked_matmul
from engine.load import load_transformer, save_checkpoint
from engine.model import Transformer
from engine.quantize import (
    chunked_linear,
    dequantized_linear,
    quantize_int8,
    quantize_model,
    quantize_tensor,
)

ROOT = Path(__file__).resolve().parent.parent
SOURCES = sorted((ROOT / "engine").glob("*.py")) + sorted((ROOT / "infill").glob("*.py"))
# the random slice: Dream-7B / Qwen2.5-7B's layer shape, 2 of its 28 layers, a small vocabulary
SLICE = ModelConfig(vocab_size=4096, hidden_size=3584, num_layers=2, num_heads=28, num_kv_heads=4,
                    intermediate_size=18944, head_dim=128, max_position_embeddings=4096)
FULL = {  # full shapes for the weight bytes (built on the meta device, nothing allocated)
    "Dream-7B / DiffuCoder-7B (Qwen2.5-7B)": ModelConfig(152064, 3584, 28, 28, 4, 18944, 128),
    "LLaDA-8B": ModelConfig(126464, 4096, 32, 32, 32, 12288, 128, qkv_bias=False),
    "Open-dCoder-0.5B (tied head)": ModelConfig(151936, 896, 24, 14, 2, 4864, 64, tie_word_embeddings=True),
}


def real_inputs(lm: engine.DiffusionLM, count: int, length: int, canvas: int) -> torch.Tensor:
    # [count, length]: the start of `count` source files, a canvas of masks in the middle as infill has it
    rows = []
    for path in SOURCES:
        ids = lm.tokenizer.encode(path.read_text(encoding="utf-8"))
        if len(ids) >= length:
            mid = length // 2
            rows.append(ids[:mid] + [lm.special.mask] * canvas + ids[mid + canvas : length])
        if len(rows) == count:
            break
    return torch.tensor(rows)


def head_kept(model: Transformer) -> Transformer:
    # int8 blocks with the full-precision head: the arm that decides whether the head is quantized
    head = model.head
    quantized = quantize_int8(copy.deepcopy(model))
    quantized.head = head
    return quantized


@torch.inference_mode()
def drift(ref: Transformer, arms: dict[str, Transformer], inputs: torch.Tensor) -> list[dict]:
    base = ref(inputs).double()  # [N, T, V]
    want, rows = base.log_softmax(-1), []
    for name, model in arms.items():
        got = model(inputs).double()
        logp = got.log_softmax(-1)
        diff = (got - base).abs()
        kl = (want.exp() * (want - logp)).sum(-1)  # KL(reference || arm) per position
        top1 = (want.argmax(-1) == logp.argmax(-1)).double().mean()
        rows.append({"arm": name, "mean |dlogit|": diff.mean().item(), "max |dlogit|": diff.max().item(),
                     "KL nats": kl.mean().item(), "top-1 agrees": top1.item()})
    return rows


@torch.inference_mode()
def speed(arms: dict[str, Transformer], lengths: tuple[int, ...], vocab: int, repeats: int) -> list[dict]:
    inputs = {t: torch.randint(2, vocab, (1, t), generator=torch.Generator().manual_seed(t)) for t in lengths}
    times = {(name, t): [] for name in arms for t in lengths}
    for model in arms.values():
        model(inputs[lengths[0]])  # warm up
    for _ in range(repeats):
        for t in lengths:
            for name, model in arms.items():
                t0 = time.perf_counter()
                model(inputs[t])
                times[name, t].append((time.perf_counter() - t0) * 1000)
    rows = []
    for t in lengths:
        ms = {name: statistics.median(times[name, t]) for name in arms}
        for name in arms:
            rows.append({"tokens": t, "arm": name, "ms": ms[name],
                         "vs fp32": ms["fp32"] / ms[name], "vs bf16": ms["bf16"] / ms[name]})
    return rows


@torch.inference_mode()
def kernels(rows: tuple[int, ...], repeats: int, k: int = 3584, n: int = 18944) -> list[dict]:
    # one bf16 linear layer (Qwen2.5-7B's gate/up shape): dense matmul, torch's fused int8 kernel,
    # dequantizing a few MB at a time (Int8Linear on a CPU above PACK_ROWS), and the whole weight at once
    w = torch.randn(n, k) * 0.02
    q, scale = quantize_tensor(w, torch.bfloat16)
    wb = w.bfloat16()
    ways = {
        "bf16 dense": lambda x: F.linear(x, wb),
        "int8 fused (_weight_int8pack_mm)": lambda x: torch.ops.aten._weight_int8pack_mm(x, q, scale),
        "int8 dequantize by chunks": lambda x: chunked_linear(x, q, scale),
        "int8 dequantize whole": lambda x: dequantized_linear(x, q, scale, None),
    }
    xs = {m: torch.randn(m, k, dtype=torch.bfloat16) for m in rows}
    times = {(way, m): [] for way in ways for m in rows}
    for fn in ways.values():
        fn(xs[rows[0]])  # warm up
    for _ in range(repeats):
        for m in rows:
            for way, fn in ways.items():
                t0 = time.perf_counter()
                fn(xs[m])
                times[way, m].append((time.perf_counter() - t0) * 1000)
    out = []
    for m in rows:
        base = statistics.median(times["bf16 dense", m])
        out += [{"rows": m, "way": way, "ms": statistics.median(times[way, m]),
                 "vs bf16": base / statistics.median(times[way, m])} for way in ways]
    return out


def state_bytes(model: nn.Module) -> int:
    return sum(t.nbytes for t in [*model.parameters(), *model.buffers()])


def full_shape_bytes() -> list[dict]:
    rows = []
    default = torch.get_default_dtype()
    torch.set_default_dtype(torch.bfloat16)  # meta tensors (and the int8 scales) in the compute dtype
    try:
        for name, cfg in FULL.items():
            with torch.device("meta"):
                model = Transformer(cfg)
            bf16 = state_bytes(model)
            int8 = state_bytes(quantize_int8(model))
            rows.append({"model": name, "bf16 GB": bf16 / 1e9, "int8 GB": int8 / 1e9})
    finally:
        torch.set_default_dtype(default)
    return rows


def random_slice() -> Transformer:
    torch.manual_seed(0)
    model = Transformer(SLICE)
    for name, p in model.named_parameters():
        with torch.no_grad():
            if name.endswith("norm.weight"):
                continue
            p.normal_(0, 1.0 if name == "embed.weight" else 0.02)  # a logit spread of about 1.2 nats
    return model.eval()


def arms_of(model: Transformer) -> dict[str, Transformer]:
    bf16 = copy.deepcopy(model).to(torch.bfloat16)
    return {"fp32": model, "bf16": bf16, "int8 fp32": quantize_int8(copy.deepcopy(model)),
            "int8 bf16": quantize_int8(copy.deepcopy(bf16))}


def peak_child(folder: str, dtype: str, quantize: str) -> None:
    # runs in a fresh process: the peak of anonymous memory (RssAnon) while loading, sampled every 2 ms
    def anon() -> int:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) * 1024
        return 0

    base, peak, done = anon(), [0], threading.Event()

    def watch():
        while not done.is_set():
            peak[0] = max(peak[0], anon())
            time.sleep(0.002)

    watcher = threading.Thread(target=watch)
    watcher.start()
    model, _, _ = load_transformer(Path(folder), "cpu", dtype, None if quantize == "none" else quantize)
    done.set()
    watcher.join()
    peak[0] = max(peak[0], anon())
    print(json.dumps({"peak": peak[0] - base, "after": anon() - base, "state": state_bytes(model)}))


def peak_memory(model: Transformer) -> list[dict]:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        save_checkpoint(model, Path(tmp), {"mask_id": 1, "eos_id": 0, "pad_id": 0, "bos_id": 0})  # fp32
        for dtype, quantize in (("bfloat16", "none"), ("bfloat16", "int8"), ("float32", "int8")):
            cmd = [sys.executable, "-m", "bench.bench_quantize", "--peak-child", tmp, dtype, quantize]
            out = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=ROOT).stdout)
            peak, state = out["peak"] / 1e9, out["state"] / 1e9
            rows.append({"load": f"{dtype} {quantize}", "state GB": state, "peak anon GB": peak,
                         "peak - state GB": peak - state})
    return rows


def table(title: str, rows: list[dict]) -> None:
    print(f"\n{title}\n| " + " | ".join(rows[0]) + " |\n|" + "---|" * len(rows[0]))
    for row in rows:
        cells = [f"{v:.4g}" if isinstance(v, float) else str(v) for v in row.values()]
        print("| " + " | ".join(cells) + " |")


def compare(title: str, model: Transformer, arms: dict[str, Transformer], inputs: torch.Tensor) -> None:
    others = {k: v for k, v in arms.items() if k != "fp32"} | {"int8 fp32, head kept fp32": head_kept(model)}
    table(f"{title}, drift against fp32", drift(model, others, inputs))
    table(f"{title}, int8 bf16 against bf16", drift(arms["bf16"], {"int8 bf16": arms["int8 bf16"]}, inputs))
    sizes = [{"arm": k, "MB": state_bytes(v) / 1e6} for k, v in (arms | others).items()]
    table(f"{title}, weight bytes", sizes)


@torch.inference_mode()
def int4_kernels(rows: tuple[int, ...], repeats: int, k: int = 1024, n: int = 2816) -> list[dict]:
    # one linear layer at a small shape: dense fp32 and bf16, int8 weights (Int8Linear, weights only), and
    # int4 through torch's CPU kernel, by chunks converted for a dense bf16 matmul, and as the layer picks for
    # fp32 inputs
    torch.manual_seed(0)
    linear = nn.Linear(k, n, bias=False)
    nn.init.normal_(linear.weight, 0, 0.02)
    holder = nn.Module()
    holder.cfg, holder.layer = SLICE, copy.deepcopy(linear)
    layer8 = quantize_model(copy.deepcopy(holder), "int8", activations=False).layer.to(torch.bfloat16)
    layer4 = quantize_model(holder, "int4", device="cpu").layer
    assert layer4.layout == "cpu", "torch's CPU int4 kernel is not available here"
    w, wb = linear.weight.detach(), linear.weight.detach().bfloat16()
    kernel = torch.ops.aten._weight_int4pack_mm_for_cpu
    ways = {
        "fp32 dense": lambda xf, xb: F.linear(xf, w),
        "bf16 dense": lambda xf, xb: F.linear(xb, wb),
        "int8 (bf16 x)": lambda xf, xb: layer8(xb),
        "int4 kernel (bf16 x)": lambda xf, xb: kernel(xb, layer4.weight, layer4.group, layer4.scale_offset),
        "int4 by chunks (bf16 x)": lambda xf, xb: chunked_matmul(xb, layer4.weight, layer4.scale_offset,
                                                                 layer4.group, "cpu"),
        "int4 layer (fp32 x)": lambda xf, xb: layer4(xf),
    }
    xs = {m: (torch.randn(m, k), torch.randn(m, k).bfloat16()) for m in rows}
    times = {(way, m): [] for way in ways for m in rows}
    for fn in ways.values():
        fn(*xs[rows[0]])  # warm up
    for _ in range(repeats):
        for m in rows:
            for way, fn in ways.items():
                t0 = time.perf_counter()
                fn(*xs[m])
                times[way, m].append((time.perf_counter() - t0) * 1000)
    out = []
    for m in rows:
        base = statistics.median(times["bf16 dense", m])
        out += [{"rows": m, "way": way, "ms": statistics.median(times[way, m]),
                 "vs bf16": base / statistics.median(times[way, m])} for way in ways]
    return out


def int4_arms(model: Transformer, groups: tuple[int, ...]) -> dict[str, Transformer]:
    # int4 at each group size (the head int8, engine/quantize.py HEADS), in fp32; the head kept wide, int4
    arms = {}
    for group in groups:
        int4.GROUP_SIZE = group
        arms[f"int4 g{group}"] = quantize_model(copy.deepcopy(model), "int4", device="cpu")
    int4.GROUP_SIZE = groups[-1]
    head = quantize_model(copy.deepcopy(model), "int4", device="cpu")
    head.head = model.head
    arms[f"int4 g{groups[-1]}, head kept fp32"] = head
    heads, quantize.HEADS = quantize.HEADS, ()
    arms[f"int4 g{groups[-1]}, head int4 too"] = quantize_model(copy.deepcopy(model), "int4", device="cpu")
    quantize.HEADS = heads
    return arms


def int4_section(args: argparse.Namespace) -> None:
    default = int4.GROUP_SIZE
    table("one 1024 -> 2816 linear layer, ms (median; ratio > 1: faster than bf16 dense)",
          int4_kernels((1, 8, 16, 32, 64, 128), args.repeats))
    lm = engine.load_model()
    inputs = real_inputs(lm, args.inputs, 256, 32)
    table(f"embedded model ({len(inputs)} source files x 256 tokens, 32 masked), int4 drift against fp32",
          drift(lm.model, int4_arms(lm.model, (32, 64, 128)), inputs))
    int4.GROUP_SIZE = default
    bf16 = copy.deepcopy(lm.model).to(torch.bfloat16)
    arms = {"fp32": lm.model, "bf16": bf16,
            "int8 bf16": quantize_model(copy.deepcopy(bf16), "int8", activations=False),
            "int4 bf16": quantize_model(copy.deepcopy(bf16), "int4", device="cpu"),
            "int4 fp32": quantize_model(copy.deepcopy(lm.model), "int4", device="cpu")}
    table(f"embedded model, ms per forward, int4 group {default}",
          speed(arms, (1, 8, 16, 256), lm.config.vocab_size, args.repeats))
    table("embedded model, weight bytes", [{"arm": k, "MB": state_bytes(v) / 1e6} for k, v in arms.items()])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--inputs", type=int, default=8, help="source files (embedded model), rows (slice)")
    p.add_argument("--skip-peak", action="store_true", help="leave out the peak-memory loads")
    p.add_argument("--peak-child", nargs=3, help=argparse.SUPPRESS)
    p.add_argument("--int4", action="store_true", help="only the int4 comparison (under a minute)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    if args.peak_child:
        return peak_child(*args.peak_child)
    flags = Path("/proc/cpuinfo").read_text().split() if Path("/proc/cpuinfo").exists() else []
    isa = [f for f in ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16", "amx_int8") if f in flags]
    print(f"torch {torch.__version__}, {args.threads} thread(s), CPU flags: {' '.join(isa)}")
    if args.int4:
        return int4_section(args)

    lm = engine.load_model()
    arms = arms_of(lm.model)
    inputs = real_inputs(lm, args.inputs, 256, 32)
    compare(f"embedded model ({len(inputs)} source files x 256 tokens, 32 masked)", lm.model, arms, inputs)
    table("embedded model, ms per forward (median; ratio > 1: faster than that arm)",
          speed(arms, (1, 16, 256), lm.config.vocab_size, args.repeats))
    del arms

    model = random_slice()
    arms = arms_of(model)
    rand = torch.randint(2, SLICE.vocab_size, (args.inputs, 64), generator=torch.Generator().manual_seed(0))
    compare("7B-shaped slice (2 layers, vocab 4096, random N(0, 0.02) weights)", model, arms, rand)
    table("7B-shaped slice, ms per forward", speed(arms, (1, 16, 128), SLICE.vocab_size, args.repeats))
    del arms
    table("one 3584 -> 18944 linear layer, bf16 activations, ms",
          kernels((1, 2, 4, 8, 16, 32, 128), args.repeats))
    table("full shapes, weight bytes", full_shape_bytes())
    if not args.skip_peak:
        table("7B-shaped slice loaded from an fp32 checkpoint, anonymous memory", peak_memory(model))


if __name__ == "__main__":
    main()
