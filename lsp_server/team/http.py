"""The HTTP edge every route shares: the bearer token, the body size limit, JSON decoding into a request
Struct, error bodies, and server-sent events. Every error a client can cause is a RequestRefused; the message
names the field."""

from __future__ import annotations

import hmac
import json
import re
from collections.abc import Iterable
from typing import TypeVar

import msgspec
from starlette.requests import Request
from starlette.responses import JSONResponse, StreamingResponse

from .job import RequestRefused

T = TypeVar("T")
# msgspec's "Expected `int` >= 1 - at `$.sampler.top_k`" / "Object contains unknown field `canvs` - at `$`"
_AT = re.compile(r" - at `\$\.?([^`]*)`$")
_UNKNOWN = re.compile(r"unknown field `([^`]*)`")


def check_token(request: Request, token: str | None) -> None:
    if token is None:
        return
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(value.strip().encode(), token.encode()):
        raise RequestRefused(401, "missing or wrong token: send the header `Authorization: Bearer <token>`")


async def read_body(request: Request, limit: int) -> bytes:
    """The body, refused (413) as soon as it passes `limit` bytes, by its Content-Length or as it streams."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.strip().isdigit():
            raise RequestRefused(400, f"Content-Length must be a number of bytes, got {declared!r}")
        if int(declared) > limit:
            raise RequestRefused(413, f"request body of {int(declared)} bytes is over the limit of {limit}")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise RequestRefused(413, f"request body is over the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def decode(body: bytes, kind: type[T]) -> T:
    """400 for a body that is not JSON, 422 naming the field for JSON of the wrong shape."""
    try:
        return msgspec.json.decode(body, type=kind)
    except msgspec.ValidationError as e:
        message = str(e)
        at, unknown = _AT.search(message), _UNKNOWN.search(message)
        field = at.group(1) if at else ""
        where = f"{field}: " if field else ""
        param = unknown.group(1) if unknown else field or None
        raise RequestRefused(422, f"{where}{message.split(' - at ')[0]}", param) from None
    except (msgspec.DecodeError, UnicodeDecodeError) as e:  # invalid UTF-8 inside a string: the latter
        raise RequestRefused(400, f"request body is not valid JSON: {e}") from None
    except RecursionError:
        raise RequestRefused(400, "request body is JSON nested too deeply") from None


def error(e: RequestRefused) -> JSONResponse:
    """OpenAI's error shape, which Continue and minuet show; llama.cpp's clients only look at the status."""
    kind = "authentication_error" if e.status == 401 else "server_error" if e.status >= 500 else (
        "invalid_request_error")
    headers = {"WWW-Authenticate": "Bearer"} if e.status == 401 else None
    body = {"error": {"message": e.message, "type": kind, "param": e.param, "code": e.status}}
    return JSONResponse(body, status_code=e.status, headers=headers)


def sse(events: Iterable[dict | str]) -> StreamingResponse:
    """`data: <json>` per event (a str is sent as is: "[DONE]"), a blank line after each."""
    lines = [f"data: {e if isinstance(e, str) else json.dumps(e)}\n\n" for e in events]
    return StreamingResponse(iter(lines), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache"})
