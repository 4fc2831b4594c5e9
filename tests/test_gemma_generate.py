"""DiffusionGemma's decoding against transformers: one denoising step, whole generations, settings, cancel."""

import json

import pytest
import torch

import engine
from engine.errors import Cancelled, CheckpointError
from engine.gemma import Sampling
from engine.gemma.sampling import accept, entropy, step, temperature
from engine.gemma.tokens import GemmaSpecial

pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def model(gemma_checkpoint):
    return engine.load_model(gemma_checkpoint[0])


def prompt_of(vocab: int, batch: int = 2, length: int = 10) -> torch.Tensor:
    return torch.randint(3, vocab, (batch, length), generator=torch.Generator().manual_seed(7))


def test_settings_come_from_generation_config(model, tmp_path):
    assert model.sampling == Sampling(steps=6, max_new_tokens=16)
    assert Sampling.from_checkpoint(tmp_path) == Sampling()  # no file: transformers' defaults
    (tmp_path / "generation_config.json").write_text(json.dumps({"max_denoising_steps": None, "t_min": 0.9}))
    with pytest.raises(CheckpointError, match=r"generation_config.json: Sampling.t_max must be above t_min"):
        Sampling.from_checkpoint(tmp_path)


def test_temperature_schedule_and_entropy_bound():
    s = Sampling(steps=4)
    assert [round(temperature(s, n), 3) for n in (4, 3, 2, 1)] == [0.8, 0.7, 0.6, 0.5]
    h = torch.tensor([[0.5, 0.0, 0.06, 0.05]])
    # sorted 0, 0.05, 0.06, 0.5: sums before each 0, 0, 0.05, 0.11 -> the first three fit under 0.1
    assert accept(h, 0.1).tolist() == [[False, True, True, True]]
    logits = torch.tensor([[0.0, 0.0], [50.0, 0.0]])
    assert torch.allclose(entropy(logits), torch.tensor([0.6931, 0.0]), atol=1e-4)


def test_one_step_equals_the_reference_step(model, gemma_checkpoint):
    # same canvas, same self-conditioning, same seed: same samples, acceptance, noise and argmax
    ref = gemma_checkpoint[1]
    vocab = model.config.vocab_size
    prompt = prompt_of(vocab)
    canvas = torch.randint(0, vocab, (2, 8), generator=torch.Generator().manual_seed(1))
    prev = 2 * torch.randn(2, 8, vocab, generator=torch.Generator().manual_seed(2))
    config, _ = ref._prepare_generation_config(None, max_denoising_steps=6)
    with torch.no_grad():
        cache = ref.model.encoder(input_ids=prompt).cache
        torch.manual_seed(5)
        want = ref._denoising_step(
            decoder_forward=ref.forward, current_canvas=canvas, argmax_canvas=canvas, input_ids=prompt,
            decoder_position_ids=torch.arange(10, 18)[None], self_conditioning_logits=prev,
            mask_mapping={"full_attention": None, "sliding_attention": None}, cache=cache,
            finished_denoising=torch.zeros(2, dtype=torch.bool), cur_step=4,
            sampler=ref._prepare_sampler(config), logits_processor=ref._prepare_logits_processor(config),
            diffusion_stopping_criteria=ref._prepare_diffusion_stopping_criteria(config),
        )
    got = step(model.canvas_logits(prompt, canvas, prev), canvas, 4, model.sampling, vocab,
               torch.Generator().manual_seed(5))
    assert torch.equal(got.canvas, want[0]) and torch.equal(got.argmax, want[1])
    assert (got.logits - want[2]).abs().max() < 1e-4
    assert 1 <= int(got.accepted.sum()) < 16  # some positions kept their sample, the rest are fresh noise


def stop_threshold(model, prompt: torch.Tensor, seed: int) -> float:
    # between the two rows' mean entropies at the first step: one row stops there, the other goes on
    vocab = model.config.vocab_size
    canvas = torch.randint(0, vocab, (2, 8), generator=torch.Generator().manual_seed(seed))
    h = entropy(model.canvas_logits(prompt, canvas) / temperature(Sampling(steps=6), 6)).mean(-1)
    return float(h.mean())


@pytest.mark.parametrize("stop", [None, "split"])
def test_generation_equals_the_reference(model, gemma_checkpoint, stop):
    # block after block (16 new tokens in canvases of 8), an end token, and the early stop off or on (stable
    # at once with stability 0; confident for one row only, which keeps its canvas while the other denoises)
    ref, vocab = gemma_checkpoint[1], model.config.vocab_size
    prompt = prompt_of(vocab)
    first = model.generate(prompt, sampling=Sampling(steps=6, max_new_tokens=16),
                           generator=torch.Generator().manual_seed(3))
    eos = int(first.ids[0, 2])  # a token row 0 writes early: it ends there
    confidence = stop_threshold(model, prompt, 3) if stop else None
    sampling = Sampling(steps=6, max_new_tokens=16, stability=0, confidence=confidence)
    torch.manual_seed(3)
    with torch.no_grad():
        want = ref.generate(prompt, eos_token_id=[eos], pad_token_id=0, max_denoising_steps=6,
                            max_new_tokens=16, stability_threshold=0, confidence_threshold=confidence)
    special = GemmaSpecial(eos=(eos,), pad=0, bos=2)
    got = engine.gemma.generate(model.model, prompt, sampling, special, torch.Generator().manual_seed(3))
    assert torch.equal(got.ids, want.sequences[:, 10:])
    assert torch.allclose(got.tokens_per_forward, want.tokens_per_forward.float())
    if stop:
        assert got.forwards.min() < 6  # a row stopped early
    else:
        assert got.ids[0, 3:].eq(0).all() and got.forwards.tolist() == [6, 12]  # row 0 ended in canvas 1


def test_generation_is_cancellable_between_steps(model):
    calls = []

    def cancel():
        calls.append(1)
        return len(calls) > 2

    with pytest.raises(Cancelled):
        model.generate(prompt_of(model.config.vocab_size), generator=torch.Generator().manual_seed(0),
                       cancel=cancel)
    assert len(calls) == 3


def test_fixed_seed_repeats_and_seeds_differ(model):
    prompt = prompt_of(model.config.vocab_size, batch=1)
    a, b, c = (model.generate(prompt, generator=torch.Generator().manual_seed(s)).ids for s in (1, 1, 2))
    assert torch.equal(a, b) and not torch.equal(a, c)
