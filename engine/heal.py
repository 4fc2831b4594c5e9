"""Prompt healing: the prefix of an infill ends at the cursor, rarely where the tokenizer would end a token.

Two cases, both handled by taking text off the end of the prefix and asking the canvas to start with it:

- Blanks typed after code ("return "): in files the space belongs to the next word (" a"), so a prefix token
  " " before the canvas is text the model almost never saw (`heal`).
- A last token that longer tokens extend ("parser." where the vocabulary has ".add" and ".parse", "os.pa"
  where it has ".path"): the model learned "parser" followed by ".add", hardly ever "." followed by "add".
  As in Guidance's token healing, the prefix loses that token and the first canvas position may only hold
  tokens whose text starts with it (`heal_token`, `FirstToken`).

The completion then starts with the healed text, which the document already has: `unheal` takes it off.
"""

from __future__ import annotations

from torch import Tensor

from engine.prior import Prior
from engine.tokenizer import Vocabulary


def heal(prefix: str) -> tuple[str, str]:
    """(prefix, blanks taken off its end) for a prefix that ends in spaces after code on its line. Blank
    lines' indentation is left: infill rows train it."""
    line = prefix[prefix.rfind("\n") + 1 :]
    kept = line.rstrip(" \t")
    if not kept or kept == line:
        return prefix, ""
    return prefix[: len(prefix) - (len(line) - len(kept))], line[len(kept) :]


def unheal(text: str, healed: str) -> str:
    # the healed text is in the document already
    if not healed:
        return text
    return text[len(healed) :] if text.startswith(healed) else text.lstrip(" \t")


def heal_token(prefix: str, ids: list[int], vocab: Vocabulary) -> tuple[str, str]:
    """(prefix, its last token's text taken off) when `ids` (the prefix's tokens) end in a token that a
    longer token extends; else (prefix, ""). Tokens with a line break are left: a single-line middle stops
    at them."""
    if not ids or not vocab.extended(ids[-1]):
        return prefix, ""
    text = vocab.text(ids[-1])
    if "\n" in text or not text.strip() or not prefix.endswith(text):
        return prefix, ""
    return prefix[: len(prefix) - len(text)], text


class FirstToken:
    """A denoiser prior (engine.generate.Prior) that keeps the canvas's first position to `allowed` tokens
    while it is masked, after `inner` (the memory, or None) has mixed in its votes."""

    def __init__(self, allowed: Tensor, inner: Prior | None):
        self.allowed, self.inner = allowed, inner

    def __call__(self, logits: Tensor, canvas: Tensor, masked: Tensor) -> Tensor:
        # logits: [L, V], canvas: [L], masked: [L]
        if self.inner is not None:
            logits = self.inner(logits, canvas, masked)
        if bool(masked[0]):
            logits = logits.clone()
            v = min(logits.shape[-1], self.allowed.shape[0])
            row = logits[0, :v].masked_fill(~self.allowed[:v].to(logits.device), float("-inf"))
            logits[0, :v] = row
            logits[0, v:] = float("-inf")
        return logits
