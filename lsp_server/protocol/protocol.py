"""pygls' LSP protocol with these changes.

- A request without params gets params null (JSON-RPC allows omitting them; pygls would fail to read it).
- A request that cannot be read (invalid params such as a negative position) is answered with an error
  carrying its id; pygls would drop it unanswered. Messages that are not JSON-RPC objects at all are
  answered with an error whose id is null (see UnmaskServer.report_server_error for unparsable JSON).
  A notification that cannot be read is logged and ignored: JSON-RPC never answers a notification.
- Params are read with strict JSON types (strict.py): a wrong type is invalid, never coerced.
- Text sync goes only to the server's own documents (documents/documents.py): pygls' workspace copy is not
  kept, so every document has one owner and a change to a document never opened is ignored, not an error.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from lsprotocol import types
from pygls.exceptions import JsonRpcException, JsonRpcInvalidRequest
from pygls.protocol import LanguageServerProtocol
from pygls.protocol.language_server import lsp_method

from . import strict

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Answered:
    """A message that could not be read and was answered with an error while being read."""

    id: int | str


@dataclass(frozen=True, slots=True)
class Ignored:
    """A notification that could not be read (wrong types in its params): logged, never answered."""

    method: str


class UnmaskProtocol(LanguageServerProtocol):
    def structure_message(self, data: dict[str, Any]):
        if "method" in data and "params" not in data:
            data["params"] = None  # JSON-RPC params are optional; pygls' generic messages require the field
        try:
            with strict.lenient(data.get("method") == types.INITIALIZE):  # odd capabilities never stop it
                return super().structure_message(data)
        except JsonRpcException as exc:
            reason = "; ".join(_leaves(exc.__cause__)) or exc.message
            if "method" in data and isinstance(data.get("id"), (int, str)):
                error = type(exc)(f"{data['method']}: {reason}").to_response_error()
                self._send_response(data["id"], error=error)
                return Answered(data["id"])
            if isinstance(data.get("method"), str) and "id" not in data:  # a notification: never answered
                log.warning("ignored %s: %s", data["method"], reason)
                return Ignored(data["method"])
            raise

    def handle_message(self, message):
        if isinstance(message, (Answered, Ignored)):
            return
        if not isinstance(getattr(message, "jsonrpc", None), str):
            log.warning("not a JSON-RPC message: %.200r", message)
            self.answer_unreadable(JsonRpcInvalidRequest("not a JSON-RPC message"))
            return
        super().handle_message(message)

    def answer_unreadable(self, error: JsonRpcException) -> None:
        """An error response with id null: JSON-RPC's answer to a message whose id cannot be known."""
        response = {
            "jsonrpc": self.VERSION,
            "id": None,  # sent as a dict: the converter would drop a null id
            "error": self._converter.unstructure(error.to_response_error()),
        }
        self._send_data(response)

    def _to_handler(self, method: str, params):
        if (handler := self.fm.features.get(method)) is not None:
            yield handler, (params,), None

    @lsp_method(types.TEXT_DOCUMENT_DID_OPEN)
    def lsp_text_document__did_open(self, params: types.DidOpenTextDocumentParams):
        yield from self._to_handler(types.TEXT_DOCUMENT_DID_OPEN, params)

    @lsp_method(types.TEXT_DOCUMENT_DID_CHANGE)
    def lsp_text_document__did_change(self, params: types.DidChangeTextDocumentParams):
        yield from self._to_handler(types.TEXT_DOCUMENT_DID_CHANGE, params)

    @lsp_method(types.TEXT_DOCUMENT_DID_CLOSE)
    def lsp_text_document__did_close(self, params: types.DidCloseTextDocumentParams):
        yield from self._to_handler(types.TEXT_DOCUMENT_DID_CLOSE, params)


def _leaves(exc: BaseException | None) -> list[str]:
    """The messages at the leaves of a (cattrs) exception group."""
    if exc is None:
        return []
    if isinstance(group := getattr(exc, "exceptions", None), (list, tuple)):
        return [m for e in group for m in _leaves(e)]
    return [str(exc)]
