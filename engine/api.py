"""The contract every model implements, and what it returns: the only way the language server, the CLI and
the team server use a model.

Three implementations: engine.lm.DiffusionLM (Dream, DiffuCoder, DreamOn, LLaDA, Open-dCoder layouts),
engine.gemma.DiffusionGemmaLM (DiffusionGemma), and the language server's client of a team server
(lsp_server/remote). Each states in `capabilities` what it does beyond a plain infill; an InfillParams
field it cannot honour is refused at the call with engine.errors.Unsupported (`refuse_unsupported`),
never ignored.

No torch here: a caller that only talks to a remote model imports this module without loading the engine.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from engine.errors import Unsupported
from engine.params import DEFAULT_REFRESH, InfillParams

Cancel = Callable[[], bool]  # polled between forwards; True raises engine.errors.Cancelled


@dataclass(frozen=True)
class InfillStats:
    forward_passes: int
    tokens_per_forward: float  # canvas positions resolved per forward, summed over canvases (blocks)
    canvas: int  # the widest canvas one forward denoised (a growing canvas's widest; a block's size)
    ms: float
    queue_ms: float = 0.0  # engine.batch: waiting before the first forward (included in ms)
    batch: float = 1.0  # engine.batch: mean rows per forward this request took part in


@dataclass(frozen=True)
class InfillResult:
    text: str
    confidence: float  # mean commit probability of the middle's tokens
    stats: InfillStats


@dataclass(frozen=True)
class Proposal:
    """A middle the repository memory predicts by itself: what followed the longest earlier occurrence(s) of
    the text before the cursor."""

    text: str
    length: int  # bytes of the text before the cursor that the occurrences repeat
    count: int  # occurrences followed by this text
    total: int  # occurrences of the match, whatever followed them


@dataclass(frozen=True)
class Capabilities:
    """What a model family does beyond a fixed canvas denoised with the network alone."""

    cache: bool  # the approximate context cache: InfillParams.cache and refresh
    memory: bool  # the repository memory mixed into the denoiser: InfillParams.memory
    grows: bool  # a canvas that grows up to InfillParams.max_canvas (other families fill `canvas` tokens)
    batching: bool  # engine.batch.Batcher serves it, many requests per forward
    score: bool  # CompletionModel.score
    sampler: bool  # InfillParams.sampler's masked-decoding settings; False: only its `steps` carries over


@dataclass(frozen=True)
class ModelInfo:
    """What a status line or a team server tells about a loaded model."""

    name: str  # a Hub id, or the checkpoint folder
    family: str
    device: str  # "cpu", "cuda:0", "mps"
    dtype: str  # "float32", "bfloat16"
    quantize: str  # "none", "int8", "int4"
    max_positions: int
    folder: str = ""  # the checkpoint's folder on this machine ("" for a model served elsewhere)


@runtime_checkable
class Memory(Protocol):
    """Texts a model's repository memory matches against, by name (engine.memory.RepositoryMemory; a remote
    model keeps the texts themselves to send along)."""

    def update(self, key: str, text: str, cursor: int | None = None) -> None: ...

    def remove(self, key: str) -> None: ...

    def limit(self, max_bytes: int) -> None: ...

    def report(self) -> dict: ...

    def contains(self, word: str) -> bool:
        """Whether any remembered text holds this identifier (a name the user's code defines or uses)."""
        ...

    def __bool__(self) -> bool: ...


@runtime_checkable
class CompletionModel(Protocol):
    capabilities: Capabilities
    memory: Memory  # the caller may replace it (a server keeps what it learned across model reloads)

    @property
    def info(self) -> ModelInfo: ...

    @property
    def max_positions(self) -> int:
        """Tokens the model sees at once: context before and after plus the canvas."""
        ...

    def context_room(self, canvas: int) -> int:
        """Tokens of prefix plus suffix that fit beside a canvas of `canvas` tokens."""
        ...

    def count_tokens(self, text: str) -> int: ...

    def infill(self, prefix: str, suffix: str, params: InfillParams = InfillParams(),
               cancel: Cancel | None = None) -> InfillResult:
        """The middle between prefix and suffix."""
        ...

    def score(self, prefix: str, suffix: str, candidates: Sequence[str],
              params: InfillParams = InfillParams()) -> list[float]:
        """Per candidate middle, the mean log-probability of its tokens in place (higher: likelier)."""
        ...

    def propose(self, prefix: str, suffix: str, params: InfillParams = InfillParams(),
                limit: int = 4) -> list[Proposal]:
        """The repository memory's own middles (no network), most frequent first; [] without params.memory
        or without a memory."""
        ...


def refuse_unsupported(family: str, caps: Capabilities, params: InfillParams) -> None:
    """One line naming the first InfillParams field this family cannot honour (engine.errors.Unsupported)."""
    asked = [
        ("memory", params.memory is not None and not caps.memory, "has no repository memory"),
        ("cache", params.cache is not None and not caps.cache, "has no approximate context cache"),
        ("refresh", params.refresh != DEFAULT_REFRESH and not caps.cache, "has no approximate context cache"),
        ("max_canvas", (params.max_canvas or 0) > params.canvas and not caps.grows,
         f"does not grow the canvas (set max_canvas <= canvas={params.canvas})"),
    ]
    for field, refused, why in asked:
        if refused:
            raise Unsupported(f"InfillParams.{field}: {family} {why}")
