"""complete(): syntax context -> span -> prompt -> model (through a Filler) -> post-processing -> ranking."""

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from .context import build_context
from .document import Document
from .options import InfillOptions
from .postprocess import postprocess
from .rank import Candidate, SyntaxCheck, best
from .span import Span, plan_span
from .syntax import syntax_context

# fill(prefix, suffix, canvas, max_canvas, single_line) -> (middle, confidence in [0, 1]);
# single_line: the middle may end at its first newline (the engine can stop denoising there)
Filler = Callable[[str, str, int, int, bool], tuple[str, float]]


@dataclass(frozen=True, slots=True)
class Completion:
    start: int  # replace doc.text[start:end] with text; both on the cursor's line
    end: int
    text: str
    kind: str  # the span kind, see infill.span.KINDS
    confidence: float


def canvas_sizes(span: Span, n: int) -> list[int]:
    """The initial canvas, then alternately doubled and halved, within [4, max_canvas]."""
    sizes, up, down = [span.canvas], span.canvas, span.canvas
    while len(sizes) < n and (up < span.max_canvas or down > 4):
        if up < span.max_canvas:
            up = min(up * 2, span.max_canvas)
            sizes.append(up)
        if len(sizes) < n and down > 4:
            down = max(down // 2, 4)
            sizes.append(down)
    return sizes


def complete(
    doc: Document,
    offset: int,
    fill: Filler,
    *,
    count_tokens: Callable[[str], int],
    invoked: bool = False,
    options: InfillOptions = InfillOptions(),
    others: Sequence[Document] = (),
) -> Completion | None:
    """The best completion at `offset`, or None when the cursor should not complete or nothing survives."""
    syn = syntax_context(doc, offset)
    span = plan_span(syn, invoked, options) if syn is not None else None
    if span is None:
        return None
    prompt = build_context(doc, offset, count_tokens, options.context_tokens, others)
    check = SyntaxCheck(doc, span.start, span.end)
    candidates, seen = [], set()
    for canvas in canvas_sizes(span, options.candidates):
        middle, confidence = fill(prompt.prefix, prompt.suffix, canvas, span.max_canvas, span.max_lines == 1)
        for text in postprocess(middle, span, syn, options.min_chars):
            if text not in seen:
                seen.add(text)
                candidates.append(Candidate(text, confidence, canvas, check.errors_added(text)))
    chosen = best(candidates)
    if chosen is None:
        return None
    return Completion(span.start, span.end, chosen.text, span.kind, chosen.confidence)
