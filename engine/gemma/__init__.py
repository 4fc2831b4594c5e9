"""DiffusionGemma (google/diffusiongemma-*): block diffusion with a causal encoder and a bidirectional
decoder.

Text only: the vision tower's weights are skipped. `engine.load_model` returns a DiffusionGemmaLM for these
checkpoints; its canvas_logits equal transformers' DiffusionGemmaForBlockDiffusion logits.
"""

from engine.gemma.config import GemmaConfig
from engine.gemma.generate import Generated, denoise, generate
from engine.gemma.lm import DiffusionGemmaLM, load_gemma
from engine.gemma.load import is_diffusion_gemma
from engine.gemma.sampling import Sampling

__all__ = [
    "DiffusionGemmaLM",
    "GemmaConfig",
    "Generated",
    "Sampling",
    "denoise",
    "generate",
    "is_diffusion_gemma",
    "load_gemma",
]
