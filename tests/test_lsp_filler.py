"""The context budget the server gives infill: the option or the device's default, within the model's
positions."""

from lsp_server.filler import CPU_CONTEXT_TOKENS, MIN_CONTEXT, context_budget
from lsp_server.options import CompletionOptions, Options


def options(**completion) -> Options:
    return Options(completion=CompletionOptions(**completion))


def test_default_budget_depends_on_the_device():
    assert context_budget(Options(), 4096, "cpu") == CPU_CONTEXT_TOKENS
    assert context_budget(Options(), 4096, "cuda") == Options().infill().context_tokens == 1536


def test_an_explicit_budget_wins_on_any_device():
    assert context_budget(options(context_tokens=1000), 4096, "cpu") == 1000
    assert context_budget(options(context_tokens=100), 4096, "cuda") == 100


def test_the_budget_leaves_room_for_the_largest_canvas():
    assert context_budget(options(context_tokens=1000), 512, "cuda") == 512 - 128 - 2
    assert context_budget(options(context_tokens=1000, max_tokens=64), 512, "cpu") == 512 - 64 - 2
    assert context_budget(Options(), 100, "cpu") == MIN_CONTEXT  # a model with few positions still gets some
