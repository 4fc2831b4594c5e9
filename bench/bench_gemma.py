"""DiffusionGemma's decoding speed and memory with random weights: tokens/s per canvas at fixed step counts,
the whole generate loop (checkpoint defaults: early stop on) for the forwards and tokens per forward, and the
bytes held and the peak, next to engine/fit.py's figures (`unmask fit`), for each --quantize.

    python -m bench.bench_gemma --shape 26b-a4b --device cuda --out runs/bench_gemma.json   # a lent GPU, bf16
    python -m bench.bench_gemma --shape 26b-a4b --device cuda --context 4096 --quantize none int4 --out ...
    python -m bench.bench_gemma --shape small --device cpu --threads 1 --out runs/bench_gemma.json
    python -m bench.bench_gemma --shape tiny --device cpu --canvas 8 --steps 2 --out ...   # the tests' check

The model is built on the meta device and its weights are drawn on the target device (the 26B-A4B shape,
25.2B parameters, never passes through host memory). Fixed steps have the early stop off, as vLLM
measured (16 steps, confidence stop off, 4,096 tokens in: about 146 ms per 256-token canvas in FP8, 1,757
tokens/s on an H100; Google: over 1,000 tokens/s on an H100). Random weights never get confident, so the
default loop runs all its steps: its tokens per forward is a floor, not the real model's. A quantized arm
builds the bf16 model and packs it in place (engine/quantize.py quantize_model, layer by layer), then
measures from there: its peak is the runs', not the build's. GB is 10**9 bytes, as engine/fit.py counts.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import time
from pathlib import Path

import torch

from engine import fit
from engine.gemma.cache import PromptCache
from engine.gemma.config import GemmaConfig, LayerSpec
from engine.gemma.generate import denoise, generate
from engine.gemma.model import DiffusionGemma
from engine.gemma.sampling import Sampling
from engine.gemma.tokens import GemmaSpecial

PUBLISHED = ("published: Google, over 1,000 tokens/s on an H100 and under 18 GB with 4-bit weights; vLLM, "
             "FP8, 16 steps, 4,096 tokens in: about 146 ms per 256-token canvas, 1,757 tokens/s")
SHAPES = ("26b-a4b", "small", "tiny")


def shape(name: str) -> GemmaConfig:
    if name == "26b-a4b":  # google/diffusiongemma-26B-A4B-it (its converter's _MODEL_CONFIG)
        h, n, full = 2816, 30, {5, 11, 17, 23, 29}
        sliding, global_ = LayerSpec(True, 8, 256, 1e4, 128), LayerSpec(False, 2, 512, 1e6, 64)
        layers = tuple(global_ if i in full else sliding for i in range(n))
        return GemmaConfig(vocab_size=262_144, hidden_size=h, intermediate_size=2112, num_heads=16,
                           layers=layers, sliding_window=1024, num_experts=128, top_k=8,
                           moe_intermediate_size=704, max_position_embeddings=262_144)
    if name == "small":  # the same proportions scaled down for a CPU (5 sliding layers : 1 full, 32 experts)
        sliding, global_ = LayerSpec(True, 2, 64, 1e4, 32), LayerSpec(False, 1, 128, 1e6, 16)
        return GemmaConfig(vocab_size=8192, hidden_size=256, intermediate_size=192, num_heads=4,
                           layers=(sliding,) * 5 + (global_,), sliding_window=256, num_experts=32, top_k=8,
                           moe_intermediate_size=64, max_position_embeddings=8192)
    # tiny: a seconds-long check of this script on a CPU (tests/test_bench_gemma.py)
    sliding, global_ = LayerSpec(True, 2, 32, 1e4, 16), LayerSpec(False, 1, 64, 1e6, 8)
    return GemmaConfig(vocab_size=512, hidden_size=64, intermediate_size=64, num_heads=2,
                       layers=(sliding, global_), sliding_window=16, num_experts=4, top_k=2,
                       moe_intermediate_size=32, max_position_embeddings=1024, canvas_length=8)


def random_model(cfg: GemmaConfig, device: str, dtype: torch.dtype, seed: int = 0) -> DiffusionGemma:
    with torch.device("meta"):
        model = DiffusionGemma(cfg).to(dtype)
    model = model.to_empty(device=device)
    g = torch.Generator(device).manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.ndim == 1:  # norms, router scales
                p.fill_(1.0)
            else:
                p.normal_(0.0, 0.02, generator=g)
        for b in model.buffers():
            b.fill_(1.0)  # layer scalars
    return model.eval()


def timed(fn, sync):
    sync()
    t0 = time.perf_counter()
    out = fn()
    sync()
    return out, time.perf_counter() - t0


def canvas_row(model, prompt, steps: int, canvas: int, args, sync) -> dict:
    # one canvas after a prompt: prefill (the encoder) once, then `steps` decoder forwards, stop off
    s = Sampling(steps=steps, stability=None, confidence=None, max_new_tokens=canvas)
    vocab, prefill, denoising = model.cfg.vocab_size, [], []
    for _ in range(args.warmup + args.repeats):
        g = torch.Generator(args.device).manual_seed(0)
        cache = PromptCache(model.cfg)
        _, p = timed(lambda: model.encode(prompt, cache), sync)
        noise = torch.randint(0, vocab, (1, canvas), generator=g, device=args.device)
        out, d = timed(lambda: denoise(lambda c, q: model.decode(c, cache, q), noise, s, vocab, g), sync)
        prefill.append(p)
        denoising.append(d)
    p, d = statistics.median(prefill[args.warmup :]), statistics.median(denoising[args.warmup :])
    return dict(loop="fixed steps", context=prompt.shape[1], canvas=canvas, steps=steps,
                forwards=int(out.forwards[0]), tokens_per_forward=canvas / steps, prefill_ms=p * 1e3,
                ms_per_forward=d * 1e3 / steps, canvas_ms=d * 1e3, tokens_per_s=canvas / d)


def generate_row(model, prompt, canvas: int, args, sync) -> dict:
    # the whole loop with transformers' default settings: 48 steps at most, early stop on, two canvases
    s = Sampling(max_new_tokens=2 * canvas)
    special = GemmaSpecial(eos=(), pad=None, bos=None)  # random weights: no row ends early by chance
    seconds = []
    for _ in range(args.warmup + args.repeats):
        g = torch.Generator(args.device).manual_seed(0)
        out, t = timed(lambda: generate(model, prompt, s, special, g, length=canvas), sync)
        seconds.append(t)
    t = statistics.median(seconds[args.warmup :])
    forwards = int(out.forwards[0])
    return dict(loop="generate (defaults)", context=prompt.shape[1], canvas=canvas, steps=s.steps,
                forwards=forwards, tokens_per_forward=float(out.tokens_per_forward[0]), prefill_ms=None,
                ms_per_forward=t * 1e3 / forwards, canvas_ms=t * 1e3 / 2, tokens_per_s=out.ids.shape[1] / t)


def table_row(r: dict) -> str:
    prefill = "" if r["prefill_ms"] is None else f"{r['prefill_ms']:.1f}"
    return (f"| {r['loop']} | {r['context']} | {r['canvas']} | {r['steps']} | {r['forwards']} | "
            f"{r['tokens_per_forward']:.2f} | {prefill} | {r['ms_per_forward']:.2f} | {r['canvas_ms']:.1f} | "
            f"{r['tokens_per_s']:.1f} |")


def held_bytes(model) -> int:
    # the bytes of every tensor the model holds, each storage once (a tied head shares the embedding's)
    storages = {t.untyped_storage().data_ptr(): t.untyped_storage() for t in model.state_dict().values()}
    return sum(s.nbytes() for s in storages.values())


def build(cfg: GemmaConfig, quantize: str | None, args, sync):
    """The random model, packed in place as `quantize` by the engine's own code; a clear error where the
    engine cannot pack it."""
    model = random_model(cfg, args.device, getattr(torch, args.dtype))
    if quantize is None:
        return model
    from engine.quantize import quantize_model

    try:
        return quantize_model(model, quantize)
    except (TypeError, RuntimeError, NotImplementedError, AssertionError) as e:
        raise SystemExit(f"bench_gemma: --quantize {quantize}: engine.quantize.quantize_model cannot pack a "
                         f"built DiffusionGemma ({type(e).__name__}: {e})") from None


def arm(cfg: GemmaConfig, quantize: str | None, prompt, args, sync, cuda: bool, save) -> dict:
    """One --quantize: build, memory held, runs, the runs' peak, beside engine/fit.py's figures."""
    model, build_s = timed(lambda: build(cfg, quantize, args, sync), sync)
    dtype = getattr(torch, args.dtype)
    # fit's figures for this run: its prompt, its canvas (the working memory's logits)
    want = fit.need(dataclasses.replace(cfg, canvas_length=args.canvas), dtype, quantize,
                    args.context + args.canvas, args.device, working=True)
    if cuda:
        torch.cuda.reset_peak_memory_stats(args.device)
    result = dict(quantize=quantize or "none", build_s=build_s, held_bytes=held_bytes(model),
                  fit_weights_bytes=want.weights, fit_total_bytes=want.total, peak_bytes=None, rows=[])
    print(f"| loop ({result['quantize']}) | context | canvas | steps | forwards | tokens/forward | "
          "prefill ms | ms/forward | ms/canvas | tokens/s |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    runs = [lambda n=n: canvas_row(model, prompt, n, args.canvas, args, sync) for n in args.steps]
    runs += [] if args.no_generate else [lambda: generate_row(model, prompt, args.canvas, args, sync)]
    with torch.inference_mode():
        for run in runs:
            result["rows"].append(run())
            result["peak_bytes"] = torch.cuda.max_memory_allocated(args.device) if cuda else None
            print(table_row(result["rows"][-1]), flush=True)
            save(result)  # what was measured survives a timeout
    peak = "not measured on the CPU" if not cuda else f"{result['peak_bytes'] / fit.GB:.2f} GB"
    held = result["held_bytes"] / fit.GB
    print(f"\ndiffusion-gemma {args.shape} {result['quantize']}: weights held {held:.2f} GB (unmask fit: "
          f"{want.weights / fit.GB:.2f} GB), built in {build_s:.1f} s; peak during the runs {peak} "
          f"(unmask fit: {want.total / fit.GB:.2f} GB in all)\n", flush=True)
    return result


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--shape", choices=SHAPES, default="26b-a4b")
    p.add_argument("--device", default="cuda")
    p.add_argument("--dtype", default="bfloat16", choices=("bfloat16", "float16", "float32"))
    p.add_argument("--quantize", nargs="+", default=["none"], choices=("none", "int8", "int4"),
                   help="one arm each, in this order (engine/quantize.py packs the built model)")
    p.add_argument("--context", type=int, default=512, help="prompt tokens before the canvas")
    p.add_argument("--canvas", type=int, default=256)
    p.add_argument("--steps", type=int, nargs="+", default=[16, 32, 48])
    p.add_argument("--no-generate", action="store_true", help="skip the whole-loop row")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--out", type=Path, required=True, help="JSON results")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    cuda = args.device.startswith("cuda")
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    cfg = shape(args.shape)
    params = sum(fit.parameters(cfg)[::2])
    hardware = torch.cuda.get_device_name(args.device) if cuda else f"cpu, {torch.get_num_threads()} threads"
    print(f"diffusion-gemma {args.shape}: {params / 1e9:.2f}B parameters, {args.dtype}, {hardware}\n"
          f"{PUBLISHED}\n")
    prompt = torch.randint(0, cfg.vocab_size, (1, args.context), generator=torch.Generator().manual_seed(1))
    prompt, arms = prompt.to(args.device), []
    args.out.parent.mkdir(parents=True, exist_ok=True)

    def save(current: dict) -> None:
        result = dict(shape=args.shape, config=dataclasses.asdict(cfg), parameters=params, dtype=args.dtype,
                      device=args.device, hardware=hardware, torch=torch.__version__, context=args.context,
                      canvas=args.canvas, repeats=args.repeats, published=PUBLISHED, arms=[*arms, current])
        args.out.write_text(json.dumps(result, indent=1) + "\n")

    for q in args.quantize:
        arms.append(arm(cfg, None if q == "none" else q, prompt, args, sync, cuda, save))
        if cuda:
            torch.cuda.empty_cache()  # the next arm's peak is its own


if __name__ == "__main__":
    main()
