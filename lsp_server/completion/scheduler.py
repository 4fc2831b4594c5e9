"""Per-document request order on the event loop: a newer request supersedes the older one, debounce, cancel.

A superseded request answers Superseded at once if it is still debouncing, or as soon as the engine thread
polls its cancel flag (between denoising steps). `$/cancelRequest` cancels the handler's task: the
CancelledError raised at its await sets the same flag, so the engine stops too.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import Future

from ..outcomes import Superseded


class CancelToken:
    """One request's cancel flag, readable from the engine thread and awaitable on the loop."""

    def __init__(self):
        self.flag = threading.Event()
        self._wake = asyncio.Event()

    def cancel(self) -> None:
        self.flag.set()
        self._wake.set()

    @property
    def cancelled(self) -> bool:
        return self.flag.is_set()

    async def sleep(self, seconds: float) -> None:
        """Wait seconds, or less if cancelled meanwhile."""
        try:
            await asyncio.wait_for(self._wake.wait(), seconds)
        except asyncio.TimeoutError:
            pass


class Scheduler:
    def __init__(self):
        self._latest: dict[str, CancelToken] = {}  # document uri -> its newest request

    async def run(
        self,
        uri: str,
        debounce_s: float,
        ready: Callable[[], bool],
        submit: Callable[[threading.Event], Future],
    ):
        """submit(cancel_flag)'s result, or Superseded if a newer request for uri came (or ready() turned
        False) before submit was called."""
        ticket = CancelToken()
        if (older := self._latest.get(uri)) is not None:
            older.cancel()
        self._latest[uri] = ticket
        try:
            if debounce_s > 0:
                await ticket.sleep(debounce_s)
            if ticket.cancelled or not ready():
                return Superseded()
            return await asyncio.wrap_future(submit(ticket.flag))
        except asyncio.CancelledError:
            ticket.cancel()
            raise
        finally:
            if self._latest.get(uri) is ticket:
                del self._latest[uri]

    def cancel_all(self) -> None:
        for ticket in self._latest.values():
            ticket.cancel()
