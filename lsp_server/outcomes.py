"""What a request to the engine thread came to: one type per outcome, so the server matches on which one
happened. A completion ends in a `Suggestion` or one of the other types below; a model load in
`Loaded` or `LoadFailed`.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Suggestion:
    """What the model offers at the cursor."""

    lead: str  # text just before the cursor that `text` replaces
    trail: str  # text just after the cursor that `text` replaces
    text: str
    kind: str
    confidence: float
    probability: float | None = None  # that the user keeps it (infill/trust.py); None: not judged
    source: str = "network"  # "network", "memory" or "both"

    def explained(self) -> dict:
        return {"probability": self.probability, "source": self.source, "kind": self.kind}


@dataclass(frozen=True, slots=True)
class NoSuggestion:
    """The model ran and had nothing to offer here: an answer, cached like a suggestion. `withheld`: the
    probability of the best candidate, which did not clear the request's threshold (None: no candidate)."""

    withheld: float | None = None


@dataclass(frozen=True, slots=True)
class Superseded:
    """A newer request for the document, or a change to it, came before the engine took this one."""


@dataclass(frozen=True, slots=True)
class Interrupted:
    """The engine stopped at the request's cancel flag ($/cancelRequest or a newer request)."""


@dataclass(frozen=True, slots=True)
class NoModel:
    """No model was loaded when the engine took the request (still loading, or the load failed)."""


@dataclass(frozen=True, slots=True)
class Unreachable:
    """The team server gave no answer (down, timed out, a 5xx, still loading its model); asked again after a
    backoff (remote/remote.py). The message is one line for the user."""

    message: str


@dataclass(frozen=True, slots=True)
class RemoteRefused:
    """The team server answered no: 401/403 (the token) or another 4xx (a request it cannot take)."""

    message: str


Trouble = Unreachable | RemoteRefused  # a remote model's, reported in unmask/status and once per outage
# no answer this time: nothing to cache
Unanswered = Superseded | Interrupted | NoModel | Unreachable | RemoteRefused


@dataclass(frozen=True, slots=True)
class Loaded:
    description: dict  # the status fields of the model (models.describe, RemoteModel.describe)
    trouble: Trouble | None = None  # a remote model whose server did not answer yet: asked again later


@dataclass(frozen=True, slots=True)
class LoadFailed:
    """A model the user named that cannot be used here; the message is one line for the user."""

    message: str
    kept_previous: bool  # the model loaded before is still loaded and serving
