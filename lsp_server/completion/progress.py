"""Work-done progress for work on the engine thread: begin, then a percentage as it goes (a Hub model's
download, a code action's holes), then end."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from lsprotocol import types
from pygls.exceptions import JsonRpcException

CREATE_S = 5.0  # how long the client may take to accept a progress token
MB = 2**20


def downloaded(done: int, total: int) -> str:
    return f"downloading {done / MB:,.0f} of {total / MB:,.0f} MB"


class LoadProgress:
    def __init__(self, server, message: str, describe: Callable[[int, int], str] = downloaded):
        self.server, self.message, self.describe = server, message, describe
        self.loop = asyncio.get_running_loop()
        self.token: str | None = None  # once the client accepted it and the progress began
        self.percent = 0

    def from_thread(self, done: int, total: int) -> None:
        """The work's progress callback (engine.hub's, from download threads; a job's, from the engine's)."""
        self.loop.call_soon_threadsafe(self.update, done, total)

    def update(self, done: int, total: int) -> None:
        # percentages never go back, although totals grow as each file starts
        percent = max(self.percent, min(100, done * 100 // max(total, 1)))
        if self.token is None or percent == self.percent:
            return
        self.percent = percent
        report = types.WorkDoneProgressReport(message=self.describe(done, total), percentage=percent)
        self.server.work_done_progress.report(self.token, report)

    async def run(self, work: asyncio.Future) -> None:
        """Progress until work is done; the work never waits for the client to accept the token."""
        token = f"unmask-load-{time.monotonic_ns()}"
        progress = self.server.work_done_progress
        try:
            await asyncio.wait_for(progress.create_async(token), CREATE_S)
        except (JsonRpcException, asyncio.TimeoutError):
            return
        progress.begin(token, types.WorkDoneProgressBegin("unmask", message=self.message, percentage=0))
        self.token = token
        await asyncio.wait([work])
        progress.end(token, types.WorkDoneProgressEnd())
