"""Responsiveness and configuration, end to end: cancellation, supersession, debounce, config changes.

A wider random checkpoint and slow options (no confidence threshold, 4 canvas sizes) make a block completion
take seconds, so a stopped job is told apart from a finished one by time.
"""

import asyncio
import time

import pytest
import pytest_asyncio
import torch
from lsprotocol import types
from pygls.exceptions import JsonRpcRequestCancelled

from engine.load import save_checkpoint
from engine.model import Transformer
from tests.checkpoints import tiny_config, write_tokenizer
from tests.test_lsp_server import AUTOMATIC, PY, RETURN, inline, insert, open_doc, serving, status, wait_for

pytestmark = pytest.mark.asyncio(loop_scope="module")
SLOW = {
    "completion": {"candidates": 4, "maxTokens": 256, "maxLines": 64, "debounceMs": 50, "items": None},
    "sampler": {"threshold": None, "tokensPerStep": 1},
}


def block(name: str) -> str:
    """A document whose completion at IN_BODY is slow; its own name so the cache never answers it."""
    return f"import os\n\ndef {name}(a, b):\n    \n\nprint({name}(1, 2))\n"


IN_BODY = types.Position(3, 4)  # a block completion: the slow one


@pytest.fixture(scope="module")
def slow_checkpoint(tmp_path_factory):
    """Random weights like tiny_checkpoint's, wide enough that a forward takes milliseconds."""
    folder = tmp_path_factory.mktemp("slow_dream")
    tok = write_tokenizer(folder)
    torch.manual_seed(0)
    shape = dict(hidden_size=256, num_layers=4, num_heads=4, num_kv_heads=2, intermediate_size=1024)
    model = Transformer(tiny_config(tok.get_vocab_size(), **shape))
    eos, mask = tok.token_to_id("<|endoftext|>"), tok.token_to_id("<|mask|>")
    save_checkpoint(model, folder, dict(mask_id=mask, eos_id=eos, pad_id=eos, bos_id=None))
    return folder


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def client(slow_checkpoint):
    async with serving(slow_checkpoint, "visual-studio-code", SLOW) as c:
        yield c


def request_inline(client, msg_id: str, uri: str, position: types.Position):
    params = types.InlineCompletionParams(
        types.InlineCompletionContext(types.InlineCompletionTriggerKind.Invoked),
        types.TextDocumentIdentifier(uri),
        position,
    )
    return asyncio.ensure_future(  # pytest-lsp's send_request_async is a coroutine: start sending now
        client.protocol.send_request_async(types.TEXT_DOCUMENT_INLINE_COMPLETION, params, msg_id=msg_id)
    )


async def idle_after(client, t0: float) -> float:
    await wait_for(client, lambda s: s["running"] == 0, timeout=30)
    return time.monotonic() - t0


@pytest.fixture(scope="module")
def full_job_s():
    return {}


async def test_items_null_leaves_completion_to_clients_without_inline_completion(client):
    caps = client.init_result.capabilities
    assert caps.inline_completion_provider is not None and caps.completion_provider is None


async def test_a_block_job_left_alone_takes_seconds(client, full_job_s):
    uri = open_doc(client, "reference.py", block("reference"))
    t0 = time.monotonic()
    await request_inline(client, "reference", uri, IN_BODY)
    full_job_s["s"] = time.monotonic() - t0
    assert full_job_s["s"] > 1.0


async def test_cancel_request_stops_the_engine_and_changes_are_never_delayed(client, full_job_s):
    uri = open_doc(client, "cancel.py", block("cancel"))
    pending = request_inline(client, "to-cancel", uri, IN_BODY)
    await asyncio.sleep(0.3)
    t0 = time.monotonic()
    insert(client, uri, 2, types.Position(0, 0), "# typed while the engine works\n")
    busy = await status(client)
    assert busy["running"] == 1 and time.monotonic() - t0 < 0.5  # the loop answers while the engine runs
    t0 = time.monotonic()
    client.protocol.notify(types.CANCEL_REQUEST, types.CancelParams(id="to-cancel"))
    with pytest.raises(JsonRpcRequestCancelled):
        await pending
    assert await idle_after(client, t0) < full_job_s["s"] / 3


async def test_a_newer_request_stops_the_older_one(client, full_job_s):
    uri = open_doc(client, "supersede.py", block("supersede"))
    older = request_inline(client, "older", uri, IN_BODY)
    await asyncio.sleep(0.3)
    t0 = time.monotonic()
    newer = request_inline(client, "newer", uri, types.Position(0, 9))
    assert not (await older).items  # answered, empty
    assert time.monotonic() - t0 < full_job_s["s"] / 3
    await newer


async def test_a_burst_of_typing_along_leaves_only_the_newest_running(client):
    uri = open_doc(client, "burst.py", PY)
    answered: list[tuple[int, float]] = []
    tasks = []
    for i in range(30):
        insert(client, uri, i + 2, types.Position(RETURN.line, RETURN.character + i), "x")
        task = asyncio.ensure_future(
            inline(client, uri, types.Position(RETURN.line, RETURN.character + i + 1), AUTOMATIC)
        )
        task.add_done_callback(lambda _, i=i: answered.append((i, time.monotonic())))
        tasks.append(task)
        await asyncio.sleep(0)  # the request leaves before the next keystroke
    results = await asyncio.gather(*tasks)
    assert all(not r.items for r in results[:-1])
    newest_at = dict(answered)[29]
    assert all(at <= newest_at for _, at in answered)  # no older request outlived the newest
    assert (await status(client))["requests"]["cancelled"] >= 29


# ---- configuration (last: these change the server's options)


async def test_invalid_settings_show_a_message_and_keep_the_rest(client):
    client.messages.clear()
    client.workspace_did_change_configuration(
        types.DidChangeConfigurationParams(
            {"unmask": {"completion": {"maxLines": -1, "debounceMs": 0}, "languages": {"python": False}}}
        )
    )
    s = await wait_for(client, lambda s: s["options"]["completion"]["debounceMs"] == 0)
    assert s["options"]["completion"]["maxLines"] == 16  # the default, not the invalid value
    assert any("completion.maxLines" in m.message for m in client.messages)
    uri = open_doc(client, "disabled.py", PY)
    assert not (await inline(client, uri, RETURN)).items
    client.workspace_did_change_configuration(
        types.DidChangeConfigurationParams({"languages": {"python": True}})
    )
    await wait_for(client, lambda s: s["options"]["languages"] == {"python": True})


async def test_a_bad_model_folder_fails_visibly_and_a_good_one_recovers(client, slow_checkpoint, tmp_path):
    client.messages.clear()
    client.workspace_did_change_configuration(
        types.DidChangeConfigurationParams(
            {"model": {"path": str(tmp_path / "missing")}, "completion": {"candidates": 1}}
        )
    )
    s = await wait_for(client, lambda s: s["state"] == "failed")
    assert "missing" in s["error"] and any(m.type == types.MessageType.Error for m in client.messages)
    uri = open_doc(client, "no-model.py", PY)
    assert not (await inline(client, uri, RETURN)).items  # empty, not an error
    client.workspace_did_change_configuration(
        types.DidChangeConfigurationParams({"model": {"path": str(slow_checkpoint)}})
    )
    await wait_for(client, lambda s: s["state"] == "ready")
    answered = (await status(client))["requests"].get("model", 0)
    result = await inline(client, uri, RETURN)
    # the recovered model answered (a random model's answer after "return " may be only the typed blank)
    assert (await status(client))["requests"].get("model", 0) == answered + 1 and len(result.items) <= 1
