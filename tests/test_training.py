import dataclasses
import json
import math

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

import engine
from engine.params import InfillParams
from engine.training import bpe, corpus, export, loop, objective, prepare
from engine.training.data import BatchSource, InfillSampler, infill_row, pick_span, plain_rows

SOURCE = '''import os


def walk(root, depth=0):
    """Yield files under root."""
    for name in sorted(os.listdir(root)):
        path = os.path.join(root, name)
        if os.path.isdir(path):
            yield from walk(path, depth + 1)
        else:
            yield path


class Counter:
    def __init__(self):
        self.n = 0

    def add(self, k=1):
        self.n += k
        return self.n
'''
TINY = loop.TrainConfig(hidden_size=32, num_layers=2, num_heads=2, num_kv_heads=1, intermediate_size=64,
                        seq_len=64, batch_size=4, warmup_steps=2, steps=3, eval_every=3, val_batches=1,
                        ckpt_minutes=60.0, bf16=False)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    """A data folder as `prepare` writes it, from a few synthetic files, with a 300-token BPE."""
    out = tmp_path_factory.mktemp("data")
    files = [corpus.SourceFile(f"pkg/mod{i}.py", split, SOURCE.replace("walk", f"walk{i}"))
             for i, split in enumerate(["train"] * 12 + ["val"] * 2 + ["test"])]
    corpus.write(files, out, with_sdists=False)
    prepare.tokenize(out, vocab_size=300)
    return out


def test_split_is_deterministic_and_about_two_percent():
    names = [f"stdlib/m{i}.py" for i in range(5000)]
    splits = [corpus.split_of(n) for n in names]
    assert splits == [corpus.split_of(n) for n in names]
    held = sum(s != "train" for s in splits) / len(splits)
    assert 0.01 < held < 0.03
    assert corpus.file_list_hash(["b", "a"]) == corpus.file_list_hash(["a", "b"])


def test_unparsable_files_are_dropped():
    assert corpus.usable("x = 1\n")
    assert not corpus.usable("def f(:\n")
    assert not corpus.usable("   \n")


def test_tokenizer_has_special_tokens_and_keeps_line_ends_as_boundaries(data_dir):
    tok = bpe.load(data_dir / "tokenizer.json")
    ids = bpe.special_ids(tok)
    assert {ids["eos_token_id"], ids["mask_token_id"]} == {0, 1}
    assert tok.decode(tok.encode(SOURCE).ids) == SOURCE
    pieces = tok.encode("        return self.n\n    def add(self):\n        pass\n").tokens
    newlines = [p for p in pieces if "Ċ" in p]
    assert len(newlines) == 3 and all(p.endswith("Ċ") and not p.strip("ĊĠ") for p in newlines)
    side = json.loads((data_dir / "tokenizer_config.json").read_text())
    assert side["mask_token"] == bpe.MASK and side["eos_token"] == bpe.EOS


def test_row_loss_is_unbiased_in_t():
    # CE = 2 everywhere: (1/t) * sum(masked CE) / L must average 2 for any t; dividing by the number of
    # masked tokens (and keeping 1/t) would give 2/t.
    g = torch.Generator().manual_seed(0)
    length = 400
    ce = torch.full((2000, length), 2.0)
    for t in (0.05, 0.5, 0.95):
        tt = torch.full((2000,), t)
        _, masked = objective.add_noise(torch.zeros(2000, length, dtype=torch.long),
                                        torch.ones(2000, length, dtype=torch.bool), tt, 1, g)
        got = objective.row_losses(ce, masked, tt, torch.full((2000,), float(length))).mean().item()
        assert abs(got - 2.0) < 0.05, (t, got)


def test_count_estimator_masks_exactly_k_maskable_positions():
    g = torch.Generator().manual_seed(0)
    ids = torch.zeros(64, 50, dtype=torch.long)
    maskable = torch.zeros(64, 50, dtype=torch.bool)
    maskable[:, 10:30] = True
    length = torch.full((64,), 20.0)
    noisy, masked, t = objective.add_noise_count(ids, maskable, length, 1, g)
    k = masked.sum(1).float()
    assert not (masked & ~maskable).any() and torch.equal(noisy == 1, masked)
    assert torch.equal(k, t * length) and k.min() >= 1 and k.max() <= 20
    assert sorted(set(k.long().tolist())) == list(range(1, 21))  # stratified: every count appears
    # with CE = 2 everywhere the row loss is exactly 2 whatever k is: no variance from the mask count
    losses = objective.row_losses(torch.full((64, 50), 2.0), masked, t, length)
    torch.testing.assert_close(losses, torch.full((64,), 2.0))


def test_t_is_stratified_over_the_batch():
    t = objective.sample_t(8, torch.Generator().manual_seed(3))
    slots = sorted(((t - objective.T_MIN) / (1 - objective.T_MIN) * 8).floor().long().tolist())
    assert slots == list(range(8))


def test_shift_reads_the_previous_output():
    logits = torch.arange(4.0).view(1, 4, 1)
    assert objective.shift(logits).flatten().tolist() == [0.0, 0.0, 1.0, 2.0]


def test_sparse_head_loss_equals_full_loss(data_dir):
    tok = bpe.load(data_dir / "tokenizer.json")
    torch.manual_seed(0)
    model = engine.model.Transformer(TINY.model_config(tok.get_vocab_size()))
    source = loop.batch_source(data_dir, tok, 0, TINY, "train", 0)
    batch = source.batch(0)
    sparse, _ = loop.batch_loss(model, batch, 1, loop.noise_generator(0, 0))
    g = loop.noise_generator(0, 0)
    t = objective.sample_t(batch.ids.shape[0], g)
    noisy, masked = objective.add_noise(batch.ids, batch.maskable, t, 1, g)
    full = objective.diffusion_loss(model(noisy), batch.ids, masked, t, batch.length)
    torch.testing.assert_close(sparse, full, rtol=1e-5, atol=1e-5)


def test_infill_row_layout(data_dir):
    tok = bpe.load(data_dir / "tokenizer.json")
    a = SOURCE.index("self.n += k")
    b = SOURCE.index("\n", a)
    row, start, canvas = infill_row(tok, SOURCE, (a, b), 128, 0, 96, np.random.default_rng(0))
    middle = tok.encode("self.n += k").ids
    assert row[start : start + len(middle)].tolist() == middle
    assert (row[start + len(middle) : start + canvas] == 0).all()  # padding inside the canvas is EOS
    assert len(middle) <= canvas <= 3 * len(middle) + 4
    prefix = tok.encode(SOURCE[:a]).ids
    assert row[:start].tolist() == prefix[len(prefix) - start :]
    suffix = tok.encode(SOURCE[b:]).ids
    after = row[start + canvas :].tolist()
    # then EOS, as the engine ends it
    assert after[: len(suffix)] == suffix and set(after[len(suffix) :]) == {0}


@pytest.mark.parametrize("kind", ["rest_of_line", "whole_line", "lines", "block"])
def test_spans_end_at_a_line_end(kind):
    rng = np.random.default_rng(1)
    for _ in range(30):
        a, b = pick_span(SOURCE, kind, rng)
        assert 0 <= a < b <= len(SOURCE)
        line_start = SOURCE.rfind("\n", 0, a) + 1
        assert SOURCE[b] == "\n" and SOURCE[a] != "\n"
        if kind != "rest_of_line":  # at the line start or just after the indentation
            assert not SOURCE[line_start:a].strip() and (a == line_start or SOURCE[a] != " ")
        if kind in ("rest_of_line", "whole_line"):
            assert "\n" not in SOURCE[a:b]
    body_start = SOURCE.index("self.n += k")
    spans = {pick_span(SOURCE, "block", np.random.default_rng(s)) for s in range(60)}
    assert (body_start, SOURCE.index("\n", SOURCE.index("return self.n"))) in spans


def test_batches_mask_only_canvases_and_are_reproducible(data_dir):
    tok = bpe.load(data_dir / "tokenizer.json")
    source = loop.batch_source(data_dir, tok, 0, TINY, "train", 7)
    b1, b2 = source.batch(5), loop.batch_source(data_dir, tok, 0, TINY, "train", 7).batch(5)
    assert torch.equal(b1.ids, b2.ids) and torch.equal(b1.maskable, b2.maskable)
    n_plain = TINY.batch_size - source.n_infill
    assert b1.maskable[:n_plain].all()
    assert (b1.maskable[n_plain:].sum(1).float() == b1.length[n_plain:]).all()
    assert not torch.equal(source.batch(6).ids, b1.ids)


def test_plain_rows_cover_each_epoch_once():
    stream = np.arange(10 * 8 + 5, dtype=np.uint16)
    n = (len(stream) - 8) // 8
    rows = plain_rows(stream, 8, seed=0, first=0, count=n)
    starts = sorted(int(r[0]) % 8 for r in rows)
    assert len(set(int(r[0]) for r in rows)) == n and len(set(starts)) == 1
    assert np.array_equal(plain_rows(stream, 8, 0, 3, 4), rows[3:7])


def test_lr_schedule_warms_up_holds_and_decays():
    cfg = dataclasses.replace(TINY, lr=1.0, warmup_steps=10, steps=100, decay_fraction=0.2, min_lr_ratio=0.1)
    assert loop.lr_at(cfg, 0, 0) == pytest.approx(0.1)
    assert loop.lr_at(cfg, 50, 0) == 1.0
    assert loop.lr_at(cfg, 90, 0) == pytest.approx(0.55)
    assert loop.lr_at(cfg, 100, 0) == pytest.approx(0.1)
    assert loop.lr_at(cfg, 50, 0, elapsed_frac=0.9) == pytest.approx(0.55)
    assert loop.lr_at(cfg, 5, 5) == pytest.approx(0.1)  # a continued run warms up again


def params(folder):
    return load_file(str(folder / "model.safetensors"))


def test_train_resume_is_exact_and_ships_a_loadable_model(data_dir, tmp_path):
    torch.set_num_threads(1)
    straight = loop.train(tmp_path / "a", data_dir, dataclasses.replace(TINY, steps=4))
    loop.train(tmp_path / "b", data_dir, dataclasses.replace(TINY, steps=2))
    resumed = loop.train(tmp_path / "b", data_dir, dataclasses.replace(TINY, steps=4))
    assert straight.step == resumed.step == 4 and straight.tokens_seen == 4 * TINY.batch_size * TINY.seq_len
    a, b = params(tmp_path / "a" / "ckpt"), params(tmp_path / "b" / "ckpt")
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=0, atol=1e-6)
    log = [json.loads(x) for x in (tmp_path / "a" / "log.jsonl").read_text().splitlines()]
    assert all(math.isfinite(r["loss"]) for r in log if "loss" in r) and any("val_loss" in r for r in log)
    log_b = [json.loads(x) for x in (tmp_path / "b" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log_b if "loss" in r] == [2, 4]

    cfg, state = loop.load_state(tmp_path / "a" / "ckpt")
    model = loop.load_model(tmp_path / "a" / "ckpt", "cpu")
    shipped = tmp_path / "shipped"
    assert export.ship_if_better(model, shipped, data_dir, tmp_path / "a", cfg, state, {"val_loss": 5.0})
    assert not export.ship_if_better(model, shipped, data_dir, tmp_path / "a", cfg, state, {"val_loss": 6.0})
    assert "tokens seen: 1,024" in (shipped / "MODEL_CARD.md").read_text().lower().replace("\n  ", " ")
    lm = engine.load_model(shipped)
    assert lm.tokenizer.mask_id == 1 and lm.tokenizer.eos_id == 0
    assert lm.config.max_position_embeddings == TINY.seq_len
    result = lm.infill("def add(a, b):\n    return ", "\n", InfillParams(canvas=4))
    assert result.stats.canvas == 4

    continued = loop.train(tmp_path / "c", data_dir, dataclasses.replace(TINY, steps=5), init=shipped)
    assert continued.step == 5 and continued.schedule_start == 4
    log_c = [json.loads(x) for x in (tmp_path / "c" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log_c if "loss" in r] == [4, 5]  # the shipped model's history continues


def test_validation_rows_do_not_depend_on_the_training_batch_size(data_dir, tmp_path):
    # A GPU run trains with larger batches; its validation loss must still compare with the shipped model's.
    torch.set_num_threads(1)
    frozen = dict(steps=1, eval_every=1, lr=0.0, warmup_steps=1)
    vals = []
    for batch_size in (4, 8):
        run = tmp_path / f"b{batch_size}"
        loop.train(run, data_dir, dataclasses.replace(TINY, batch_size=batch_size, **frozen))
        log = [json.loads(x) for x in (run / "log.jsonl").read_text().splitlines()]
        vals.append([r["val_loss"] for r in log if "val_loss" in r])
    assert vals[0] and vals[0] == vals[1]


def test_ar_loss_is_next_token_cross_entropy_with_causal_attention(data_dir):
    torch.manual_seed(0)
    model = loop.Transformer(TINY.model_config(300))
    batch = BatchSource(load_stream_of(data_dir), InfillSampler(bpe.load(data_dir / "tokenizer.json"),
                        corpus.read(data_dir, "train"), 0, TINY.seq_len), TINY.seq_len, 2, 0.0, 0).batch(0)
    loss, rows = loop.ar_loss(model, batch)
    logits = model(batch.ids, causal=True)  # the engine's own causal forward, raw logits
    expected = torch.nn.functional.cross_entropy(logits[:, :-1].flatten(0, 1), batch.ids[:, 1:].flatten())
    torch.testing.assert_close(loss, expected, rtol=1e-5, atol=1e-5)
    # causal: changing the last token leaves every earlier prediction alone
    changed = batch.ids.clone()
    changed[:, -1] = (changed[:, -1] + 1) % 300
    torch.testing.assert_close(model(changed, causal=True)[:, :-1], logits[:, :-1])


def load_stream_of(data_dir):
    from engine.training.data import load_stream

    return load_stream(data_dir / "tokens-train.bin")


def test_an_ar_run_adapts_to_diffusion_from_its_checkpoint(data_dir, tmp_path):
    torch.set_num_threads(1)
    ar = loop.train(tmp_path / "ar", data_dir, dataclasses.replace(TINY, objective="ar", infill_fraction=0.0))
    assert ar.step == TINY.steps
    adapted = loop.train(tmp_path / "adapt", data_dir, dataclasses.replace(TINY, steps=5),
                         init=tmp_path / "ar" / "ckpt")
    assert adapted.step == 5 and adapted.schedule_start == TINY.steps and adapted.tokens_seen > ar.tokens_seen
    cfg, _ = loop.load_state(tmp_path / "adapt" / "ckpt")
    assert cfg.objective == "diffusion"


def test_resuming_applies_schedule_options_and_refuses_data_order_changes(data_dir, tmp_path):
    torch.set_num_threads(1)
    loop.train(tmp_path / "r", data_dir, dataclasses.replace(TINY, steps=2))
    with pytest.raises(loop.ResumeConflict, match="batch_size is 4 in this run, not 8"):
        loop.train(tmp_path / "r", data_dir, dataclasses.replace(TINY, steps=3, batch_size=8),
                   given=("batch_size",))
    loop.train(tmp_path / "r", data_dir, dataclasses.replace(TINY, steps=3, lr=1e-4), given=("lr",))
    cfg, state = loop.load_state(tmp_path / "r" / "ckpt")
    assert cfg.lr == 1e-4 and state.step == 3


def test_hardware_names_the_cpu_and_the_training_dtype():
    assert loop.hardware("cpu", bf16=False).endswith(", fp32")
    assert "threads" in loop.hardware("cpu", bf16=True)
    assert loop.hardware("cpu", True).endswith("bf16 autocast")


def test_multi_hole_rows_mask_every_canvas_and_keep_the_text_between(data_dir):
    tok = bpe.load(data_dir / "tokenizer.json")
    rng = np.random.default_rng(0)
    spans = [(SOURCE.index("for name"), SOURCE.index(":\n        path")),
             (SOURCE.index("self.n = 0"), SOURCE.index("self.n = 0") + len("self.n = 0"))]
    row, holes = multi_infill_row_of(tok, spans, rng)
    assert len(holes) == 2 and holes[0][0] < holes[1][0]
    for (start, canvas), (a, b) in zip(holes, spans):
        middle = tok.encode(SOURCE[a:b]).ids
        assert row[start : start + len(middle)].tolist() == middle
        assert set(row[start + len(middle) : start + canvas].tolist()) <= {0}  # EOS padding
    between = tok.encode(SOURCE[spans[0][1] : spans[1][0]]).ids
    first_end = holes[0][0] + holes[0][1]
    assert row[first_end : first_end + len(between)].tolist() == between
    sampler = InfillSampler(tok, corpus.read(data_dir, "train"), 0, TINY.seq_len * 4, holes=3)
    ids, maskable, lengths = sampler.rows(seed=0, step=0, count=8)
    assert (maskable.sum(1) == lengths).all()
    runs = (np.diff(maskable.astype(int), axis=1) == 1).sum(1)  # masked stretches per row
    assert runs.max() > 1


def multi_infill_row_of(tok, spans, rng):
    from engine.training.data import multi_infill_row

    return multi_infill_row(tok, SOURCE, spans, 256, 0, 96, rng)


def test_card_reports_each_language_share_and_its_own_rows():
    from engine.training.card import language_section

    mix = {"python": {"files": 3, "bytes": 600}, "go": {"files": 1, "bytes": 300},
           "rust": {"files": 1, "bytes": 100}}
    rows = [{"language": "go", "memory": "off", "line_exact_match": 0.25, "rest_exact_match": 0.5,
             "heldout_cases": 40}]
    text = language_section({"languages": mix}, rows)
    assert "python 60%, go 30%, rust 10%" in text
    assert "| go | off | 0.250 | - | 0.500 | - | 40 |" in text
    assert "Not measured yet" in language_section({"languages": mix}, [])
    assert "Python only" in language_section({}, rows)  # a corpus without other languages says so


def test_card_tables_take_only_the_default_options():
    from engine.training.card import ablation_table, server_humaneval

    row = {"project": "p", "kind": "line", "cases": 3, "exact": 0.5, "similarity": 0.7, "options": "{}"}
    experiment = {**row, "exact": 0.0, "options": '{"model": {"quantize": "none"}}'}
    network = {**row, "exact": 0.25, "options": '{"memory": {"enabled": false}}'}
    table = ablation_table([row, experiment, network], "project")
    assert "| p | line | fused | 3 | 50.0% |" in table and "| 0.0% |" not in table
    assert "| p | line | network | 3 | 25.0% |" in table
    he = {"humaneval_single_line_pass@1": 0.06, "tasks": 300, "answered": 250, "cursor": "line-start"}
    other = {**he, "humaneval_single_line_pass@1": 0.01, "options": '{"x": 1}'}
    assert "6.0%" in server_humaneval([he, other])


def test_card_says_when_the_adaptation_curve_was_measured_on_other_weights():
    from engine.training.card import adaptation_section

    def row(kind, base_tokens=None):
        r = {"set": "heldout", "tag": "heldout-anchor-x", "date": "2026-12-07T00:00:00", "project": "p",
             "kind": kind, "minutes": 0.0, "alone": {"exact_all_shown": 0.1}, "fused": {"exact": 0.3},
             "humaneval": {"pass@1": 0.05}}
        return r if base_tokens is None else {**r, "base_tokens": base_tokens}

    same = adaptation_section([row("rest", 100), row("line", 100)], tokens_seen=100)
    assert "| 0 | 10.0% | 30.0% | 30.0% | - |" in same and "earlier weights" not in same
    older = adaptation_section([row("rest", 50), row("line", 50)], tokens_seen=100)
    assert "Measured on earlier weights of this model (50 tokens seen)" in older
    assert "earlier weights of this model, not yet" in adaptation_section([row("rest")], tokens_seen=100)


def test_card_tables_of_other_weights_say_so():
    from engine.training.card import measured_on

    assert measured_on([{"tokens_seen": 7}, {"tokens_seen": 7}], 7) == ""
    assert "earlier weights" in measured_on([{"tokens_seen": 7}, {}], 7)
    assert "earlier weights" in measured_on([{"tokens_seen": 5}], 7)
