"""Native PyTorch inference for masked-diffusion code LMs (Dream, DiffuCoder, DreamOn, LLaDA, Open-dCoder,
DiffusionGemma).

The engine knows nothing of editors or syntax: it turns (text before, text after, InfillParams) into the
denoised middle, through the contract in engine/api.py. Names are imported on first use (PEP 562), so
`import engine` and the torch-free modules (engine.api, engine.params, engine.errors) never load torch.
"""

from __future__ import annotations

from importlib import import_module

# public name -> the module that defines it
_WHERE = {
    "Batcher": "engine.batch",
    "InfillRequest": "engine.batch",
    "Ticket": "engine.batch",
    "Cancelled": "engine.errors",
    "CheckpointError": "engine.errors",
    "DeviceUnavailable": "engine.errors",
    "DoesNotFit": "engine.errors",
    "HubError": "engine.errors",
    "Unsupported": "engine.errors",
    "Capabilities": "engine.api",
    "CompletionModel": "engine.api",
    "InfillResult": "engine.api",
    "InfillStats": "engine.api",
    "Memory": "engine.api",
    "ModelInfo": "engine.api",
    "InfillParams": "engine.params",
    "MemoryConfig": "engine.params",
    "SamplerConfig": "engine.params",
    "DiffusionLM": "engine.lm",
    "RepositoryMemory": "engine.memory",
    "Tokenizer": "engine.tokenizer",
    "load_model": "engine.registry",
}

__all__ = sorted(_WHERE)


def __getattr__(name: str):
    if name not in _WHERE:
        raise AttributeError(f"module 'engine' has no attribute {name!r}")
    value = getattr(import_module(_WHERE[name]), name)
    globals()[name] = value
    return value
