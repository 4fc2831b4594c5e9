"""`unmask team-server` end to end: a real Ray Serve instance on 127.0.0.1 with the embedded model on the CPU
(fp32, so that batched and sequential answers can be compared exactly), driven over HTTP with the bodies
real clients send. The server starts once for the module (Ray takes about 20 s) and must exit 0 on SIGTERM.
"""

import concurrent.futures
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("ray.serve", reason="the team extra: pip install 'unmask[team]'")

from lsp_server.team.job import dedent_cut  # noqa: E402

TOKEN = "team-test-token"
MAX_BODY = 256 * 1024
START_S = 240  # Ray, Serve and the model on a busy 2-core machine
CLI = [sys.executable, "-c", "import sys; from lsp_server.cli import main; sys.exit(main())"]
# real Python for prefixes and suffixes: the standard library's json decoder
SOURCE = (Path(json.__file__).parent / "decoder.py").read_text().splitlines(keepends=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cursor(line: int) -> tuple[str, str]:
    """(prefix, suffix) with the cursor in the middle of SOURCE's line `line`, three lines after it."""
    text = SOURCE[line]
    return "".join(SOURCE[:line]) + text[: len(text) // 2], text[len(text) // 2 :] + "".join(
        SOURCE[line + 1 : line + 4])


class TeamClient:
    def __init__(self, port: int):
        self.port = port

    def call(self, method: str, path: str, body=None, token: str | None = TOKEN, headers=None,
             raw: bytes | None = None, timeout: float = 60):
        """(status, headers, parsed JSON or the raw bytes)."""
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        h = {"Content-Type": "application/json", **(headers or {})}
        if token is not None:
            h["Authorization"] = f"Bearer {token}"
        data = raw if raw is not None else None if body is None else json.dumps(body).encode()
        c.request(method, path, data, h)
        r = c.getresponse()
        out = r.read()
        c.close()
        try:
            parsed = json.loads(out)
        except ValueError:
            parsed = out
        return r.status, dict(r.getheaders()), parsed

    def post(self, path: str, body) -> dict:
        status, _, out = self.call("POST", path, body)
        assert status == 200, out
        return out

    def status(self) -> dict:
        return self.call("GET", "/v1/status")[2]

    def native(self, prefix: str, suffix: str, **fields) -> str:
        return self.post("/v1/infill", {"prefix": prefix, "suffix": suffix, **fields})["text"]


def sse(raw: bytes) -> list:
    """The events of a text/event-stream body: JSON objects, and "[DONE]" as a string."""
    events = []
    for block in raw.decode().split("\n\n"):
        if block.startswith("data: "):
            data = block[len("data: "):]
            events.append(data if data == "[DONE]" else json.loads(data))
    return events


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    port, log = free_port(), tmp_path_factory.mktemp("team") / "server.log"
    args = ["team-server", "--port", str(port), "--dtype", "float32", "--threads", "1", "--token", TOKEN,
            "--max-body", str(MAX_BODY), "--max-batch", "16"]
    env = {k: v for k, v in os.environ.items() if k != "UNMASK_TEAM_TOKEN"}
    with open(log, "wb") as err:
        # a session of its own: the test's Ctrl-C does not reach it, and a hung one is killed as a group
        proc = subprocess.Popen([*CLI, *args], stdout=subprocess.PIPE, stderr=err, env=env,
                                start_new_session=True)
    s, t0 = TeamClient(port), time.monotonic()
    try:
        while True:
            assert proc.poll() is None, f"team-server exited {proc.returncode}: {log.read_text()[-3000:]}"
            assert time.monotonic() - t0 < START_S, f"not ready in {START_S} s: {log.read_text()[-3000:]}"
            try:
                answer = s.status()  # Serve's proxy answers 404 in plain text until the app is deployed
                if isinstance(answer, dict) and answer.get("state") == "ready":
                    break
            except OSError:
                pass
            time.sleep(0.5)
        line = proc.stdout.readline().decode()
        assert line.startswith("unmask team-server: ready at http://127.0.0.1:"), line
        yield s
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            code = "hung"
        assert code == 0, f"team-server did not exit cleanly on SIGTERM ({code}): {log.read_text()[-3000:]}"


# ---- status, health, auth


def test_status_describes_the_model_and_the_batcher(server):
    s = server.status()
    assert s["state"] == "ready"
    assert s["model"]["family"] == "dream" and s["model"]["dtype"] == "float32"
    assert s["model"]["device"] == "cpu" and s["model"]["max_positions"] == 512
    assert s["replicas"] == 1 and s["max_batch"] == 16
    for key in ("queue", "active", "batch_sizes", "completed", "cancelled", "forwards"):
        assert key in s
    assert set(s["latency_ms"]) == {"p50", "p95", "count"}


@pytest.mark.parametrize("method, path", [("GET", "/v1/status"), ("POST", "/v1/infill"),
                                          ("POST", "/infill"), ("POST", "/v1/completions"),
                                          ("POST", "/v1/fim/completions"), ("GET", "/v1/models")])
def test_a_request_without_the_token_gets_401(server, method, path):
    body = {"prefix": "x"} if method == "POST" else None
    for token in (None, "wrong-token"):
        status, headers, out = server.call(method, path, body, token=token)
        assert status == 401 and headers.get("www-authenticate") == "Bearer"
        assert "Authorization: Bearer" in out["error"]["message"]
    assert server.call(method, path, body)[0] != 401


def test_health_is_open_like_llama_cpp(server):
    assert server.call("GET", "/health", token=None)[:3:2] == (200, {"status": "ok"})


# ---- the native API


def test_infill_returns_the_text_and_the_engine_stats(server):
    prefix, suffix = cursor(60)
    out = server.post("/v1/infill", {"prefix": prefix, "suffix": suffix, "canvas": 16, "single_line": True})
    assert isinstance(out["text"], str) and "\n" not in out["text"]
    assert 0 <= out["confidence"] <= 1
    assert out["stats"]["canvas"] == 16 and out["stats"]["forward_passes"] >= 1
    assert {"tokens_per_forward", "ms", "queue_ms", "batch"} <= set(out["stats"])
    # the same request again: deterministic at fp32
    assert server.native(prefix, suffix, canvas=16, single_line=True) == out["text"]


@pytest.fixture(scope="module")
def engine_model():
    """The server's model in this process as the server runs it (fp32, one thread), its sampler and memory
    options."""
    import torch

    import engine
    from lsp_server import models
    from lsp_server.options import Options

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    options = Options()
    yield (engine.load_model(dtype="float32"), models.sampler_config(options.sampler),
           models.memory_config(options.memory))
    torch.set_num_threads(threads)


def test_the_answer_is_the_engines_and_extra_is_the_requests_own_memory(server, engine_model):
    from engine.params import InfillParams

    model, sampler, memory = engine_model
    prefix = "def resolve_token(config):\n    return "
    remembered = "def resolve_token(config):\n    return config.tokens['team'].strip()\n"
    plain = server.native(prefix, "\n", canvas=16, single_line=True)
    infill = InfillParams(canvas=16, single_line=True, sampler=sampler, memory=memory)
    assert plain == model.infill(prefix, "\n", infill).text
    with_memory = server.native(prefix, "\n", canvas=16, single_line=True,
                                extra=[{"filename": "auth.py", "text": remembered}])
    model.memory.update("auth.py", remembered)
    try:
        expected = model.infill(prefix, "\n", infill).text
    finally:
        model.memory.remove("auth.py")
    assert with_memory == expected and with_memory.startswith("config.") and with_memory != plain
    # nothing stays behind for the next request
    assert server.native(prefix, "\n", canvas=16, single_line=True) == plain


def test_batched_answers_equal_sequential_ones(server):
    requests = [dict(zip(("prefix", "suffix"), cursor(40 + 23 * i)), canvas=16, single_line=True)
                for i in range(8)]
    sequential = [server.post("/v1/infill", r)["text"] for r in requests]
    before = server.status()["batch_sizes"]
    with concurrent.futures.ThreadPoolExecutor(len(requests)) as pool:
        concurrent_ = list(pool.map(lambda r: server.post("/v1/infill", r)["text"], requests))
    assert concurrent_ == sequential
    after = server.status()["batch_sizes"]
    batched = {int(k): v - before.get(k, 0) for k, v in after.items() if int(k) > 1}
    assert sum(batched.values()) > 0, after  # some forwards really ran several requests together


def test_a_client_that_disconnects_cancels_its_request(server):
    cancelled = server.status()["cancelled"]
    # 256 positions, one per forward: seconds of work
    body = json.dumps({"prefix": "".join(SOURCE[:80]), "suffix": "", "canvas": 256,
                       "sampler": {"threshold": None, "tokens_per_step": 1}}).encode()
    with socket.create_connection(("127.0.0.1", server.port)) as s:
        s.sendall(b"POST /v1/infill HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer " + TOKEN.encode()
                  + b"\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
        deadline = time.monotonic() + 20
        while server.status()["active"] == 0:
            assert time.monotonic() < deadline, "the request never started"
            time.sleep(0.05)
    deadline = time.monotonic() + 10
    while (s := server.status())["cancelled"] == cancelled:
        assert time.monotonic() < deadline, f"not cancelled: {s}"
        time.sleep(0.1)
    assert s["active"] == 0
    prefix, suffix = cursor(60)
    assert isinstance(server.native(prefix, suffix, canvas=8), str)  # still serving


def test_a_deadline_past_answers_504(server):
    status, _, out = server.call("POST", "/v1/infill", {"prefix": "".join(SOURCE[:80]), "canvas": 256,
                                                         "sampler": {"threshold": None}, "deadline_ms": 1})
    assert status == 504 and out["error"]["param"] == "deadline_ms"


# ---- llama.cpp's /infill


def test_llama_vim_body(server):
    # ggml-org/llama.vim autoload/llama.vim, llama#fim: the cursor line up to the cursor is `prompt`, the
    # ring of chunks is input_extra with Vim's reltime() lists as `time`, and only these response_fields
    before, suffix = cursor(100)
    input_prefix, _, middle = before.rpartition("\n")
    input_prefix += "\n"
    chunk = "".join(SOURCE[200:232])
    body = {
        "input_prefix": input_prefix, "input_suffix": suffix,
        "input_extra": [{"text": chunk, "time": [1733, 402151], "filename": "json/decoder.py"}],
        "prompt": middle, "n_predict": 256, "n_indent": 8, "top_k": 40, "top_p": 0.99, "stream": False,
        "samplers": ["top_k", "top_p", "infill"], "cache_prompt": True, "t_max_prompt_ms": 500,
        "t_max_predict_ms": 30000,
        "response_fields": ["content", "timings/prompt_n", "timings/prompt_ms", "timings/prompt_per_token_ms",
                            "timings/prompt_per_second", "timings/predicted_n", "timings/predicted_ms",
                            "timings/predicted_per_token_ms", "timings/predicted_per_second", "truncated",
                            "tokens_cached"],
    }
    out = server.post("/infill", body)
    assert set(out) == set(body["response_fields"])
    assert out["truncated"] is False and out["timings/prompt_n"] > 0
    # n_predict 256 is clamped to a 64-token canvas; n_indent cuts at a line that leaves the block
    same = server.native(input_prefix + middle, suffix, canvas=64, sampler={"top_k": 40, "top_p": 0.99},
                         extra=[{"filename": "json/decoder.py", "text": chunk}])
    assert out["content"] == dedent_cut(same, 8)


def test_llama_vim_ring_update_is_answered_at_once(server):
    # llama.vim s:ring_update: n_predict 0 only warms llama.cpp's cache; response_fields [""] selects nothing
    body = {"input_prefix": "", "input_suffix": "", "prompt": "", "n_predict": 0, "temperature": 0.0,
            "input_extra": [{"text": "x = 1\n", "time": [1733, 1], "filename": "a.py"}], "stream": False,
            "samplers": [], "cache_prompt": True, "t_max_prompt_ms": 1, "t_max_predict_ms": 1,
            "response_fields": [""]}
    assert server.post("/infill", body) == {}


def test_llama_vscode_body(server):
    # ggml-org/llama.vscode src/llama-server.ts createRequestPayload (n_indent left out when 0) and
    # src/extra-context.ts pickChunk ({text, time: Date.now(), filename})
    before, suffix = cursor(130)
    input_prefix, _, middle = before.rpartition("\n")
    body = {"input_prefix": input_prefix + "\n", "input_suffix": suffix,
            "input_extra": [{"text": "".join(SOURCE[10:40]), "time": 1733139000000, "filename": "/w/a.py"}],
            "prompt": middle, "n_predict": 128, "top_k": 40, "top_p": 0.99, "stream": False,
            "samplers": ["top_k", "top_p", "infill"], "cache_prompt": True, "t_max_prompt_ms": 500,
            "t_max_predict_ms": 30000}
    out = server.post("/infill", body)
    assert {"content", "tokens_cached", "truncated", "timings", "stop", "model"} <= set(out)
    assert out["stop"] is True and out["timings"]["predicted_n"] >= 0
    assert out["content"] == server.native(before, suffix, canvas=64, sampler={"top_k": 40, "top_p": 0.99},
                                           extra=[{"filename": "/w/a.py", "text": "".join(SOURCE[10:40])}])


def test_llama_infill_streams_and_honours_t_max_predict_ms(server):
    prefix, suffix = cursor(60)
    status, headers, raw = server.call("POST", "/infill", {"input_prefix": prefix, "input_suffix": suffix,
                                                           "n_predict": 16, "stream": True})
    events = sse(raw)
    assert status == 200 and headers["content-type"].startswith("text/event-stream")
    assert events[0]["stop"] is False and events[-1]["stop"] is True
    assert "".join(e["content"] for e in events) == server.native(prefix, suffix, canvas=16)
    out = server.post("/infill", {"input_prefix": "".join(SOURCE[:80]), "n_predict": 256, "temperature": 0,
                                  "t_max_predict_ms": 1})
    assert out["content"] == "" and out["stop_type"] == "limit"


# ---- OpenAI legacy completions


def test_minuet_openai_fim_compatible_body(server):
    # milanglacier/minuet-ai.nvim lua/minuet/backends/common.lua complete_openai_fim_base: model, stream,
    # prompt (the default template's language and indentation comments first), suffix, then `optional`
    # (max_tokens, top_p, as its README's recipes set them); it reads choices[1].text
    before, suffix = cursor(150)
    prompt = "# language: python\n# indentation: use 4 spaces for a tab\n" + before
    body = {"model": "qwen2.5-coder:7b", "stream": False, "prompt": prompt, "suffix": suffix,
            "max_tokens": 56, "top_p": 0.9}
    out = server.post("/v1/completions", body)
    assert out["object"] == "text_completion" and out["id"].startswith("cmpl-")
    choice = out["choices"][0]
    assert choice["index"] == 0 and choice["logprobs"] is None
    assert choice["finish_reason"] in ("stop", "length")
    assert choice["text"] == server.native(prompt, suffix, canvas=56, sampler={"top_p": 0.9})
    assert out["usage"]["total_tokens"] == out["usage"]["prompt_tokens"] + out["usage"]["completion_tokens"]
    # minuet's default is stream = true: it strips `data:` and reads each chunk's choices[1].text
    events = sse(server.call("POST", "/v1/completions", {**body, "stream": True})[2])
    assert events[-1] == "[DONE]" and "".join(e["choices"][0]["text"] for e in events[:-1]) == choice["text"]


def test_continue_inception_body_streams_with_its_stops(server):
    # continuedev/continue packages/openai-adapters/src/apis/Inception.ts fimStream: an empty suffix becomes
    # "<|endoftext|>", "\n\n" and "\n \n" join the stops, stream true; it reads choices[0].text
    before, _ = cursor(170)
    body = {"model": "mercury-coder", "prompt": before, "suffix": "<|endoftext|>", "max_tokens": 150,
            "temperature": 0, "stop": ["\n\n", "\n \n"], "stream": True}
    events = sse(server.call("POST", "/v1/completions", body)[2])
    assert events[-1] == "[DONE]"
    text = "".join(e["choices"][0]["text"] for e in events[:-1])
    whole = server.native(before, "", canvas=64)
    assert text == whole.split("\n\n")[0].split("\n \n")[0]


def test_a_templated_prompt_without_suffix_is_split(server):
    # Continue's openai provider with useLegacyCompletionsEndpoint: its default (stable-code) FIM template in
    # the prompt, no suffix (core/llm/llms/OpenAI.ts _legacystreamComplete)
    before, suffix = cursor(190)
    body = {"model": "unmask", "prompt": f"<fim_prefix>{before}<fim_suffix>{suffix}<fim_middle>",
            "max_tokens": 16, "stop": ["<fim_prefix>", "<fim_suffix>", "<fim_middle>", "<|endoftext|>"],
            "stream": False}
    out = server.post("/v1/completions", body)
    assert out["choices"][0]["text"] == server.native(before, suffix, canvas=16)


def test_n_gives_one_choice_per_seed_and_echo_prepends_the_prompt(server):
    prefix, suffix = cursor(60)
    out = server.post("/v1/completions", {"prompt": prefix, "suffix": suffix, "max_tokens": 8, "n": 2,
                                          "temperature": 1.0, "seed": 5, "echo": True})
    texts = [c["text"] for c in out["choices"]]
    assert [c["index"] for c in out["choices"]] == [0, 1]
    for i, text in enumerate(texts):
        assert text == prefix + server.native(prefix, suffix, canvas=8, seed=5 + i,
                                              sampler={"temperature": 1.0})


# ---- Mistral FIM


def test_continue_mistral_body_streams_delta_content(server):
    # continuedev/continue core/llm/llms/OpenAI.ts _streamFim (the mistral provider's FIM): model, prompt,
    # suffix, max_tokens, stop and stream true (temperature, top_p and the penalties only when set); it
    # reads each chunk's choices[0].delta.content until [DONE]
    before, suffix = cursor(210)
    body = {"model": "codestral-latest", "prompt": before, "suffix": suffix, "max_tokens": 4096,
            "stop": ["<fim_prefix>", "<fim_suffix>", "<fim_middle>", "<file_sep>", "<|endoftext|>"],
            "stream": True}
    status, headers, raw = server.call("POST", "/v1/fim/completions", body)
    events = sse(raw)
    assert status == 200 and events[-1] == "[DONE]"
    assert events[0]["object"] == "chat.completion.chunk"
    text = "".join(e["choices"][0]["delta"]["content"] for e in events[:-1])
    assert text == server.native(before, suffix, canvas=64)


def test_minuet_codestral_body_reads_message_content(server):
    # milanglacier/minuet-ai.nvim lua/minuet/backends/codestral.lua: model, prompt, suffix (stop and
    # max_tokens unset), stream false: json.choices[1].message.content. Mistral's own client sends nulls.
    before, suffix = cursor(230)
    body = {"model": "codestral-latest", "prompt": before, "suffix": suffix, "stream": False,
            "temperature": None, "max_tokens": None, "random_seed": None, "min_tokens": None}
    out = server.post("/v1/fim/completions", body)
    assert out["object"] == "chat.completion"
    message = out["choices"][0]["message"]
    assert message["role"] == "assistant" and out["choices"][0]["finish_reason"] in ("stop", "length")
    assert message["content"] == server.native(before, suffix, canvas=32)


# ---- what a client can get wrong


@pytest.mark.parametrize("path, body, status, names", [
    ("/v1/infill", {"prefix": 5}, 422, "prefix"),
    ("/v1/infill", {"prefix": "x", "canvas": "16"}, 422, "canvas"),
    ("/v1/infill", {"prefix": "x", "canvas": 0}, 422, "canvas"),
    ("/v1/infill", {"prefix": "x", "canvas": 100000}, 422, "canvas"),
    ("/v1/infill", {"prefix": "x", "canvs": 16}, 422, "canvs"),
    ("/v1/infill", {"prefix": "x", "sampler": {"top_p": 0}}, 422, "top_p"),
    ("/v1/infill", {"prefix": "x", "seed": -1}, 422, "seed"),
    ("/v1/infill", {"prefix": "x", "extra": [{"filename": "a"}]}, 422, "text"),
    ("/v1/infill", [1, 2], 422, "object"),
    ("/v1/completions", {"prompt": "x", "n": 100}, 422, "n"),
    ("/v1/completions", {"prompt": ["a", "b"]}, 422, "prompt"),
    ("/v1/completions", {"prompt": "x", "temperature": -1}, 422, "temperature"),
    ("/v1/fim/completions", {"suffix": "x"}, 422, "prompt"),
    ("/v1/fim/completions", {"prompt": "x", "stop": 5}, 422, "stop"),
    ("/infill", {"input_prefix": 1}, 422, "input_prefix"),
])
def test_a_wrong_field_is_named(server, path, body, status, names):
    code, _, out = server.call("POST", path, body)
    assert code == status and names in out["error"]["message"], out


def test_bad_json_too_large_bodies_and_bad_lengths(server):
    assert server.call("POST", "/v1/infill", raw=b'{"prefix": ')[0] == 400
    assert server.call("POST", "/v1/infill", raw=b"\xff\xfe")[0] == 400
    big = json.dumps({"prefix": "x" * MAX_BODY}).encode()
    code, _, out = server.call("POST", "/v1/completions", raw=big)
    assert code == 413 and str(MAX_BODY) in out["error"]["message"]
    # no Content-Length: the limit holds while the body streams in
    c = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    c.putrequest("POST", "/v1/infill")
    c.putheader("Authorization", f"Bearer {TOKEN}")
    c.putheader("Transfer-Encoding", "chunked")
    c.endheaders()
    for _ in range(5):
        piece = b"x" * 65536
        c.send(b"%x\r\n%s\r\n" % (len(piece), piece))
    c.send(b"0\r\n\r\n")
    assert c.getresponse().status == 413
    c.close()
    # the extra texts have a limit of their own
    code, _, out = server.call("POST", "/v1/infill", {"prefix": "x", "extra": [
        {"filename": f"{i}.py", "text": "y" * 60000} for i in range(3)]})
    assert code == 200  # 180 KB is within the 1 MiB extra limit and the body limit
    assert server.status()["state"] == "ready"


# ---- the command line


@pytest.fixture
def cli(monkeypatch, capsys):
    """`unmask team-server ARGS` in this process: (exit status, stderr). Its errors come before Ray starts."""
    from lsp_server.cli import main

    for name in ("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "RAY_USAGE_STATS_ENABLED"):  # it sets them: restored
        monkeypatch.setenv(name, "0")

    def run(*args: str) -> tuple[int, str]:
        code = main(["team-server", *args])
        return code, capsys.readouterr().err

    return run


def test_a_model_that_is_not_there_is_one_line(cli, tmp_path):
    code, err = cli("--model", str(tmp_path / "missing"), "--port", str(free_port()))
    assert code == 1 and err.count("\n") == 1 and "checkpoint folder not found" in err


def test_a_port_in_use_is_one_line(cli):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        code, err = cli("--port", str(busy.getsockname()[1]))
    assert code == 1 and err.count("\n") == 1 and err.startswith("unmask: cannot listen on 127.0.0.1:")


# ---- the language server over --remote, against this real team server


def test_the_language_server_over_remote_completes_from_the_team_server(server):
    """`python -m lsp_server --remote URL --token T` (pytest-lsp): an inline completion is answered, by the
    team server (its completed count moves), and the language server never loads torch (no libtorch
    mapped)."""
    import asyncio

    from lsprotocol import types
    from pytest_lsp import ClientServerConfig, client_capabilities

    from tests.test_lsp_server import ENV, PY, RETURN, inline, open_doc, wait_for

    async def run():
        url = f"http://127.0.0.1:{server.port}"
        command = [sys.executable, "-m", "lsp_server", "--remote", url, "--token", TOKEN]
        client = await ClientServerConfig(server_command=command, server_env=ENV).start()
        try:
            caps = client_capabilities("visual-studio-code")
            caps.text_document.inline_completion = types.InlineCompletionClientCapabilities()
            options = {"completion": {"maxTokens": 8, "debounceMs": 0, "items": None},
                       "memory": {"workspace": False}}
            await client.initialize_session(types.InitializeParams(capabilities=caps,
                                                                   initialization_options=options))
            await wait_for(client, lambda s: s["state"] == "ready")
            before = server.status()["completed"]
            uri = open_doc(client, "team_remote.py", PY)
            result = await inline(client, uri, RETURN)
            maps = Path(f"/proc/{client._server.pid}/maps").read_text()  # the server, after its completion
            await client.shutdown_session()
            return result, before, maps
        finally:
            await client.stop()

    result, before, maps = asyncio.run(run())
    assert server.status()["completed"] > before
    (item,) = result.items  # the team server's answer, post-processed here
    assert item.range.start == RETURN and item.insert_text.strip()
    assert "libtorch" not in maps and "site-packages/torch/" not in maps
