"""The bridge from options to the engine, shared by the server and the CLI: load a model, build a Filler."""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Callable

import msgspec

import infill

from .options import MemoryOptions, ModelOptions, Options, SamplerOptions

MAX_THREADS = 4
MIN_CONTEXT = 64  # tokens of context kept even for models with few positions
# Default context budget on the CPU, where the first forward of every completion runs over the whole context.
# With the embedded model (512 positions, so 382 tokens otherwise) single-line edit similarity to the deleted
# text did not drop (0.163 either way; `python -m bench.eval_options`, README).
CPU_CONTEXT_TOKENS = 256
# oneDNN (bf16 matmuls on the CPU) and PyTorch's ideep layer each cache 1,024 kernels by input shape, and
# every context length is a new shape: a server grew by 200 MB over its first 3,000 completions and kept
# growing (bench/soak.py). 64 each kept it flat with no change in latency (README, soak). Read at the first
# forward, so setting them in load() is early enough; a value in the environment wins.
SHAPE_CACHES = {"ONEDNN_PRIMITIVE_CACHE_CAPACITY": "64", "LRU_CACHE_CAPACITY": "64"}
# engine imports torch (seconds): imported here, inside functions, so the server answers `initialize` first.


def load(opts: ModelOptions, memory=None):
    """engine.load_model for these options (the embedded model when opts.path is None); a Hub id not yet
    cached downloads first, with huggingface_hub's progress bars on stderr (the server fetches first). With
    opts.remote, a RemoteModel (remote.py) with `memory` (a RemoteMemory): nothing loads, nothing is asked
    yet."""
    if opts.remote is not None:
        from .remote import RemoteModel

        return RemoteModel(opts.remote, opts.token, memory)
    for name, value in SHAPE_CACHES.items():
        os.environ.setdefault(name, value)
    import torch

    import engine

    torch.set_num_threads(opts.threads or default_threads())
    return engine.load_model(opts.path, device=opts.device, dtype=opts.dtype, quantize=opts.quantize)


def fetch(opts: ModelOptions, progress=None) -> ModelOptions:
    """opts with a Hugging Face id replaced by its folder in the Hub's cache, downloaded first when missing;
    progress(bytes done, bytes in all) is called from download threads (engine/hub.py)."""
    from engine import hub

    if opts.path is None or opts.remote is not None:
        return opts
    return msgspec.structs.replace(opts, path=str(hub.resolve(opts.path, progress)))


def default_threads() -> int:
    """Half the CPUs, at most MAX_THREADS: the event loop, the editor and the tokenizer need the rest, and
    torch's spinning threads slow down many times over when they outnumber the free cores."""
    return min(MAX_THREADS, max(1, (os.cpu_count() or 2) // 2))


def sampler_config(opts: SamplerOptions, model_path=None):
    """The user's sampler options over the catalogue's recommendation for the model at model_path (a Hub id
    or a Hub-cache folder; engine/catalogue.py) over the built-in defaults."""
    from engine import SamplerConfig
    from engine.catalogue import find

    entry = find(model_path)
    return SamplerConfig(**opts.resolve(entry.sampler.settings() if entry else None))


def memory_config(opts: MemoryOptions):
    """engine.MemoryConfig for these options; None when the memory is off."""
    from engine import MemoryConfig

    if not opts.enabled:
        return None
    return MemoryConfig(weight=opts.weight, half_length=opts.half_length, min_length=opts.min_length,
                        count_prior=opts.count_prior, right=opts.right, corpus_weight=opts.corpus_weight,
                        corpus_half_length=opts.corpus_half_length, corpus_min_length=opts.corpus_min_length)


def make_filler(model, sampler, cancel: Callable[[], bool] | None = None, memory=None) -> infill.Filler:
    def fill(prefix: str, suffix: str, canvas: int, max_canvas: int, single_line: bool) -> tuple[str, float]:
        r = model.infill(
            prefix,
            suffix,
            canvas=canvas,
            max_canvas=max_canvas,
            sampler=sampler,
            cancel=cancel,
            single_line=single_line,
            memory=memory,
        )
        return r.text, r.confidence

    return fill


def describe(model) -> dict:
    """The status fields of a loaded model (a Hub model by its id)."""
    import torch

    from engine.hub import repo_id_of
    from engine.quantize import quantization

    return {
        "threads": torch.get_num_threads(),
        "model": repo_id_of(model.path) or str(model.path),
        "family": model.family.name,
        "device": str(model.device),
        "dtype": str(model.dtype).removeprefix("torch."),
        "quantize": quantization(model.model) or "none",
    }


def context_budget(options: Options, room: int, device: str) -> int:
    """Tokens of context infill may choose: the option (or the device's default), within `room`, what the
    model can see beside the largest canvas; infill picks them by syntax, where the engine would cut
    blindly."""
    want = options.completion.context_tokens
    if want is None:
        want = CPU_CONTEXT_TOKENS if device == "cpu" else options.infill().context_tokens
    return max(MIN_CONTEXT, min(want, room))


def complete(
    model,
    doc: infill.Document,
    offset: int,
    options: Options,
    *,
    invoked: bool,
    cancel: Callable[[], bool] | None = None,
    others: tuple[infill.Document, ...] = (),
    key: str | None = None,
) -> infill.Completion | None:
    """infill.complete with this model and options; newlines follow the document's (CRLF stays CRLF) and the
    replaced range never splits a CRLF. With the memory on, the document (remembered under `key`, default
    a name of its own) is cut at the cursor first, so that it is matched against but never completes itself
    with the text after the cursor."""
    memory = memory_config(options.memory)
    if memory is not None:
        model.memory.index.max_bytes = options.memory.max_megabytes * 2**20
        model.memory.update(key or "<document>", doc.text, cursor=offset)
    fill = make_filler(model, sampler_config(options.sampler, model.path), cancel, memory)
    room = model.context_room(options.completion.max_tokens)
    budget = context_budget(options, room, model.device.type)
    infill_options = dataclasses.replace(options.infill(), context_tokens=budget)
    c = infill.complete(
        doc,
        offset,
        fill,
        count_tokens=model.count_tokens,
        invoked=invoked,
        options=infill_options,
        others=others,
    )
    eol = re.search(r"\r\n|\r|\n", doc.text)
    if c is None or eol is None or eol.group() == "\n":
        return c
    end = (
        c.end - 1 if c.end > offset and doc.text[c.end - 1] == "\r" else c.end
    )  # infill counts CR as on the line
    return dataclasses.replace(c, end=end, text=re.sub(r"\r\n|\n", eol.group(), c.text))
