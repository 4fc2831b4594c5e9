"""Tiny DiffusionGemma checkpoints saved by transformers (a test dependency only) with their own tokenizer."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from tests.checkpoints import SAMPLE_CODE

SPECIALS = ["<pad>", "<eos>", "<bos>"]  # ids 0, 1, 2: transformers' defaults for pad, eos and bos
POST_NORM = 0.5  # with gain: the post-branch norms' weights, scaled down (reference)
TINY_VISION = dict(model_type="gemma4_vision", hidden_size=8, intermediate_size=8, num_hidden_layers=1,
                   num_attention_heads=1, num_key_value_heads=1, head_dim=8, patch_size=2,
                   position_embedding_size=4)


def write_tokenizer(folder: Path, vocab_size: int = 300) -> int:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIALS, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(SAMPLE_CODE * 20, trainer)
    folder.mkdir(parents=True, exist_ok=True)
    tok.save(str(folder / "tokenizer.json"))
    return tok.get_vocab_size()


def text_config(vocab_size: int, **overrides) -> dict:
    # sliding layers (own K and V, window 4) and full ones (K = V, wider heads, fewer KV heads, proportional
    # RoPE on a quarter of the pairs), alternating; 4 experts, 2 per token. overrides may replace any field.
    shape = dict(vocab_size=vocab_size, hidden_size=16, intermediate_size=32, num_hidden_layers=4,
                 layer_types=["sliding_attention", "full_attention"] * 2,
                 num_attention_heads=4, num_key_value_heads=2, head_dim=8, global_head_dim=16,
                 num_global_key_value_heads=1, num_experts=4, top_k_experts=2, moe_intermediate_size=8,
                 sliding_window=4, max_position_embeddings=512)
    return shape | overrides


def reference(vocab_size: int, seed: int = 0, canvas_length: int = 8, gain: float | None = None,
              **overrides):
    """A random DiffusionGemmaForBlockDiffusion with weights far enough from their init (norms, scalars,
    router scales) that every term of the forward pass matters. gain: a model calm enough to compare a
    quantized copy with: matrices N(0, gain / sqrt(fan-in)) as a trained layer's, in place of N(0, 0.15);
    q/k norms that give attention logits a unit spread; post-branch norms scaled by POST_NORM. The plain
    init at wider shapes turns a 0.5% change of the weights into a change of a third of the argmaxes."""
    from transformers import DiffusionGemmaConfig, DiffusionGemmaForBlockDiffusion

    config = DiffusionGemmaConfig(text_config=text_config(vocab_size, **overrides), vision_config=TINY_VISION,
                                  canvas_length=canvas_length)
    torch.manual_seed(seed)
    model = DiffusionGemmaForBlockDiffusion(config).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "vision" in name:
                continue
            if p.ndim == 1 or "scale" in name:
                p.copy_(1 + 0.3 * torch.randn_like(p))
                if gain is not None and name.endswith(("q_norm.weight", "k_norm.weight")):
                    p.mul_(p.shape[0] ** -0.25)  # unit-spread attention logits (scaling 1.0 in the model)
                if gain is not None and "post_" in name:
                    p.mul_(POST_NORM)
            else:
                std = 0.15 if gain is None else gain / p.shape[-1] ** 0.5
                p.normal_(0, 0.3 if "embed_tokens" in name else std)
        for name, b in model.named_buffers():
            if name.endswith("layer_scalar"):  # the encoder's differ from the decoder's
                b.copy_(0.5 + torch.rand_like(b))
    return model


def write_gemma_checkpoint(folder: Path, seed: int = 0, steps: int = 6, gain: float | None = None,
                           **overrides):
    """Save a tiny DiffusionGemma with transformers and its tokenizer; returns (folder, reference model)."""
    vocab = write_tokenizer(folder)
    model = reference(vocab, seed, gain=gain, **overrides)
    model.save_pretrained(folder)
    settings = dict(max_denoising_steps=steps, max_new_tokens=16, eos_token_id=[1], pad_token_id=0,
                    sampler_config={"entropy_bound": 0.1, "_cls_name": "EntropyBoundSamplerConfig"},
                    t_min=0.4, t_max=0.8, stability_threshold=1, confidence_threshold=0.005)
    (folder / "generation_config.json").write_text(json.dumps(settings), encoding="utf-8")
    return folder, model
