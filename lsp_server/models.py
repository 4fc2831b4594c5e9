"""Which model and how it runs, shared by the LSP server, the CLI and the team server (team/): the model's
options (`ModelOptions`, the `model` group of options.Options) and the bridge from options to the engine:
load a model, fetch a Hub checkpoint, the engine's sampler and memory configs, a loaded model's status
fields.

Imports neither infill nor tree-sitter (nor lsp_server.options, which imports infill): the team server's
replicas import this module and need neither. The completion half (a Filler over a model, infill.complete)
is completion/filler.py.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Annotated, Literal

import msgspec
from msgspec import Meta

if TYPE_CHECKING:
    from .options import MemoryOptions, SamplerOptions

MAX_THREADS = 4
MIN_CONTEXT = 64  # tokens of context kept even for models with few positions
# oneDNN (bf16 matmuls on the CPU) and PyTorch's ideep layer each cache 1,024 kernels by input shape, and
# every context length is a new shape: a server grew by 200 MB over its first 3,000 completions and kept
# growing (bench/soak.py). 64 each kept it flat with no change in latency (bench/RESULTS.md, Soak). Read at
# the first forward, so setting them in load() is early enough; a value in the environment wins.
SHAPE_CACHES = {"ONEDNN_PRIMITIVE_CACHE_CAPACITY": "64", "LRU_CACHE_CAPACITY": "64"}
# engine imports torch (seconds): imported here, inside functions, so the server answers `initialize` first.

# a team server (remote/remote.py): http(s), a host and maybe a port and a path; no credentials in it
_HOST = r"([A-Za-z0-9._~\-]+|\[[0-9A-Fa-f:.]+\])(:\d+)?"  # a name or an IPv4 or [IPv6] address, a port
REMOTE_URL = rf"^https?://{_HOST}(/[^\s?#]*)?$"
TOKEN = r"^[!-~]+$"  # visible ASCII: it goes into an HTTP header as it is


# configured as the other option groups (options._Options): camelCase on the wire, unknown fields refused
class ModelOptions(msgspec.Struct, frozen=True, rename="camel", forbid_unknown_fields=True):
    # a checkpoint folder or a Hugging Face id `org/name[@revision]` (engine/hub.py); None: the embedded model
    path: str | None = None
    device: Annotated[str, Meta(pattern=r"^(cpu|cuda(:\d+)?|mps)$")] = "cpu"
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"  # auto: bf16 where native
    threads: Annotated[int, Meta(ge=0)] = 0  # torch CPU threads; 0 = half the CPUs, at most 4
    # int8: linear layers (and experts) in int8; int4: in group-wise int4 (engine/int4.py); auto: int8 on a
    # CPU without native bf16, for small models (engine/quantize.py)
    quantize: Literal["none", "int8", "int4", "auto"] = "auto"
    # a team server's URL: completions are denoised there (POST {remote}/v1/infill), the rest stays here;
    # the options above are then the team server's business
    remote: Annotated[str, Meta(pattern=REMOTE_URL)] | None = None
    token: Annotated[str, Meta(pattern=TOKEN)] | None = None  # sent as `Authorization: Bearer <token>`



def load(opts: ModelOptions):
    """engine.load_model for these options (the embedded model when opts.path is None); a Hub id not yet
    cached downloads first, with huggingface_hub's progress bars on stderr (the server fetches first). A team
    server (opts.remote) is remote/remote.py's RemoteModel, which its callers make themselves."""
    assert opts.remote is None, "models.load loads a model here; a team server is a remote.RemoteModel"
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


def sampler_config(opts: SamplerOptions, name: str | None = None, masked: bool = True):
    """The user's sampler options over the catalogue's recommendation for the model `name` (a Hub id or a
    Hub-cache folder; engine/catalogue.py) over the built-in defaults. masked False (a family that decodes
    its own way, not capabilities.sampler: DiffusionGemma): only the step count."""
    from engine.catalogue import find
    from engine.params import SamplerConfig

    entry = find(name)
    settings = opts.resolve(entry.sampler.settings() if entry else None)
    return SamplerConfig(**settings) if masked else SamplerConfig(steps=settings["steps"])


def sampler_for(opts: SamplerOptions, model):
    """sampler_config for a model (engine.api.CompletionModel), by its name and capabilities."""
    return sampler_config(opts, model.info.name, model.capabilities.sampler)


def memory_config(opts: MemoryOptions):
    """engine.MemoryConfig for these options; None when the memory is off."""
    from engine.params import MemoryConfig

    if not opts.enabled:
        return None
    return MemoryConfig(weight=opts.weight, half_length=opts.half_length, min_length=opts.min_length,
                        count_prior=opts.count_prior, right=opts.right, corpus_weight=opts.corpus_weight,
                        corpus_half_length=opts.corpus_half_length, corpus_min_length=opts.corpus_min_length)


def describe(model) -> dict:
    """The status fields of a model loaded here (a Hub model by its id), from its engine.ModelInfo."""
    import torch

    info = model.info
    return {"threads": torch.get_num_threads(), "model": info.name, "family": info.family,
            "device": info.device, "dtype": info.dtype, "quantize": info.quantize}
