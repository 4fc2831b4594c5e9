"""complete(): syntax context -> span -> prompt -> candidates (the model's middles through a Filler, the
repository memory's proposals) -> post-processing -> judging (infill/trust.py) -> shown, withheld or
nothing."""

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from .context import Prompt, build_context
from .document import Document
from .languages import spec
from .names import unknown, words
from .options import InfillOptions
from .postprocess import postprocess
from .rank import Candidate, SyntaxCheck, best
from .span import Span, plan_span
from .syntax import syntax_context
from .trust import Calibration, Evidence, shape

# fill(prefix, suffix, canvas, max_canvas, single_line) -> (middle, confidence in [0, 1]);
# single_line: the middle may end at its first newline (the engine can stop denoising there)
Filler = Callable[[str, str, int, int, bool], tuple[str, float]]
# propose(prefix, suffix, single_line) -> [(middle, bytes matched, occurrences followed by it, occurrences)]
Proposer = Callable[[str, str, bool], list[tuple[str, int, int, int]]]
# score(prefix, suffix, middles) -> the network's mean log-probability of each middle in place
Scorer = Callable[[str, str, list[str]], list[float]]


@dataclass(frozen=True, slots=True)
class Judge:
    """What infill may ask beyond the Filler to judge candidates. Without a calibration, candidates are the
    Filler's alone, ranked by syntax errors added then confidence, and always shown."""

    propose: Proposer | None = None
    score: Scorer | None = None
    known: Callable[[str], bool] | None = None  # a name the project uses elsewhere (the workspace)
    calibration: Calibration | None = None


@dataclass(frozen=True, slots=True)
class Completion:
    start: int  # replace doc.text[start:end] with text; both on the cursor's line
    end: int
    text: str
    kind: str  # the span kind, see infill.span.KINDS
    confidence: float
    probability: float | None = None  # that the user keeps it (infill/trust.py); None: not judged
    source: str = "network"  # "network", "memory" or "both"


@dataclass(frozen=True, slots=True)
class Withheld:
    """Nothing is shown: the best candidate's probability did not clear the request's threshold, or every
    candidate adds a syntax error."""

    kind: str
    probability: float
    source: str
    reason: str = "threshold"  # "threshold" or "syntax" (every candidate adds an error)


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
    judge: Judge = Judge(),
) -> Completion | Withheld | None:
    """The best completion at `offset`; Withheld when it is not likely right enough; None when the cursor
    should not complete or nothing survives."""
    found = candidates(doc, offset, fill, count_tokens=count_tokens, invoked=invoked, options=options,
                       others=others, judge=judge)
    if found is None:
        return None
    span, ranked, judged = found
    if judge.calibration is None:
        chosen = best(ranked)
        if chosen is None:
            return None
        return Completion(span.start, span.end, chosen.text, span.kind, chosen.confidence)
    if not judged:
        return None
    probs = [judge.calibration.probability(e) for _, e in judged]
    # a judged candidate that adds a syntax error is never shown, however likely (JetBrains' rule)
    clean = [k for k, (_, e) in enumerate(judged) if options.syntax_errors or e.errors_added <= 0]
    i = max(clean or range(len(judged)), key=lambda k: (probs[k], -k))
    (text, confidence), e = judged[i]
    source = "both" if e.network and e.memory else "network" if e.network else "memory"
    threshold = options.min_probability_invoked if invoked else options.min_probability
    if not clean:
        return Withheld(span.kind, probs[i], source, "syntax")
    if probs[i] < threshold:
        return Withheld(span.kind, probs[i], source)
    return Completion(span.start, span.end, text, span.kind, confidence, probs[i], source)


def candidates(
    doc: Document,
    offset: int,
    fill: Filler,
    *,
    count_tokens: Callable[[str], int],
    invoked: bool = False,
    options: InfillOptions = InfillOptions(),
    others: Sequence[Document] = (),
    judge: Judge = Judge(),
) -> "tuple[Span, list[Candidate], list[Judged]] | None":
    """The span, the Filler's candidates, and (with a calibration in `judge`) every candidate with its
    evidence, the memory's proposals added; None when the cursor should not complete."""
    syn = syntax_context(doc, offset)
    span = plan_span(syn, invoked, options) if syn is not None else None
    if span is None:
        return None
    prompt = build_context(doc, offset, count_tokens, options.context_tokens, others)
    check = SyntaxCheck(doc, span.start, span.end)
    ranked, seen = [], set()
    for canvas in canvas_sizes(span, options.candidates):
        middle, confidence = fill(prompt.prefix, prompt.suffix, canvas, span.max_canvas, span.max_lines == 1)
        for text in postprocess(middle, span, syn, options.min_chars):
            if text not in seen:
                seen.add(text)
                ranked.append(Candidate(text, confidence, canvas, check.errors_added(text)))
    if judge.calibration is None:
        return span, ranked, []
    return span, ranked, _judged(doc, offset, span, syn, prompt, ranked, check, judge, options, others)


Judged = tuple[tuple[str, float], Evidence]  # ((text, confidence), evidence)


@dataclass(slots=True)
class _Origin:
    """Where one candidate text came from: the Filler (with its confidence), the memory (with its support)."""

    network: bool = False
    confidence: float = 0.0
    errors: int | None = None  # known for the Filler's candidates (ranked already)
    memory: bool = False
    match: int = 0
    count: int = 0
    total: int = 0


def _judged(doc: Document, offset: int, span: Span, syn, prompt: Prompt, candidates: list[Candidate],
            check: SyntaxCheck, judge: Judge, options: InfillOptions, others: Sequence[Document]
            ) -> list[Judged]:
    """Every candidate, the memory's proposals added, with its evidence."""
    found = {c.text: _Origin(True, c.confidence, c.errors_added) for c in candidates}
    if judge.propose is not None:
        for middle, match, count, total in judge.propose(prompt.prefix, prompt.suffix, span.max_lines == 1):
            for text in postprocess(middle, span, syn, options.min_chars):
                origin = found.setdefault(text, _Origin())
                if count > origin.count:
                    origin.memory, origin.match, origin.count, origin.total = True, match, count, total
    if not found:
        return []
    texts = list(found)
    lead = doc.text[span.start : offset]
    middles = [t[len(lead) :] if t.startswith(lead) else t for t in texts]
    after = prompt.suffix[max(span.end - offset, 0) :]
    scores = judge.score(prompt.prefix, after, middles) if judge.score is not None else [None] * len(texts)
    line_end = doc.text.find("\n", span.end)
    rest = doc.text[span.end : len(doc.text) if line_end < 0 else line_end]
    seen = words([doc.text, *(o.text for o in others)])
    brackets = spec(doc.language).brackets
    out = []
    for text, score in zip(texts, scores):
        o = found[text]
        errors = check.errors_added(text) if o.errors is None else o.errors
        repetition, open_, prose = shape(text, rest, brackets)
        names = len(unknown(text, doc.language, seen, judge.known))
        e = Evidence(o.network, o.memory, o.confidence, score, o.match, o.count, o.total, errors, names,
                     repetition, open_, len(text), prose)
        out.append(((text, o.confidence), e))
    return out
