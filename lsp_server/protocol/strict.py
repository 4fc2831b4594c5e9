"""A converter that refuses wrong JSON types instead of coercing them.

cattrs structures a scalar by calling its type: `"text": null` in a didOpen became the document "None",
`"text": 5` in a didChange inserted "5", and a position's `"line": 1.5` or `true` was read as 1. A message
with a wrong type is invalid (JSON-RPC): a request gets an Invalid Params error, a notification is ignored,
and no document changes. `initialize` stays lenient (lenient()), so that a client's odd capability
values never keep the server from starting.
"""

from __future__ import annotations

import contextlib
import contextvars
from typing import Optional, Union

import cattrs
from lsprotocol.types import LanguageKind
from pygls.protocol import default_converter

_lenient = contextvars.ContextVar("lenient", default=False)


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


CHECKS = {
    int: _is_int,
    float: lambda v: _is_int(v) or isinstance(v, float),
    str: lambda v: isinstance(v, str),
    bool: lambda v: isinstance(v, bool),
}
IDS = {Union[int, str]: False, Optional[Union[int, str]]: True}  # request ids and tokens; True: may be null


@contextlib.contextmanager
def lenient(on: bool = True):
    """Within this block (in this context), wrong scalar types are coerced as cattrs does by default."""
    token = _lenient.set(on)
    try:
        yield
    finally:
        _lenient.reset(token)


def _scalar(kind: type, ok):
    def structure(value, _):
        if ok(value):
            return value
        if _lenient.get():
            return kind(value)
        raise TypeError(f"expected {kind.__name__}, got {type(value).__name__}")

    return structure


def _id(nullable: bool):
    def structure(value, _):
        if _is_int(value) or isinstance(value, str) or (nullable and value is None) or _lenient.get():
            return value
        raise TypeError(f"expected an integer or a string, got {type(value).__name__}")

    return structure


def converter() -> cattrs.Converter:
    c = default_converter()
    for kind, ok in CHECKS.items():
        c.register_structure_hook(kind, _scalar(kind, ok))
    c.register_structure_hook(Union[LanguageKind, str], _scalar(str, CHECKS[str]))  # lsprotocol's takes any
    for kind, nullable in IDS.items():
        c.register_structure_hook(kind, _id(nullable))
    return c
