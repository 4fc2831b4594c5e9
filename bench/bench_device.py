"""Throughput at a real checkpoint's shape with random weights: the engine's denoising loop committing 1, 4, 8
or 16 tokens per forward, with and without its context cache, against the same model decoding
autoregressively with a KV cache (one causal forward per new token after the prompt), in one run.

    python -m bench.bench_device --out runs/bench_device.json                  # Dream-7B shape, bf16, CUDA
    python -m bench.bench_device --shape tiny --device cpu --out runs/bench_device.json

The model is built on the meta device and its random weights are drawn on the target device, so a 7B shape
never passes through host memory. Every diffusion run fills the whole canvas (stop tokens off), so both
sides decode `middle` tokens after the same context; tokens/s and the diffusion/AR ratio compare only
numbers from this run.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import time
from functools import partial
from pathlib import Path

import torch

from engine.config import ModelConfig
from engine.generate import CanvasLogits, Denoising, denoise
from engine.kv_cache import KVCache
from engine.model import Transformer
from engine.sample import SamplerConfig
from engine.tokenizer import SpecialTokens

SHAPES = {
    # Dream-v0 / Dream-Coder / DiffuCoder / DreamOn 7B (Qwen2.5-7B): 7.6B parameters
    "dream-7b": dict(vocab_size=152064, hidden_size=3584, num_layers=28, num_heads=28, num_kv_heads=4,
                     intermediate_size=18944, head_dim=128, rope_theta=1e6),
    "tiny": dict(vocab_size=2048, hidden_size=128, num_layers=2, num_heads=4, num_kv_heads=2,
                 intermediate_size=256, rope_theta=1e4),
}


def random_model(cfg: ModelConfig, device: str, dtype: torch.dtype, seed: int = 0) -> Transformer:
    with torch.device("meta"):
        model = Transformer(cfg).to(dtype)
    model = model.to_empty(device=device)
    g = torch.Generator(device).manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.fill_(1.0)
            else:
                p.normal_(0.0, 0.02, generator=g)
    return model.eval()


def timed(fn, sync) -> float:
    sync()
    t0 = time.perf_counter()
    fn()
    sync()
    return time.perf_counter() - t0


def diffusion_run(model, ids, start, per_forward, cache, special, args):
    sampler = SamplerConfig(threshold=None, tokens_per_step=per_forward)
    logits = CanvasLogits(model, ids.clone(), start, start + args.middle, args.refresh if cache else None)
    return lambda: denoise(Denoising(args.middle, special, sampler, None, args.device), logits).forwards


def ar_run(model, ids, middle, device):
    cfg, n = model.cfg, ids.shape[1]
    cache = KVCache(cfg.num_layers, 1, cfg.num_kv_heads, n + middle, cfg.head_dim, model.embed.weight.dtype,
                    device)
    last = torch.tensor([n - 1], device=device)

    def run():
        token = model(ids, 0, cache, causal=True, rows=last).argmax(-1)  # [1, 1]
        for i in range(middle - 1):
            token = model(token, n + i, cache, causal=True).argmax(-1)
        return middle

    return run


def measure(make, repeats: int, sync) -> tuple[int, float]:
    # (forwards, median seconds); each repeat gets a fresh canvas and cache, built outside the timer
    runs, forwards = [], 0
    for _ in range(repeats):
        run = make()
        box = []
        runs.append(timed(lambda: box.append(run()), sync))
        forwards = box[0]
    return forwards, statistics.median(runs)


def row(context, middle, kind, per_forward, cache, forwards, seconds, ar_tps=None) -> dict:
    tps = middle / seconds
    return dict(context=context, middle=middle, decoding=kind, tokens_per_forward=per_forward, cache=cache,
                forwards=forwards, ms=seconds * 1e3, ms_per_forward=seconds * 1e3 / forwards,
                tokens_per_s=tps, vs_ar=tps / ar_tps if ar_tps else 1.0)


def bench(model, args, special, sync, save) -> list[dict]:
    g = torch.Generator().manual_seed(1)
    rows = []
    for context in args.contexts:
        before = context * 3 // 4  # the canvas sits 3/4 of the way into the context, as in bench_engine
        ids = torch.randint(0, special.mask, (1, context + args.middle), generator=g)
        ids[0, before : before + args.middle] = special.mask
        ids = ids.to(args.device)
        prompt = torch.cat([ids[:, :before], ids[:, before + args.middle :]], dim=1)
        runs = {("autoregressive", 1, True): partial(ar_run, model, prompt, args.middle, args.device)}
        for k, cache in ((k, cache) for k in args.per_forward for cache in (False, True)):
            runs["diffusion", k, cache] = partial(diffusion_run, model, ids, before, k, cache, special, args)
        for _ in range(args.warmup):  # kernel choice, allocator, caches: every shape the timed runs use
            for make in runs.values():
                make()()
        ar_tps = None
        for (kind, k, cache), make in runs.items():
            rows.append(row(context, args.middle, kind, k, cache, *measure(make, args.repeats, sync), ar_tps))
            ar_tps = ar_tps or rows[-1]["tokens_per_s"]
            print(table_row(rows[-1]), flush=True)
            save(rows)  # what was measured survives a run stopped by its time limit
    return rows


def table_row(r: dict) -> str:
    return (f"| {r['context']} | {r['middle']} | {r['decoding']} | {r['tokens_per_forward']} | "
            f"{'on' if r['cache'] else 'off'} | {r['forwards']} | {r['ms_per_forward']:.2f} | "
            f"{r['tokens_per_s']:.1f} | {r['vs_ar']:.2f}x |")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--shape", choices=list(SHAPES), default="dream-7b")
    p.add_argument("--device", default="cuda")
    p.add_argument("--dtype", default="bfloat16", choices=("bfloat16", "float16", "float32"))
    p.add_argument("--contexts", type=int, nargs="+", default=[512, 1984], help="tokens around the canvas")
    p.add_argument("--middle", type=int, default=64, help="canvas tokens (a multiple of each --per-forward)")
    p.add_argument("--per-forward", type=int, nargs="+", default=[1, 4, 8, 16])
    p.add_argument("--refresh", type=int, default=8, help="full forward every this many steps (the engine's)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--out", type=Path, required=True, help="JSON results")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    cuda = args.device.startswith("cuda")
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    dtype = getattr(torch, args.dtype)
    cfg = ModelConfig(**SHAPES[args.shape], max_position_embeddings=max(args.contexts) + args.middle)
    t0 = time.perf_counter()
    model = random_model(cfg, args.device, dtype)
    sync()
    build_s = time.perf_counter() - t0
    vocab = cfg.vocab_size
    special = SpecialTokens(mask=vocab - 1, eos=0, pad=0, bos=None, expand=None, stops=frozenset())
    params = sum(q.numel() for q in model.parameters())
    hardware = torch.cuda.get_device_name(args.device) if cuda else f"cpu, {torch.get_num_threads()} threads"
    print(f"{args.shape}: {params / 1e6:,.1f}M parameters, {dtype}, {hardware}, built in {build_s:.1f} s; "
          f"cache refresh every {args.refresh} steps\n")
    print("| context | middle | decoding | per forward | cache | forwards | ms/forward | tokens/s | vs AR |")
    print("|---|---|---|---|---|---|---|---|---|")
    args.out.parent.mkdir(parents=True, exist_ok=True)

    def save(rows):
        result = dict(shape=args.shape, config=dataclasses.asdict(cfg), parameters=params, dtype=args.dtype,
                      device=args.device, hardware=hardware, torch=torch.__version__, refresh=args.refresh,
                      repeats=args.repeats, build_s=build_s, rows=rows,
                      peak_gb=torch.cuda.max_memory_allocated(args.device) / 2**30 if cuda else None)
        args.out.write_text(json.dumps(result, indent=1) + "\n")

    with torch.inference_mode():
        bench(model, args, special, sync, save)


if __name__ == "__main__":
    main()
