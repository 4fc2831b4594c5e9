"""Server options: one nested frozen Struct, camelCase on the wire (initializationOptions and
workspace/didChangeConfiguration).

`parse(raw, base)` never fails: each invalid or unknown value falls back to `base` and yields a one-line
message naming the option.

The `model` group (ModelOptions) is models.py's: the team server reads it there without importing infill,
which this module's defaults come from.
"""

from __future__ import annotations

import copy
import re
from typing import Annotated, Any, Literal

import msgspec
from msgspec import UNSET, Meta, UnsetType

from infill import InfillOptions
from infill.refactor import HOLE

from .models import REMOTE_URL, TOKEN, ModelOptions

_INFILL = InfillOptions()
Positive = Annotated[int, Meta(ge=1)]
Probability = Annotated[float, Meta(gt=0, le=1)]
# "at `$.completion.maxTokens`" or "at `$.languages[...]`" in msgspec's ValidationError messages
_PATH = re.compile(r" - at `\$((?:\.[A-Za-z_][A-Za-z0-9_]*)*)(?:\[\.\.\.\])?`$")
_UNKNOWN = re.compile(r"^Object contains unknown field `([^`]*)`")
# what a pattern's failure says instead of msgspec's "Expected `str` matching regex '...'"
_EXPECTED = {REMOTE_URL: "expected an http:// or https:// URL such as http://gpu-box:8000",
             TOKEN: "expected visible ASCII characters without spaces"}
_SECRET = {"model.token"}  # never echoed back


class _Options(msgspec.Struct, frozen=True, rename="camel", forbid_unknown_fields=True):
    pass


# engine.SamplerConfig's defaults except `tokens_per_step` (tests check this). An editor waits on every
# suggestion, so the server commits at least three positions per forward: with the embedded model on this
# project's 2-core CPU, through the server on five projects outside the corpus, whole-line p50 135 instead of
# 168 ms and p95 532 instead of 715, rest of line 79 instead of 89 ms, exact match 15.0 / 29.0% instead of
# 15.5 / 28.0% (one line case fewer, two rest cases more of 200 each; `python -m bench.eval_server`,
# bench/RESULTS.md).
# Two instead of one had cut forwards from 7.9 to 5.2 per single-line completion (`bench.eval_options`).
SAMPLER_DEFAULTS = dict(confidence="confidence", temperature=0.0, top_p=1.0, top_k=0, gumbel=False,
                        threshold=0.9, tokens_per_step=3, block_size=None, steps=None)


class SamplerOptions(_Options):
    """engine.SamplerConfig's fields, unset unless the user sets them: `resolve` fills the rest from the
    chosen catalogue model's recommendation (engine/catalogue.py), then from SAMPLER_DEFAULTS."""

    confidence: Literal["confidence", "margin", "entropy", "random"] | UnsetType = UNSET
    temperature: Annotated[float, Meta(ge=0)] | UnsetType = UNSET
    top_p: Probability | UnsetType = UNSET
    top_k: Annotated[int, Meta(ge=0)] | UnsetType = UNSET
    gumbel: bool | UnsetType = UNSET
    threshold: Probability | None | UnsetType = UNSET
    tokens_per_step: Positive | UnsetType = UNSET
    block_size: Positive | None | UnsetType = UNSET
    steps: Positive | None | UnsetType = UNSET

    def resolve(self, recommended: dict | None = None) -> dict:
        """SamplerConfig's arguments: user option > catalogue recommendation > built-in default."""
        chosen = {k: v for k, v in msgspec.structs.asdict(self).items() if v is not UNSET}
        return {**SAMPLER_DEFAULTS, **(recommended or {}), **chosen}


MIN_CONFIDENCE = 0.3
MIN_CONFIDENCE_INVOKED = 0.1


class CompletionOptions(_Options):
    max_tokens: Positive = _INFILL.max_tokens
    max_lines: Positive = _INFILL.max_lines
    # None: CPU_CONTEXT_TOKENS on the CPU, where every forward costs in proportion to the context, else
    # infill's default (1536); always capped by what the model can see (lsp_server/completion/filler.py)
    context_tokens: Positive | None = None
    candidates: Positive = _INFILL.candidates
    canvas: Positive | None = (
        None  # initial canvas for every span kind (None: the kind's own); fewer = faster
    )
    debounce_ms: Annotated[int, Meta(ge=0, le=5000)] = 75  # automatic triggers wait this long for a newer one
    items: bool | None = True  # serve textDocument/completion; None: only to clients without inlineCompletion
    # show the best candidate only when its probability of being kept (infill/trust.py, with a model that
    # ships a trust.json) clears this: typing (automatic requests), and asking (invoked ones, and the
    # completion list). 0: always show. Defaults chosen on development projects (bench/RESULTS.md, Trust)
    min_confidence: Annotated[float, Meta(ge=0, le=1)] = MIN_CONFIDENCE
    min_confidence_invoked: Annotated[float, Meta(ge=0, le=1)] = MIN_CONFIDENCE_INVOKED
    # inline items carry {"probability", "source", "kind"} as the arguments of a command "unmask.explain"
    explain: bool = False
    # a judged completion that adds a tree-sitter error to the file may be shown (default: never)
    syntax_errors: bool = False


class MemoryOptions(_Options):
    """The repository memory (engine/memory.py): the open documents (and, with `workspace`, the project's
    source files) matched against the text around the cursor and mixed into the model's choices."""

    enabled: bool = True
    weight: Annotated[float, Meta(ge=0, lt=1)] = 0.97
    half_length: Annotated[float, Meta(gt=0)] = 8.0
    min_length: Positive = 4
    count_prior: Annotated[float, Meta(ge=0)] = 0.2
    right: bool = True
    # a checkpoint's shipped corpus index (engine/corpus_index.py) where the project has less to say; 0: off
    corpus_weight: Annotated[float, Meta(ge=0, lt=1)] = 0.0
    corpus_half_length: Annotated[float, Meta(gt=0)] = 16.0
    corpus_min_length: Positive = 8
    workspace: bool = True  # also remember the workspace folders' source files of the served languages
    max_megabytes: Positive = 8


class AdaptOptions(_Options):
    """Adapting the network to the workspace (lsp_server/adaptation): after the workspace is read, a
    low-priority process on one thread fine-tunes the model on its files for `minutes`; the result serves
    from then on and from the cache on later starts, until more than a `refresh` share of the project's
    bytes changed (checked at start and every `check_minutes`). Off by default until it measures better
    (bench/RESULTS.md, Adapting to a project)."""

    enabled: bool = False
    minutes: Annotated[float, Meta(gt=0, le=240)] = 5.0
    refresh: Annotated[float, Meta(ge=0, le=1)] = 0.2
    check_minutes: Annotated[float, Meta(gt=0)] = 10.0


class ActionsOptions(_Options):
    """The code actions (lsp_server/actions/)."""

    hole_marker: Annotated[str, Meta(min_length=1)] = HOLE  # what *Fill holes* fills (`unmask fill --marker`)


class Options(_Options):
    model: ModelOptions = ModelOptions()
    sampler: SamplerOptions = SamplerOptions()
    completion: CompletionOptions = CompletionOptions()
    memory: MemoryOptions = MemoryOptions()
    adapt: AdaptOptions = AdaptOptions()
    actions: ActionsOptions = ActionsOptions()
    languages: dict[str, bool] = msgspec.field(default_factory=dict)  # infill language name -> on/off

    def infill(self) -> InfillOptions:
        c = self.completion
        return InfillOptions(
            max_tokens=c.max_tokens,
            max_lines=c.max_lines,
            context_tokens=c.context_tokens or _INFILL.context_tokens,
            candidates=c.candidates,
            canvas=c.canvas,
            min_probability=c.min_confidence,
            min_probability_invoked=c.min_confidence_invoked,
            syntax_errors=c.syntax_errors,
        )

    def enabled(self, language: str) -> bool:
        return self.languages.get(language, True)

    def source_extensions(self) -> set[str]:
        """File extensions of the languages served: the workspace files read for the memory and adaptation."""
        from infill.languages import languages

        return {ext for name, spec in languages().items() if self.enabled(name) for ext in spec.extensions}


def merge(base: dict, update: dict) -> dict:
    """base with update's values, recursing into objects present in both."""
    out = dict(base)
    for key, value in update.items():
        out[key] = (
            merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
        )
    return out


def parse(raw: Any, base: Options = Options()) -> tuple[Options, list[str]]:
    """Options from a client's JSON object over base; invalid values fall back to base's, with a message."""
    if raw is None:
        return base, []
    if not isinstance(raw, dict):
        return base, [f"unmask options must be an object, got {type(raw).__name__}; using defaults"]
    data, fallback, messages = merge(msgspec.to_builtins(base), raw), msgspec.to_builtins(base), []
    for _ in range(64):  # at most one fallback per offending value
        try:
            return msgspec.convert(data, Options), messages
        except msgspec.ValidationError as e:
            messages.append(_fall_back(data, fallback, str(e)))
    return base, messages + ["too many invalid unmask options; using defaults"]


def _fall_back(data: dict, fallback: dict, error: str) -> str:
    """Reset the value the error names (or drop the unknown field) in data, in place; the message to show."""
    match = _PATH.search(error)
    keys = match.group(1).split(".")[1:] if match else []
    unknown = _UNKNOWN.match(error)
    if unknown:
        keys.append(unknown.group(1))
    where = ".".join(keys) or "options"
    if not keys:
        data.clear()
        data.update(copy.deepcopy(fallback))
        return f"invalid unmask options ({error}); using defaults"
    parent, default = data, fallback
    for key in keys[:-1]:
        parent, default = parent[key], default.get(key, {}) if isinstance(default, dict) else {}
    if unknown:
        parent.pop(keys[-1], None)
        return f"unknown unmask option {where!r} ignored"
    if keys[-1] not in default:  # unset in base (a sampler option): unset again
        parent.pop(keys[-1], None)
        return f"invalid unmask option {where!r}: {explain(error)}; using the default"
    parent[keys[-1]] = copy.deepcopy(default[keys[-1]])
    using = "the default" if where in _SECRET else repr(default[keys[-1]])
    return f"invalid unmask option {where!r}: {explain(error)}; using {using}"


def explain(error: str) -> str:
    """A ValidationError's message without its path, a pattern's failure in words."""
    message = error.split(" - at ")[0]
    for pattern, words in _EXPECTED.items():
        if message == f"Expected `str` matching regex {pattern!r}":
            return words
    return message
