"""The team server's request handling without a server: FIM templates, stop strings, limits, llama.cpp's
response_fields, JSON errors naming the field (lsp_server/team/)."""

import msgspec
import pytest

pytest.importorskip("ray.serve", reason="the team extra: pip install 'unmask[team]'")

from engine.sample import SamplerConfig  # noqa: E402
from lsp_server.team import http, job, llama, native, openai, templates  # noqa: E402
from lsp_server.team.job import Job, JobAnswer, Limits, RequestRefused  # noqa: E402
from lsp_server.team.latency import Latency  # noqa: E402

LIMITS = Limits(max_canvas=256, max_extra_bytes=100, sampler=SamplerConfig(tokens_per_step=3), memory=None)


@pytest.mark.parametrize("prompt", [
    "<|fim_prefix|>def f(x):\n    return <|fim_suffix|>\n\nprint(f(1))<|fim_middle|>",  # Qwen2.5-Coder
    "<fim_prefix>def f(x):\n    return <fim_suffix>\n\nprint(f(1))<fim_middle>",  # StarCoder; Continue
    "<PRE> def f(x):\n    return  <SUF>\n\nprint(f(1)) <MID>",  # CodeLlama
    "<\uff5cfim\u2581begin\uff5c>def f(x):\n    return <\uff5cfim\u2581hole\uff5c>\n\nprint(f(1))"
    "<\uff5cfim\u2581end\uff5c>",  # DeepSeek-Coder
    "[SUFFIX]\n\nprint(f(1))[PREFIX]def f(x):\n    return ",  # Codestral
])
def test_fim_templates_give_back_prefix_and_suffix(prompt):
    assert templates.split(prompt) == ("def f(x):\n    return ", "\n\nprint(f(1))")


def test_a_repository_header_is_dropped_and_a_started_middle_kept():
    prompt = "<|repo_name|>r\n<|file_sep|>a.py\nx = 1\n<|fim_prefix|>y = <|fim_suffix|>\n<|fim_middle|>x +"
    assert templates.split(prompt) == ("y = x +", "\n")
    assert templates.split("def f():\n    return ") is None
    assert openai.split("p<fim_suffix>s", None) == ("p<fim_suffix>s", "")  # no template: all prefix
    assert openai.split("a", "<|endoftext|>") == ("a", "")  # Continue's Inception adapter's empty suffix


def test_stop_strings_cut_at_the_earliest():
    assert job.cut("a = 1\n\nb = 2", ("\n\n", "=")) == ("a ", "=")
    assert job.cut("abc", ("x",)) == ("abc", None)
    assert job.stops("\n") == ("\n",) and job.stops(["", "x"]) == ("x",) and job.stops(None) == ()
    with pytest.raises(RequestRefused, match="at most 64"):
        job.stops(["x"] * 65)


def test_n_indent_cuts_where_the_completion_leaves_the_block():
    text = "x = 1\n        y = 2\n\n    return y\n        z"
    assert job.dedent_cut(text, 8) == "x = 1\n        y = 2\n"
    assert job.dedent_cut(text, 0) == text


def test_fim_lengths_are_clamped_to_the_fim_canvas():
    assert [job.fim_canvas(n, LIMITS) for n in (None, -1, 0, 16, 256)] == [32, 32, 0, 16, 64]


def test_extra_texts_over_the_limit():
    items = [("a", "x" * 40), ("b", "y" * 40), ("c", "z" * 40)]
    assert job.extra_pairs(items, LIMITS, "input_extra", keep_last=True) == (items[1], items[2])
    with pytest.raises(RequestRefused) as e:
        job.extra_pairs(items, LIMITS, "extra", keep_last=False)
    assert e.value.status == 413 and e.value.param == "extra"


def test_a_job_names_the_sampler_field_it_cannot_take():
    def body(**sampler):
        return msgspec.convert({"prefix": "x", "sampler": sampler}, native.NativeInfillBody)

    with pytest.raises(RequestRefused) as e:
        native.job(body(tokens_per_step=0), LIMITS)
    assert e.value.status == 422 and e.value.param == "tokens_per_step"
    made = native.job(body(threshold=None), LIMITS)
    assert made.sampler.threshold is None and made.sampler.tokens_per_step == 3  # the server's, kept


def test_answers_know_why_they_ended():
    one = Job("p", "s", 8, LIMITS.sampler, None, stop=("\n",))
    assert one.answer("a\nb", 3) == JobAnswer("a", "stop", "\n")
    assert one.answer("a", 3) == JobAnswer("a", "stop", None)  # the model ended it
    assert one.answer("abcdefgh", 8) == JobAnswer("abcdefgh", "length", None)  # it filled the canvas


def test_llama_response_fields_select_paths():
    body = {"content": "x", "timings": {"prompt_n": 3}, "truncated": False}
    assert llama.select(body, ["content", "timings/prompt_n", "timings/nope", ""]) == {
        "content": "x", "timings/prompt_n": 3}


@pytest.mark.parametrize("raw, status, message", [
    (b"{", 400, "not valid JSON"),
    (b'{"prefix": "a\xed\xa0\x80b"}', 400, "not valid JSON"),  # a surrogate encoded as UTF-8
    (b'{"prefix": "x", "canvas": 1.5}', 422, "canvas: Expected `int`, got `float`"),
    (b'{"prefix": "x", "sampler": {"top_k": "3"}}', 422, "sampler.top_k: Expected `int`"),
    (b'{"prefix": "x", "extra": [{"filename": 1, "text": ""}]}', 422, "extra[0].filename"),
])
def test_json_errors_name_the_field(raw, status, message):
    with pytest.raises(RequestRefused) as e:
        http.decode(raw, native.NativeInfillBody)
    assert e.value.status == status and message in e.value.message


def test_deeply_nested_json_is_a_bad_request():
    raw = b'{"input_prefix": "x", "samplers": ' + b"[" * 100000 + b"]" * 100000 + b"}"
    with pytest.raises(RequestRefused) as e:
        http.decode(raw, llama.LlamaInfillBody)
    assert e.value.status == 400


def test_latency_percentiles():
    latency = Latency()
    assert latency.summary() == {"p50": None, "p95": None, "count": 0}
    for ms in range(1, 101):
        latency.add(float(ms))
    assert latency.summary() == {"p50": 50.0, "p95": 95.0, "count": 100}


def test_auto_quantize_serves_full_precision_and_int8_stays_int8():
    from lsp_server.models import ModelOptions
    from lsp_server.team.app import served_model

    assert served_model(ModelOptions()).quantize == "none"  # the default, "auto"
    assert served_model(ModelOptions(quantize="int8")).quantize == "int8"
    assert served_model(ModelOptions(quantize="none", dtype="float32")).dtype == "float32"
