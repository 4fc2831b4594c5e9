import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from lsp_server.completion.scheduler import Scheduler
from lsp_server.outcomes import Interrupted, Superseded


@pytest.fixture
def engine():
    pool = ThreadPoolExecutor(max_workers=1)
    yield pool
    pool.shutdown(cancel_futures=True)


def job(pool, seconds=2.0):
    """A fake engine job: polls its cancel flag like the denoising loop; Interrupted() or 'done'."""

    def run(flag: threading.Event):
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            if flag.is_set():
                return Interrupted()
            time.sleep(0.005)
        return "done"

    return lambda flag: pool.submit(run, flag)


async def test_a_newer_request_supersedes_one_still_debouncing(engine):
    s = Scheduler()
    older = asyncio.create_task(s.run("a", 10.0, lambda: True, job(engine, 0.01)))
    await asyncio.sleep(0.01)
    t0 = time.monotonic()
    newer = asyncio.create_task(s.run("a", 0.0, lambda: True, job(engine, 0.01)))
    assert await older == Superseded() and time.monotonic() - t0 < 1.0
    assert await newer == "done"


async def test_a_newer_request_stops_the_running_one(engine):
    s = Scheduler()
    older = asyncio.create_task(s.run("a", 0.0, lambda: True, job(engine, 5.0)))
    await asyncio.sleep(0.05)
    t0 = time.monotonic()
    newer = asyncio.create_task(s.run("a", 0.0, lambda: True, job(engine, 0.01)))
    assert await older == Interrupted()
    assert await newer == "done" and time.monotonic() - t0 < 2.0


async def test_other_documents_are_not_superseded(engine):
    s = Scheduler()
    a = asyncio.create_task(s.run("a", 0.0, lambda: True, job(engine, 0.05)))
    b = asyncio.create_task(s.run("b", 0.0, lambda: True, job(engine, 0.05)))
    assert await asyncio.gather(a, b) == ["done", "done"]


async def test_task_cancellation_sets_the_engine_flag(engine):
    s, flags = Scheduler(), []

    def submit(flag):
        flags.append(flag)
        return job(engine, 5.0)(flag)

    task = asyncio.create_task(s.run("a", 0.0, lambda: True, submit))
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert flags[0].is_set()


async def test_stale_after_debounce(engine):
    s = Scheduler()
    assert await s.run("a", 0.01, lambda: False, job(engine, 0.01)) == Superseded()
