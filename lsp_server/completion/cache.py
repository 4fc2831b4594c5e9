"""An LRU of suggestions keyed on the text around the cursor, with forwarding entries for typing along.

The key hashes the last PREFIX_CHARS before the cursor and the first SUFFIX_CHARS after it, plus a scope
(the language). Far-away edits beyond that window keep a cached answer; the
model sees more context than the key, a trade Tabby and llama.vim make too. When a suggestion inserts text
at the cursor, entries for each prefix of that insertion typed so far map to the rest of it.
"""

from __future__ import annotations

import dataclasses
from collections import OrderedDict
from collections.abc import Hashable

from ..outcomes import NoSuggestion, Suggestion

PREFIX_CHARS = 4096
SUFFIX_CHARS = 2048
FORWARD_CHARS = 256  # longest typed-along stretch that still hits


def key(scope: Hashable, prefix: str, suffix: str) -> int:
    return hash((scope, prefix[-PREFIX_CHARS:], suffix[:SUFFIX_CHARS]))


class SuggestionCache:
    def __init__(self, size: int = 4096):
        self.size = size
        self._entries: OrderedDict[int, Suggestion | NoSuggestion] = OrderedDict()

    def get(
        self, scope: Hashable, prefix: str, suffix: str, invoked: bool
    ) -> Suggestion | NoSuggestion | None:
        """The cached answer; None on a miss."""
        for k in (key(scope, prefix, suffix), key((scope, NoSuggestion, invoked), prefix, suffix)):
            if k in self._entries:
                self._entries.move_to_end(k)
                return self._entries[k]
        return None

    def put(
        self, scope: Hashable, prefix: str, suffix: str, suggestion: Suggestion | NoSuggestion, invoked: bool
    ) -> None:
        """Store a suggestion for any request, or NoSuggestion for requests invoked alike (automatic ones
        decline where invoked ones may not)."""
        prefix = prefix[-PREFIX_CHARS:]
        if isinstance(suggestion, NoSuggestion):
            self._store(key((scope, NoSuggestion, invoked), prefix, suffix), suggestion)
            return
        self._store(key(scope, prefix, suffix), suggestion)
        if not suggestion.text.startswith(suggestion.lead):
            return
        inserted = suggestion.text[len(suggestion.lead) :]
        for n in range(1, min(len(inserted), FORWARD_CHARS + 1)):
            rest = dataclasses.replace(suggestion, lead="", text=inserted[n:])
            self._store(key(scope, prefix + inserted[:n], suffix), rest)

    def clear(self) -> None:
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)

    def _store(self, k: int, value: Suggestion | NoSuggestion) -> None:
        self._entries[k] = value
        self._entries.move_to_end(k)
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)
