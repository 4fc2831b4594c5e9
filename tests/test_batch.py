"""engine/batch.py: batched answers equal unbatched ones; rows join, leave and respect max_batch."""

import dataclasses
import time

import pytest
import torch

import engine
from engine import quantize
from engine.batch import Batcher, InfillRequest
from engine.errors import Unsupported
from engine.kv_cache import KVCache, SlotCache
from engine.memory import MemoryConfig, RepositoryMemory
from engine.params import InfillParams
from engine.sample import SamplerConfig

PROJECT = (
    "class Rect:\n    def __init__(self, width, height):\n        self.width = width\n"
    "        self.height = height\n\n    def area(self):\n        return self.width * self.height\n"
)
SLOW = SamplerConfig(threshold=None)  # one token per forward: a request stays in the batch a while


@pytest.fixture(scope="module")
def model(tiny_checkpoint):
    return engine.load_model(tiny_checkpoint)


def requests() -> list[InfillRequest]:
    code = "import os\nimport sys\n\nclass Point:\n    def __init__(self, x, y):\n        self.x = x\n"
    return [
        InfillRequest("def add(a, b):\n    return ", "\n", InfillParams(canvas=6)),
        InfillRequest(code * 3, "\n        self.y = y\n",
                InfillParams(canvas=12, sampler=SLOW, single_line=True)),
        InfillRequest("for i in range(10):\n    ", "\n    print(i)\n" * 4,
                InfillParams(canvas=9, seed=3, sampler=SamplerConfig(
                    temperature=1.0, top_p=0.9, threshold=None, tokens_per_step=2))),
        InfillRequest("x = ", "",
                InfillParams(canvas=5, seed=7, sampler=SamplerConfig(temperature=0.7, gumbel=True,
                                                                          confidence="margin"))),
        InfillRequest("def area(rect):\n    return rect.width * ", "\n",
                InfillParams(canvas=10, single_line=True, memory=MemoryConfig(weight=0.9)),
                extra=(("rect.py", PROJECT), ("other.py", code))),
        InfillRequest(code, "\n" + code,
                InfillParams(canvas=16, sampler=SamplerConfig(block_size=4, steps=8), memory=MemoryConfig()),
                extra=(
            ("rect.py", PROJECT),)),
    ]


def alone(model, request: InfillRequest, cache: bool = False, refresh: int = 8):
    """The unbatched answer: model.infill with the request's own memory as the model's."""
    model.memory = RepositoryMemory()
    for name, text in request.extra:
        model.memory.update(name, text)
    return model.infill(request.prefix, request.suffix,
                        dataclasses.replace(request.params, cache=cache, refresh=refresh))


def same(a, b) -> bool:
    close = a.confidence == pytest.approx(b.confidence, abs=1e-5)
    return (a.text, a.stats.forward_passes) == (b.text, b.stats.forward_passes) and close


def test_padded_batch_logits_equal_each_row_alone(model):
    net = model.model
    lengths = [7, 19, 12]
    rows = [torch.randint(2, 250, (n,), generator=torch.Generator().manual_seed(n)) for n in lengths]
    ids = torch.zeros(3, 19, dtype=torch.long)
    real = torch.zeros(3, 19, dtype=torch.bool)
    for b, r in enumerate(rows):
        ids[b, : len(r)], real[b, : len(r)] = r, True
    with torch.inference_mode():
        batched = net(ids, mask=real)
        for b, r in enumerate(rows):
            assert torch.allclose(batched[b, : len(r)], net(r[None])[0], atol=1e-5)
        # per-row output rows [B, R]
        picked = net(ids, rows=torch.tensor([[0, 6], [18, 3], [11, 11]]), mask=real)
        assert torch.allclose(picked[1, 0], batched[1, 18], atol=1e-5)


def test_slot_cache_windows_equal_the_single_row_cache(model):
    # each row's window against its slot equals CanvasLogits' window against a one-row KVCache
    net, cfg = model.model, model.config
    lengths, windows = [9, 15], [(3, 7), (5, 12)]
    rows = [torch.randint(2, 250, (n,), generator=torch.Generator().manual_seed(n)) for n in lengths]
    slots = SlotCache(cfg.num_layers, 4, cfg.num_kv_heads, cfg.head_dim, torch.float32, "cpu")
    slots.reserve(max(lengths))
    ids = torch.zeros(2, 15, dtype=torch.long)
    real = torch.zeros(2, 15, dtype=torch.bool)
    for b, r in enumerate(rows):
        ids[b, : len(r)], real[b, : len(r)] = r, True
    positions = torch.arange(15).expand(2, 15).clone()
    positions[~real] = slots.scratch
    width = max(e - s for s, e in windows)
    win = torch.zeros(2, width, dtype=torch.long)
    at = torch.full((2, width), slots.scratch)
    for b, (s, e) in enumerate(windows):
        win[b, : e - s], at[b, : e - s] = rows[b][s:e], torch.arange(s, e)
    with torch.inference_mode():
        net(ids, positions, slots.fill(torch.tensor([0, 1])), mask=real)
        got = net(win, at, slots.window(2, 15), mask=real)
        for b, (r, (s, e)) in enumerate(zip(rows, windows)):
            cache = KVCache(cfg.num_layers, 1, cfg.num_kv_heads, len(r), cfg.head_dim, torch.float32, "cpu")
            net(r[None], 0, cache)
            want = net(r[None, s:e], s, cache)[0]
            assert torch.allclose(got[b, : e - s], want, atol=1e-5)


def test_batched_answers_equal_unbatched_ones_without_the_cache(model):
    reqs = requests()
    want = [alone(model, r) for r in reqs]
    with Batcher(model, max_batch=8, cache=False, padding=float("inf")) as batcher:  # one padded forward
        got = batcher.run(reqs)
        stats = batcher.stats()
    for w, g in zip(want, got):
        assert same(w, g)
    assert stats["completed"] == len(reqs) and max(stats["batch_sizes"]) > 1
    assert sum(g.stats.batch for g in got) > len(got)  # rows really shared forwards


def test_batched_answers_equal_unbatched_ones_with_the_cache(model):
    # rows refresh on their own schedules: a joining row's full forward, the others' windows
    reqs = requests()
    with Batcher(model, max_batch=8, cache=True, refresh=4, padding=float("inf")) as batcher:
        got = batcher.run(reqs)
    assert all(same(alone(model, r, cache=True, refresh=4), g) for r, g in zip(reqs, got))


@pytest.mark.parametrize("cache", [False, True])
def test_a_request_joining_mid_denoising_gets_its_unbatched_answer(model, cache):
    first = InfillRequest("import os\n" * 20, "\n", InfillParams(canvas=40, sampler=SLOW))
    late = requests()[2]
    with Batcher(model, max_batch=4, cache=cache, padding=float("inf")) as batcher:
        a = batcher.submit(first)
        while batcher.stats()["forwards"] < 3:
            time.sleep(0.001)
        b = batcher.submit(late)
        ra, rb = a.future.result(), b.future.result()
    assert rb.stats.batch > 1 and rb.stats.queue_ms < ra.stats.ms  # it shared forwards with the first
    assert same(ra, alone(model, first, cache))
    assert same(rb, alone(model, late, cache))


def test_cancelled_and_late_requests_leave_and_the_others_finish(model):
    long = InfillRequest("import os\n" * 20, "\n", InfillParams(canvas=40, sampler=SLOW))
    keep = requests()[:2]
    with Batcher(model, max_batch=8, cache=False) as batcher:
        tickets = [batcher.submit(r) for r in keep]
        doomed = batcher.submit(long)
        late = batcher.submit(InfillRequest("x = ", "\n",
                InfillParams(canvas=300, sampler=SLOW), deadline=time.monotonic() + 0.1))
        expired = batcher.submit(InfillRequest("y = ", "\n", deadline=time.monotonic() - 1))
        while batcher.stats()["forwards"] < 2:
            time.sleep(0.001)
        doomed.cancel()
        for t in (doomed, late, expired):
            with pytest.raises(engine.Cancelled):
                t.future.result(timeout=30)
        got = [t.future.result() for t in tickets]
        stats = batcher.stats()
    assert all(same(alone(model, r), g) for r, g in zip(keep, got))
    assert stats["cancelled"] == 3 and stats["completed"] == 2 and stats["active"] == 0


@pytest.mark.parametrize("max_batch", [1, 2])
def test_max_batch_is_respected(model, max_batch):
    reqs = requests()
    with Batcher(model, max_batch=max_batch, cache=True) as batcher:
        got = batcher.run(reqs)
        sizes = batcher.stats()["batch_sizes"]
    assert max(sizes) == max_batch
    assert all(same(alone(model, r, cache=True), g) for r, g in zip(reqs, got))


def test_close_cancels_what_is_left(model):
    batcher = Batcher(model, max_batch=1, cache=False)
    tickets = [batcher.submit(InfillRequest("import os\n", "\n",
            InfillParams(canvas=40, sampler=SLOW))) for _ in range(3)]
    batcher.close()
    for t in tickets:
        with pytest.raises(engine.Cancelled):
            t.future.result(timeout=10)
    with pytest.raises(engine.Cancelled):
        batcher.submit(InfillRequest("x", "y")).future.result(timeout=1)


@pytest.mark.parametrize("field, value", [
    ("prefix", None), ("suffix", 3), ("canvas", 0), ("canvas", 2.5), ("canvas", True), ("max_canvas", 0),
    ("single_line", "yes"), ("sampler", {"temperature": 1}), ("seed", "1"), ("deadline", float("nan")),
    ("memory", 0.9), ("extra", "a.py"), ("extra", (("a.py",),)), ("extra", {"a.py": "x"}),
])
def test_bad_request_fields_name_the_field(field, value):
    owner = "InfillRequest" if field in ("prefix", "suffix", "deadline", "extra") else "InfillParams"
    with pytest.raises(ValueError, match=rf"^{owner}\.{field} must be"):
        if owner == "InfillRequest":
            InfillRequest(**{"prefix": "x = ", "suffix": "\n", field: value})
        else:
            InfillRequest("x = ", "\n", InfillParams(**{field: value}))


def test_requests_and_batchers_the_model_cannot_serve_are_refused(model):
    assert InfillRequest("a", "b",
            InfillParams(memory=MemoryConfig()), extra=[["a.py", "x"]]).extra == (("a.py", "x"),)
    with pytest.raises(ValueError, match="^max_batch must be an integer >= 1"):
        Batcher(model, max_batch=0)
    with pytest.raises(ValueError, match="^padding must be >= 1"):
        Batcher(model, padding=0.5)
    with pytest.raises(Unsupported, match="object is not batched"):
        Batcher(object())
    with Batcher(model) as batcher:
        with pytest.raises(ValueError, match="^canvas 600 does not fit"):
            batcher.submit(InfillRequest("a", "b", InfillParams(canvas=600)))


def test_growing_canvas_checkpoints_are_served_one_at_a_time(tmp_path):
    from tests.checkpoints import write_dream_checkpoint

    dreamon = engine.load_model(write_dream_checkpoint(tmp_path, extra_specials=("<|expand|>",)))
    reqs = [InfillRequest("x = ", "\n", InfillParams(canvas=4, max_canvas=8, sampler=SLOW)), requests()[0]]
    with Batcher(dreamon, max_batch=4) as batcher:
        got = batcher.run(reqs)
    want = [dreamon.infill("x = ", "\n", InfillParams(canvas=4, max_canvas=8, sampler=SLOW)),
            alone(dreamon, reqs[1], cache=True)]
    assert all(same(w, g) for w, g in zip(want, got))


def test_requests_never_see_the_model_memory_nor_each_other(model):
    prefix = "def area(rect):\n    return rect.width * "
    model.memory = RepositoryMemory()
    model.memory.update("someone-else.py", PROJECT)
    cfg = MemoryConfig(weight=0.99)
    with Batcher(model, max_batch=4, cache=False) as batcher:
        bare, own = batcher.run([InfillRequest(prefix, "\n",
                InfillParams(canvas=10, single_line=True, memory=cfg)),
                                 InfillRequest(prefix, "\n",
                                         InfillParams(canvas=10, single_line=True, memory=cfg),
                                         extra=(("rect.py", PROJECT),))])
    assert same(bare, model.infill(prefix, "\n",
            InfillParams(canvas=10, single_line=True, cache=False, memory=None)))
    assert own.text == "self.height" != bare.text  # its own memory, and only its own


@pytest.mark.skipif(not quantize.FBGEMM, reason="fbgemm (x86) quantizes fp32 activations")
def test_int8_rows_do_not_change_each_other(tiny_checkpoint):
    # int8 activations share one scale per forward: the batcher keeps rows apart (engine.quantize.rows_apart)
    int8 = engine.load_model(tiny_checkpoint, quantize="int8")
    reqs = requests()
    with Batcher(int8, max_batch=8, cache=False, padding=float("inf")) as batcher:
        together = batcher.run(reqs)
    for request, got in zip(reqs, together):
        with Batcher(int8, max_batch=1, cache=False) as batcher:
            (one,) = batcher.run([request])
        assert same(one, got)
