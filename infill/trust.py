"""Whether a candidate is what the user would keep: its evidence, and a calibrated model over it.

Each candidate (a denoised middle, or a continuation the repository memory proposes) gets the same evidence:
where it came from, the network's score of it in place, how much the memory's occurrences support it, the
syntax errors it adds, the names it invents and its shape (repetition, brackets left open, prose). A logistic
model fitted on development projects (bench/fit_trust.py; its weights are a JSON file beside the checkpoint,
`trust.json`) turns the evidence into the probability that the candidate is exactly right; the best candidate
is shown only when that probability clears the request's threshold.
"""

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path

_IDENT = re.compile(r"[A-Za-z_]\w*")
_WORD = re.compile(r"[A-Za-z]+")
_REPEATED_CHUNK = re.compile(r"(\S.{0,9}?)\1{2,}")  # a short chunk three or more times in a row


@dataclass(frozen=True, slots=True)
class Evidence:
    network: bool  # the denoiser wrote it
    memory: bool  # the repository memory proposed it
    confidence: float  # the denoiser's mean commit probability (0 when only the memory proposed it)
    score: float | None  # the network's mean log-probability of its tokens in place; None: not scored
    match: int  # bytes before the cursor that the memory's occurrences repeat (0: no proposal)
    count: int  # occurrences followed by this text
    total: int  # occurrences of that match, whatever followed them
    errors_added: int  # tree-sitter ERROR/MISSING nodes the replacement adds
    unknown_names: int  # names used that are defined nowhere the user could mean (infill/names.py)
    repetition: int  # the most times one identifier occurs, or a short chunk repeats in a row
    open_brackets: int  # brackets it opens that neither it nor the rest of the line closes
    chars: int
    prose: bool  # reads as text, not code: a doctest prompt, or a run of plain words


FEATURES = ("bias", "network", "memory", "both", "confidence", "score", "scored", "log_match", "log_count",
            "share", "errors_added", "unknown_names", "repetition", "open_brackets", "log_chars", "prose")


def features(e: Evidence) -> list[float]:
    """The model's inputs, in FEATURES order."""
    share = e.count / e.total if e.total else 0.0
    return [1.0, float(e.network), float(e.memory), float(e.network and e.memory), e.confidence,
            e.score if e.score is not None else 0.0, float(e.score is not None), math.log1p(e.match),
            math.log1p(e.count), share, float(max(min(e.errors_added, 3), -1)),
            float(min(e.unknown_names, 3)), float(min(e.repetition, 6)), float(min(e.open_brackets, 3)),
            math.log1p(e.chars), float(e.prose)]


def shape(text: str, rest_of_line: str, brackets: str) -> tuple[int, int, bool]:
    """(repetition, brackets left open, prose) of a candidate; rest_of_line: what follows it on its line."""
    idents = _IDENT.findall(text)
    most = max((idents.count(w) for w in set(idents)), default=0)
    chunk = _REPEATED_CHUNK.search(text)
    repetition = max(most, len(chunk.group(0)) // max(len(chunk.group(1)), 1) if chunk else 0)
    open_ = 0
    for o, c in zip(brackets[::2], brackets[1::2]):
        left = text.count(o) - text.count(c)
        open_ += max(0, left - rest_of_line.count(c))
    words = text.split()
    plain = sum(bool(_WORD.fullmatch(w.strip(",.;:!?"))) for w in words)
    code = re.search(r"[()=\[\]{}]", text)
    prose = ">>>" in text or (len(words) >= 4 and plain / len(words) >= 0.8 and not code)
    return repetition, open_, prose


@dataclass(frozen=True)
class Calibration:
    """A logistic model over FEATURES: probability = 1 / (1 + exp(-w . features))."""

    weights: tuple[float, ...]
    fitted_on: str = ""  # what it was fitted on, for the record

    def __post_init__(self):
        if len(self.weights) != len(FEATURES):
            raise ValueError(f"Calibration needs {len(FEATURES)} weights ({', '.join(FEATURES)}), "
                             f"got {len(self.weights)}")

    def uses(self, feature: str) -> bool:
        """Whether the fit gave `feature` any weight (a feature left out when fitting gets none)."""
        return self.weights[FEATURES.index(feature)] != 0.0

    def probability(self, e: Evidence) -> float:
        z = sum(w * x for w, x in zip(self.weights, features(e)))
        return 1.0 / (1.0 + math.exp(-max(-30.0, min(30.0, z))))

    @classmethod
    def load(cls, path: Path) -> "Calibration":
        """From a trust.json ({"features": [...], "weights": [...], "fitted_on": "..."}); a file whose
        features differ from FEATURES is refused in one line."""
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise ValueError(f"{path}: not a readable calibration ({e})") from None
        if tuple(data.get("features", ())) != FEATURES:
            raise ValueError(f"{path}: fitted on other features than this version's ({', '.join(FEATURES)})")
        return cls(tuple(float(w) for w in data["weights"]), str(data.get("fitted_on", "")))

    def save(self, path: Path) -> None:
        data = {"features": list(FEATURES), "weights": [round(w, 6) for w in self.weights],
                "fitted_on": self.fitted_on}
        path.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
