"""`unmask/document`: what the server holds for one open document, for soak and fuzz tests to compare with
the client's copy without shipping the text back.

Params `{"textDocument": {"uri": ...}}`; result null for a document that is not open, else
`{"version", "length", "sha256", "engineSha256"}`: the length in code points and the SHA-256 of the UTF-8
text held by the event loop (documents.py), and of the engine thread's parsed copy once every edit sent
before this request has reached it (null when that thread keeps none: unparseable documents).
"""

from __future__ import annotations

import asyncio
import hashlib

from pygls.exceptions import JsonRpcInvalidParams

DOCUMENT = "unmask/document"


def digest(text: str | None) -> str | None:
    return None if text is None else hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def uri_of(params) -> str:
    uri = getattr(getattr(params, "textDocument", None), "uri", None)
    if not isinstance(uri, str):
        raise JsonRpcInvalidParams(f"{DOCUMENT}: params.textDocument.uri must be a string")
    return uri


async def document(ls, params) -> dict | None:
    uri = uri_of(params)
    if (doc := ls.docs.get(uri)) is None:
        return None
    text, version = doc.text, doc.version  # before the await: later edits must not mix in
    engine = await asyncio.wrap_future(ls.worker.text(uri))
    return {"version": version, "length": len(text), "sha256": digest(text), "engineSha256": digest(engine)}
