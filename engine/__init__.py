"""Native PyTorch inference for masked-diffusion code LMs (Dream, DiffuCoder, DreamOn, LLaDA, Open-dCoder).

The engine knows nothing of editors or syntax: it turns (text before, text after, a canvas size) into the
denoised middle.
"""

from engine.batch import Batcher, InfillRequest, Ticket
from engine.errors import Cancelled, CheckpointError, DeviceUnavailable, DoesNotFit, HubError
from engine.lm import DiffusionLM, InfillResult, InfillStats, load_model
from engine.memory import MemoryConfig, RepositoryMemory
from engine.sample import SamplerConfig
from engine.tokenizer import Tokenizer

__all__ = [
    "Batcher",
    "Cancelled",
    "CheckpointError",
    "DeviceUnavailable",
    "DiffusionLM",
    "DoesNotFit",
    "HubError",
    "InfillRequest",
    "InfillResult",
    "InfillStats",
    "MemoryConfig",
    "RepositoryMemory",
    "SamplerConfig",
    "Ticket",
    "Tokenizer",
    "load_model",
]
