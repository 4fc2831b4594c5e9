"""Model loads through the server: a Hub id downloads with work-done percentages (from a fake Hub on
127.0.0.1), and one that cannot be fetched is reported while the previous model keeps serving."""

import asyncio
import sys
import threading

import pytest
import pytest_asyncio
from lsprotocol import types
from pytest_lsp import ClientServerConfig, client_capabilities

from lsp_server.completion.progress import LoadProgress
from tests.test_hub import FakeHub
from tests.test_lsp_server import ENV, FAST, PY, RETURN, inline, open_doc, status, wait_for

pytestmark = pytest.mark.asyncio(loop_scope="module")


class Recorder:
    def __init__(self):
        self.reports = []

    def report(self, token, value):
        self.reports.append((token, value.percentage, value.message))


async def test_percentages_start_once_the_client_accepts_and_never_go_back():
    server = type("Server", (), {"work_done_progress": Recorder()})()
    progress = LoadProgress(server, "loading org/x")
    progress.update(10, 100)  # before the client accepted the token: not sent
    progress.token = "t"
    for done, total in [(20, 100), (20, 200), (30, 100), (30, 100), (3 * 2**20, 6 * 2**20)]:
        progress.update(done, total)
    reports = server.work_done_progress.reports
    assert [p for _, p, _ in reports] == [20, 30, 50]
    assert reports[-1] == ("t", 50, "downloading 3 of 6 MB")


@pytest.fixture(scope="module")
def fake_hub(tiny_checkpoint):
    server = FakeHub("org/tiny", {p.name: p.read_bytes() for p in tiny_checkpoint.iterdir()})
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def client(tiny_checkpoint, fake_hub, tmp_path_factory):
    home = tmp_path_factory.mktemp("hf-home")
    env = {**ENV, "HF_HOME": str(home), "HF_HUB_CACHE": str(home / "hub"), "HF_ENDPOINT": fake_hub.endpoint}
    command = [sys.executable, "-m", "lsp_server", "--model", str(tiny_checkpoint)]
    client = await ClientServerConfig(server_command=command, server_env=env).start()
    client.init_result = await client.initialize_session(
        types.InitializeParams(capabilities=client_capabilities("neovim"), initialization_options=FAST)
    )
    await wait_for(client, lambda s: s["state"] == "ready")
    yield client
    await client.shutdown_session()
    await client.stop()


async def test_a_hub_id_downloads_with_percentages(client, fake_hub):
    client.progress_reports.clear()
    settings = types.DidChangeConfigurationParams({"model": {"path": "org/tiny"}})
    client.workspace_did_change_configuration(settings)
    s = await wait_for(client, lambda s: s["state"] == "ready" and s["model"] == "org/tiny")
    assert s["family"] == "dream" and sorted(fake_hub.fetched) == sorted(fake_hub.files)
    values = [v for reports in client.progress_reports.values() for v in reports]
    assert values[0].kind == "begin" and values[0].percentage == 0 and values[-1].kind == "end"
    percentages = [v.percentage for v in values if v.kind == "report"]
    assert percentages and percentages == sorted(percentages) and percentages[-1] == 100


async def test_an_id_that_cannot_be_fetched_keeps_the_previous_model(client):
    client.messages.clear()
    client.workspace_did_change_configuration(
        types.DidChangeConfigurationParams({"model": {"path": "org/unknown"}})
    )
    for _ in range(400):
        if client.messages:
            break
        await asyncio.sleep(0.05)
    (message,) = client.messages
    assert message.type == types.MessageType.Error and message.message == (
        "unmask: model 'org/unknown' is neither a folder nor a model on the Hugging Face Hub "
        "(a private one needs `hf auth login`); still using org/tiny"
    )
    s = await status(client)
    assert s["state"] == "ready" and s["model"] == "org/tiny" and "org/unknown" in s["error"]
    answered = s["requests"].get("model", 0)
    await inline(client, open_doc(client, "kept.py", PY), RETURN)
    assert (await status(client))["requests"].get("model", 0) == answered + 1
