"""Work-done progress for a model load: begin, then a percentage while a Hub model downloads, then end."""

from __future__ import annotations

import asyncio
import time

from lsprotocol import types
from pygls.exceptions import JsonRpcException

CREATE_S = 5.0  # how long the client may take to accept a progress token
MB = 2**20


class LoadProgress:
    def __init__(self, server, message: str):
        self.server, self.message = server, message
        self.loop = asyncio.get_running_loop()
        self.token: str | None = None  # once the client accepted it and the progress began
        self.percent = 0

    def from_thread(self, done: int, total: int) -> None:
        """engine.hub's progress callback: called from download threads."""
        self.loop.call_soon_threadsafe(self.update, done, total)

    def update(self, done: int, total: int) -> None:
        # percentages never go back, although totals grow as each file starts
        percent = max(self.percent, min(100, done * 100 // max(total, 1)))
        if self.token is None or percent == self.percent:
            return
        self.percent = percent
        report = types.WorkDoneProgressReport(
            message=f"downloading {done / MB:,.0f} of {total / MB:,.0f} MB", percentage=percent
        )
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
