import math

import pytest
import torch

from engine.sample import (
    SamplerConfig,
    add_gumbel_noise,
    block_eligible,
    num_transfer_tokens,
    propose,
    select,
)


def gen(seed: int = 0, device: str = "cpu") -> torch.Generator:
    return torch.Generator(device=device).manual_seed(seed)


def logits_from_probs(*rows: list[float], device: str = "cpu") -> torch.Tensor:
    return torch.tensor(rows, device=device).log()  # zero probabilities become -inf logits


def committed(commit: torch.Tensor) -> set[int]:
    return set(commit.nonzero().flatten().tolist())


# ---- select


def test_most_confident_position_is_committed_first(device):
    cfg = SamplerConfig(threshold=None, tokens_per_step=1)
    conf = torch.tensor([0.2, 0.7, 0.4, 0.1], device=device)
    assert committed(select(conf, torch.ones(4, dtype=torch.bool, device=device), cfg)) == {1}
    assert committed(select(conf, torch.tensor([True, False, True, True], device=device), cfg)) == {2}


def test_threshold_commits_several_at_once_and_always_one(device):
    cfg = SamplerConfig(threshold=0.9)
    everyone = torch.ones(5, dtype=torch.bool, device=device)
    conf = torch.tensor([0.95, 0.3, 0.99, 0.92, 0.5], device=device)
    assert committed(select(conf, everyone, cfg)) == {0, 2, 3}
    some = torch.tensor([True, True, False, True, True], device=device)
    assert committed(select(conf, some, cfg)) == {0, 3}
    low = torch.tensor([0.1, 0.3, 0.2, 0.05, 0.25], device=device)
    assert committed(select(low, everyone, cfg)) == {1}
    assert committed(select(low, torch.zeros(5, dtype=torch.bool, device=device), cfg)) == set()


def test_threshold_with_a_fixed_minimum(device):
    cfg = SamplerConfig(threshold=0.9)
    everyone = torch.ones(4, dtype=torch.bool, device=device)
    conf = torch.tensor([0.95, 0.5, 0.4, 0.6], device=device)
    assert committed(select(conf, everyone, cfg, n_fixed=2)) == {0, 3}
    # tokens_per_step is the minimum per forward when a threshold is set
    at_least_two = SamplerConfig(threshold=0.9, tokens_per_step=2)
    assert committed(select(conf, everyone, at_least_two)) == {0, 3}
    high = torch.tensor([0.95, 0.5, 0.97, 0.93], device=device)
    assert committed(select(high, everyone, at_least_two)) == {0, 2, 3}


def test_equal_confidences_commit_leftmost_first(device):
    # topk's order among ties is the kernel's (on AVX-512 it picks index 6 of 8 here), so this pins it
    conf = torch.full((8,), 0.5, device=device)
    everyone = torch.ones(8, dtype=torch.bool, device=device)
    assert committed(select(conf, everyone, SamplerConfig(threshold=None))) == {0}
    assert committed(select(conf, everyone, SamplerConfig(threshold=None, tokens_per_step=3))) == {0, 1, 2}
    everyone[:2] = False
    assert committed(select(conf, everyone, SamplerConfig(threshold=0.9, tokens_per_step=2))) == {2, 3}


def test_fixed_count_commits_exactly_k(device):
    conf = torch.rand(20, generator=gen(3)).to(device)
    everyone = torch.ones(20, dtype=torch.bool, device=device)
    top3 = set(conf.topk(3).indices.tolist())
    assert committed(select(conf, everyone, SamplerConfig(threshold=None, tokens_per_step=3))) == top3
    assert select(conf, everyone, SamplerConfig(threshold=None), n_fixed=5).sum() == 5
    # a schedule step of 0 still commits one; fewer eligible than k commits only the eligible
    assert select(conf, everyone, SamplerConfig(threshold=None), n_fixed=0).sum() == 1
    few = torch.zeros(20, dtype=torch.bool, device=device)
    few[[4, 9]] = True
    assert committed(select(conf, few, SamplerConfig(threshold=None, tokens_per_step=6))) == {4, 9}


# ---- confidence kinds


def test_margin_and_entropy_rank_correctly(device):
    tie = [0.45, 0.45, 0.1, 0.0, 0.0]  # high top-1, no margin, low entropy
    spread = [0.4, 0.15, 0.15, 0.15, 0.15]  # lower top-1, wide margin, high entropy
    logits = logits_from_probs(tie, spread, device=device)

    _, top1 = propose(logits, SamplerConfig(confidence="confidence"), gen())
    _, margin = propose(logits, SamplerConfig(confidence="margin"), gen())
    _, entropy = propose(logits, SamplerConfig(confidence="entropy"), gen())
    assert top1[0] > top1[1] and margin[1] > margin[0] and entropy[0] > entropy[1]
    assert margin.tolist() == pytest.approx([0.0, 0.25], abs=1e-6)
    h_spread = -(0.4 * math.log(0.4) + 4 * 0.15 * math.log(0.15))
    assert entropy[1].item() == pytest.approx(math.exp(-h_spread), rel=1e-5)
    assert not entropy.isnan().any()

    peaked = [0.6, 0.1, 0.1, 0.1, 0.1]  # beats `half` on top-1, loses on entropy
    half = [0.5, 0.5, 0.0, 0.0, 0.0]
    logits = logits_from_probs(peaked, half, device=device)
    _, top1 = propose(logits, SamplerConfig(confidence="confidence"), gen())
    _, entropy = propose(logits, SamplerConfig(confidence="entropy"), gen())
    assert top1[0] > top1[1] and entropy[1] > entropy[0]


def test_greedy_proposal_is_argmax_with_untempered_probability(device):
    logits = torch.randn(8, 50, generator=gen(1)).to(device)
    x0, conf = propose(logits, SamplerConfig(top_k=3, top_p=0.5), gen())
    assert torch.equal(x0, logits.argmax(-1))
    assert torch.allclose(conf, logits.softmax(-1).amax(-1))
    assert x0.dtype == torch.long and conf.dtype == torch.float32


# ---- temperature, top-p, top-k


def test_top_k_one_equals_argmax(device):
    logits = torch.randn(256, 40, generator=gen(2)).to(device)
    x0, conf = propose(logits, SamplerConfig(temperature=2.0, top_k=1), gen(5, device))
    assert torch.equal(x0, logits.argmax(-1))
    assert torch.allclose(conf, torch.ones(256, device=device))


def test_top_p_keeps_the_nucleus(device):
    logits = logits_from_probs(*[[0.5, 0.3, 0.15, 0.05]] * 2000, device=device)
    x0, _ = propose(logits, SamplerConfig(temperature=1.0, top_p=0.7), gen(0, device))
    assert set(x0.tolist()) == {0, 1}
    x0, _ = propose(logits, SamplerConfig(temperature=1.0, top_p=0.45), gen(0, device))
    assert set(x0.tolist()) == {0}
    x0, _ = propose(logits, SamplerConfig(temperature=1.0), gen(0, device))
    assert set(x0.tolist()) == {0, 1, 2, 3}


@pytest.mark.parametrize(
    "cfg", [SamplerConfig(temperature=1.0, top_p=0.9), SamplerConfig(temperature=1.0, gumbel=True)]
)
def test_fixed_seed_repeats_and_other_seed_differs(cfg, device):
    logits = torch.randn(64, 100, generator=gen(0)).to(device)
    a, conf_a = propose(logits, cfg, gen(7, device))
    b, conf_b = propose(logits, cfg, gen(7, device))
    c, _ = propose(logits, cfg, gen(8, device))
    assert torch.equal(a, b) and torch.equal(conf_a, conf_b)
    assert not torch.equal(a, c)


def test_random_confidence_follows_the_generator(device):
    logits = torch.randn(32, 10, device=device)
    cfg = SamplerConfig(confidence="random")
    g = lambda seed: gen(seed, device)  # noqa: E731
    assert torch.equal(propose(logits, cfg, g(1))[1], propose(logits, cfg, g(1))[1])
    assert not torch.equal(propose(logits, cfg, g(1))[1], propose(logits, cfg, g(2))[1])


# ---- Gumbel (LLaDA)


def test_gumbel_noise_is_float64(device):
    # float64 wherever the device has it; Apple's MPS has none and gets float32
    wide = torch.float32 if torch.device(device).type == "mps" else torch.float64
    logits = torch.randn(4, 10, dtype=torch.bfloat16, device=device)
    noisy = add_gumbel_noise(logits, 1.0, gen(0, device))
    assert noisy.dtype == wide and noisy.isfinite().all()
    assert add_gumbel_noise(logits.float(), 0.0, gen(0, device)).dtype == wide


def test_gumbel_at_temperature_zero_is_argmax(device):
    logits = torch.randn(16, 30, generator=gen(4)).to(device)
    x0, conf = propose(logits, SamplerConfig(gumbel=True, temperature=0.0), gen())
    assert torch.equal(x0, logits.argmax(-1))
    assert torch.allclose(conf, logits.softmax(-1).amax(-1))


def test_gumbel_samples_the_softmax_and_reports_untempered_confidence(device):
    probs = [0.7, 0.2, 0.1]
    logits = logits_from_probs(*[probs] * 20000, device=device)
    x0, conf = propose(logits, SamplerConfig(gumbel=True, temperature=1.0), gen(11, device))
    freq = torch.bincount(x0, minlength=3).double() / x0.numel()
    assert freq.tolist() == pytest.approx(probs, abs=0.015)
    assert torch.allclose(conf, torch.tensor(probs, device=device)[x0])
    top1 = SamplerConfig(gumbel=True, temperature=1.0, top_k=1)
    x0, conf = propose(logits[:4], top1, gen(11, device))
    assert x0.tolist() == [0] * 4 and conf.tolist() == pytest.approx([0.7] * 4)  # top-k limits x0, not conf


# ---- schedule and blocks


def test_num_transfer_tokens_spreads_the_remainder_first():
    assert num_transfer_tokens(10, 4) == [3, 3, 2, 2]
    assert num_transfer_tokens(3, 5) == [1, 1, 1, 0, 0]
    assert num_transfer_tokens(8, 8) == [1] * 8
    assert sum(num_transfer_tokens(37, 6)) == 37
    with pytest.raises(ValueError, match="steps"):
        num_transfer_tokens(4, 0)


def test_block_eligible_picks_the_leftmost_unfinished_block(device):
    masked = torch.tensor([0, 0, 1, 1, 1, 1, 1, 1, 0, 1], dtype=torch.bool, device=device)
    assert block_eligible(masked, 4).tolist() == [0, 0, 1, 1, 0, 0, 0, 0, 0, 0]
    masked[:4] = False
    assert block_eligible(masked, 4).tolist() == [0, 0, 0, 0, 1, 1, 1, 1, 0, 0]
    masked[:8] = False
    assert block_eligible(masked, 4).tolist() == [0] * 9 + [1]
    assert torch.equal(block_eligible(masked, None), masked)
    assert not block_eligible(torch.zeros(6, dtype=torch.bool, device=device), 2).any()


# ---- config validation


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("confidence", "maskgit"),
        ("temperature", -0.1),
        ("temperature", float("nan")),
        ("top_p", 0.0),
        ("top_p", 1.5),
        ("top_k", -1),
        ("threshold", 0.0),
        ("threshold", 1.2),
        ("tokens_per_step", 0),
        ("block_size", 0),
        ("steps", 0),
        ("steps", 2.5),
    ],
)
def test_invalid_config_names_the_field(field, value):
    with pytest.raises(ValueError, match=f"SamplerConfig.{field}"):
        SamplerConfig(**{field: value})
