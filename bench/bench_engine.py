"""Engine speed: forwards per completion, tokens per forward and latency, against an autoregressive baseline.

    python -m bench.bench_engine [--model DIR] [--contexts 512 2048] [--middles 8 32 128] [--repeats 3]

Contexts are real code (this interpreter's standard library), split around the canvas (3/4 before, 1/4
after). Every diffusion run fills exactly the canvas (stop tokens off), so each decodes as many tokens as
the baseline: the same model shape run causally with a KV cache, one token per forward, random weights.
All numbers come from one run on one machine; compare the ratios, not absolute times across runs.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sysconfig
import time
from pathlib import Path

import torch

import engine
from engine.generate import CanvasLogits, Denoising, denoise
from engine.kv_cache import KVCache
from engine.model import Transformer
from engine.sample import SamplerConfig

SAMPLERS = {
    "1/step": SamplerConfig(threshold=None, tokens_per_step=1),
    "thresh0.9": SamplerConfig(threshold=0.9),
    "thresh0.7": SamplerConfig(threshold=0.7),
    "4/step": SamplerConfig(threshold=None, tokens_per_step=4),
    "8/step": SamplerConfig(threshold=None, tokens_per_step=8),
}


def code_tokens(model: engine.DiffusionLM, n: int) -> list[int]:
    files = sorted(Path(sysconfig.get_paths()["stdlib"]).glob("*.py"))
    ids: list[int] = []
    for path in files[len(files) // 2 :]:
        ids += model.tokenizer.encode(path.read_text(encoding="utf-8", errors="replace"))
        if len(ids) >= n:
            return ids[:n]
    return ids


def time_diffusion(model, context, middle, sampler, cache, refresh, repeats):
    before, after = context[: len(context) * 3 // 4], context[len(context) * 3 // 4 :]
    special = dataclasses.replace(model.special, stops=frozenset())  # fill the whole canvas
    seq = torch.tensor([before + [special.mask] * middle + after])
    runs = []
    for r in range(repeats):
        start, end = len(before), len(before) + middle
        fn = CanvasLogits(model.model, seq.clone(), start, end, refresh if cache else None)
        state = Denoising(middle, special, sampler, torch.Generator().manual_seed(r))
        t0 = time.perf_counter()
        state = denoise(state, fn)
        tokens, forwards = state.tokens, state.forwards
        runs.append((time.perf_counter() - t0) * 1000)
    return forwards, statistics.median(runs), tokens


def time_autoregressive(ar: Transformer, context, middle, repeats):
    cfg, dtype = ar.cfg, ar.embed.weight.dtype
    prompt = torch.tensor([context])
    runs = []
    for _ in range(repeats):
        cache = KVCache(
            cfg.num_layers, 1, cfg.num_kv_heads, len(context) + middle, cfg.head_dim, dtype, "cpu"
        )
        t0 = time.perf_counter()
        token = ar(prompt, 0, cache, causal=True)[:, -1:].argmax(-1)
        for i in range(middle - 1):
            token = ar(token, len(context) + i, cache, causal=True)[:, -1:].argmax(-1)
        runs.append((time.perf_counter() - t0) * 1000)
    return middle, statistics.median(runs)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", help="checkpoint folder (default: the embedded model)")
    p.add_argument("--contexts", type=int, nargs="+", default=[512, 2048])
    p.add_argument("--middles", type=int, nargs="+", default=[8, 32, 128])
    p.add_argument("--samplers", nargs="+", default=list(SAMPLERS), choices=list(SAMPLERS))
    p.add_argument("--refresh", type=int, default=engine.params.DEFAULT_REFRESH)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument(
        "--dtype", default="float32", help="float32, bfloat16 or auto (baseline runs in the same dtype)"
    )
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    model = engine.load_model(args.model, dtype=args.dtype)
    dtype = model.model.embed.weight.dtype
    cfg = dataclasses.replace(model.config, max_position_embeddings=max(args.contexts) + max(args.middles))
    torch.manual_seed(0)
    ar = Transformer(cfg).to(dtype).eval()  # random weights: the baseline only needs the shape for timing
    tokens = code_tokens(model, max(args.contexts))
    params = sum(p.numel() for p in model.model.parameters())
    print(
        f"model {model.path} ({params / 1e6:.1f}M params, {dtype}), "
        f"threads {args.threads}, cache refresh every {args.refresh} steps\n"
    )
    print(
        "| context | middle | sampler | cache | forwards | tokens/forward | ms | AR ms | speed vs AR "
        "| agrees w/ uncached |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    with torch.inference_mode():
        for n_ctx in args.contexts:
            context = tokens[:n_ctx]
            for middle in args.middles:
                _, ar_ms = time_autoregressive(ar, context, middle, args.repeats)
                for name in args.samplers:
                    sampler = SAMPLERS[name]
                    exact = None
                    for cache in (False, True):
                        forwards, ms, out = time_diffusion(
                            model, context, middle, sampler, cache, args.refresh, args.repeats
                        )
                        exact = out if exact is None else exact
                        agree = float((out == exact).float().mean())
                        print(
                            f"| {n_ctx} | {middle} | {name} | {'on' if cache else 'off'} | {forwards} | "
                            f"{middle / forwards:.2f} | {ms:.1f} | {ar_ms:.1f} | {ar_ms / ms:.2f}x | "
                            f"{agree:.0%} |",
                            flush=True,
                        )


if __name__ == "__main__":
    main()
