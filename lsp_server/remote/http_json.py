"""Requests to one HTTP server from one thread (the engine's), with a cancel flag polled while the answer is
awaited: a cancelled request closes its connection, so the server sees the client leave.

The connection is kept between requests (keep-alive); a request on a kept connection that the server had
closed meanwhile is sent once more on a new one (the team server's requests have no side effects).
"""

from __future__ import annotations

import http.client
import selectors
import socket
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

POLL_S = 0.02  # how often the cancel flag is read while the server works
# a kept connection the server closed fails like this on the next request, before any answer
_STALE = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError, ConnectionAbortedError)


class ConnectionFailed(Exception):
    """No answer: refused, reset, unresolvable, timed out, not HTTP. The message is a few words for a user."""


class Aborted(Exception):
    """The cancel flag was set before the answer came; the connection is closed."""


@dataclass(frozen=True, slots=True)
class HttpReply:
    status: int
    body: bytes


class Connection:
    def __init__(self, url: str, headers: dict[str, str], connect_s: float):
        parts = urlsplit(url)
        self.https, self.host = parts.scheme == "https", parts.hostname or ""
        try:
            self.port = parts.port or (443 if self.https else 80)
        except ValueError:  # a port past 65535: the URL pattern lets digits through
            self.port = 0
        self.base = parts.path.rstrip("/")  # a server behind a path prefix
        self.headers, self.connect_s = headers, connect_s
        self._conn: http.client.HTTPConnection | None = None

    def request(self, method: str, path: str, body: bytes | None, *, timeout_s: float,
                cancel: Callable[[], bool] | None = None) -> HttpReply:
        """The server's answer to one request within timeout_s; raises ConnectionFailed or Aborted."""
        deadline = time.monotonic() + timeout_s
        for attempt in range(2):
            reused = self._conn is not None
            try:
                conn = self._conn or self._connect(deadline)
                return self._exchange(conn, method, path, body, deadline, cancel)
            except Aborted:
                self.close()
                raise
            except (OSError, http.client.HTTPException) as e:
                self.close()
                if not (reused and attempt == 0 and isinstance(e, _STALE)):
                    raise ConnectionFailed(self._describe(e, timeout_s)) from None
        raise AssertionError  # the second attempt, on a new connection, returned or raised

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        if conn.sock is not None:
            try:
                conn.sock.shutdown(socket.SHUT_RDWR)  # the server's read or write fails now, not at GC
            except OSError:
                pass
        conn.close()

    def _connect(self, deadline: float) -> http.client.HTTPConnection:
        if not self.port:
            raise ConnectionFailed("the URL's port is out of range")
        timeout = max(0.001, min(self.connect_s, deadline - time.monotonic()))
        if self.https:
            conn = http.client.HTTPSConnection(self.host, self.port, timeout=timeout,
                                               context=ssl.create_default_context())
        else:
            conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        conn.connect()
        conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._conn = conn
        return conn

    def _exchange(self, conn, method, path, body, deadline, cancel) -> HttpReply:
        conn.sock.settimeout(max(0.001, deadline - time.monotonic()))
        headers = {**self.headers, "Content-Type": "application/json"} if body is not None else self.headers
        conn.request(method, self.base + path, body=body, headers=headers)
        _await_answer(conn.sock, deadline, cancel)
        conn.sock.settimeout(max(0.001, deadline - time.monotonic()))  # the rest of it comes at once
        response = conn.getresponse()
        data = response.read()
        if response.will_close:
            self.close()
        return HttpReply(response.status, data)

    def _describe(self, e: Exception, timeout_s: float) -> str:
        if isinstance(e, ConnectionRefusedError):
            return "connection refused"
        if isinstance(e, TimeoutError):
            return f"no answer within {timeout_s:g} s"
        if isinstance(e, socket.gaierror):
            return f"cannot resolve {self.host}"
        if isinstance(e, ssl.SSLError):
            return f"TLS failed ({e.reason or e})"
        if isinstance(e, http.client.RemoteDisconnected):
            return "the connection closed before an answer"
        if isinstance(e, http.client.HTTPException):
            return f"not an HTTP answer ({type(e).__name__})"
        return getattr(e, "strerror", None) or str(e) or type(e).__name__


def _await_answer(sock, deadline: float, cancel: Callable[[], bool] | None) -> None:
    """Until the answer's first bytes can be read; Aborted when cancel() turns true, TimeoutError at the
    deadline."""
    pending = getattr(sock, "pending", None)  # TLS: bytes already decrypted are not seen by select
    if pending and pending():
        return
    with selectors.DefaultSelector() as selector:  # epoll or kqueue: any descriptor number
        selector.register(sock, selectors.EVENT_READ)
        while True:
            if cancel is not None and cancel():
                raise Aborted
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError
            if selector.select(min(POLL_S, left)):
                return
