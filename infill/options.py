"""Settings of one completion request."""

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class InfillOptions:
    max_tokens: int = 128  # hard maximum canvas (mask tokens) for any span
    max_lines: int = 16  # most lines a multi-line completion may have
    context_tokens: int = 1536  # budget for the prompt around the canvas
    candidates: int = 1  # how many canvas sizes to try (initial, larger, smaller, ...)
    canvas: int | None = None  # initial canvas, overriding the kind's default and hard maximum
    min_chars: int = 1  # shorter completions (after post-processing) are dropped
    # a judged completion (infill/trust.py) is shown when its probability clears this: for automatic
    # requests (typing) and for invoked ones (the user asked)
    min_probability: float = 0.0
    min_probability_invoked: float = 0.0
    syntax_errors: bool = False  # a judged candidate that adds a tree-sitter error may be shown

    def __post_init__(self):
        for name in ("max_tokens", "max_lines", "context_tokens", "candidates", "min_chars"):
            if getattr(self, name) < 1:
                raise ValueError(f"InfillOptions.{name} must be >= 1, got {getattr(self, name)}")
        for name in ("min_probability", "min_probability_invoked"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"InfillOptions.{name} must be in [0, 1], got {getattr(self, name)}")
        if self.canvas is not None and self.canvas < 1:
            raise ValueError(f"InfillOptions.canvas must be >= 1, got {self.canvas}")
