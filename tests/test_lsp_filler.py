"""The context budget the server gives infill: the option or the device's default, within the model's
positions."""

import engine
from lsp_server.completion.filler import CPU_CONTEXT_TOKENS, context_budget
from lsp_server.models import MIN_CONTEXT
from lsp_server.options import CompletionOptions, Options


def options(**completion) -> Options:
    return Options(completion=CompletionOptions(**completion))


def test_default_budget_depends_on_the_device():
    assert context_budget(Options(), 4096, "cpu") == CPU_CONTEXT_TOKENS
    assert context_budget(Options(), 4096, "cuda") == Options().infill().context_tokens == 1536


def test_an_explicit_budget_wins_on_any_device():
    assert context_budget(options(context_tokens=1000), 4096, "cpu") == 1000
    assert context_budget(options(context_tokens=100), 4096, "cuda") == 100


def test_the_budget_stays_within_the_room():
    assert context_budget(options(context_tokens=1000), 382, "cuda") == 382
    assert context_budget(Options(), 10, "cpu") == MIN_CONTEXT  # a model with few positions still gets some


def test_the_room_is_what_context_ids_fills():
    # the server's budget comes from the model's own room: a budget that large fits beside the canvas exactly
    model = engine.load_model()
    for canvas in (16, 128):
        room = model.context_room(canvas)
        before, after = model.context_ids("x = 1\n" * 2000, "y = 2\n" * 2000, canvas)
        assert len(before) + canvas + len(after) == model.max_positions == 512
        assert room <= 512 - canvas and room + canvas + 1 >= 512  # one special token at most
        assert len(model.tokenizer.encode("x = 1\n" * 2000)) > room
