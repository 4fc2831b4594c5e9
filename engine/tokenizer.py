"""tokenizer.json through the `tokenizers` library, with special ids resolved from the checkpoint."""

from __future__ import annotations

import json
from bisect import bisect_left
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import torch
from tokenizers import Tokenizer as HFTokenizer
from torch import Tensor

from engine.errors import CheckpointError


@dataclass(frozen=True)
class SpecialTokens:
    mask: int
    eos: int
    pad: int
    bos: int | None
    expand: int | None  # DreamOn's <|expand|>: a committed one becomes two masks
    stops: frozenset[int]  # any of these inside the canvas ends the middle


def read_json(path: Path) -> dict:
    if not path.exists():
        return {}
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise CheckpointError(f"{path}: not valid JSON ({e})") from None


def _token_text(value) -> str | None:
    # tokenizer_config.json writes either "<tok>" or {"content": "<tok>", ...}
    if isinstance(value, dict):
        return value.get("content")
    return value if isinstance(value, str) else None


ENCODE_CACHE = 1 << 16  # texts (of at most a line each: a few MB)


def first_id(value) -> int | None:
    if isinstance(value, list):
        return value[0] if value else None
    return value


class Tokenizer:
    def __init__(self, folder: Path, config: dict, mask_names: tuple[str, ...]):
        path = folder / "tokenizer.json"
        if not path.exists():
            raise CheckpointError(f"{path}: not found (unmask needs a tokenizers-format tokenizer.json)")
        try:
            self.hf = HFTokenizer.from_file(str(path))
        except Exception as e:  # the tokenizers library raises a bare Exception on malformed files
            raise CheckpointError(f"{path}: cannot be read by tokenizers ({e})") from None
        side = {
            **read_json(folder / "special_tokens_map.json"),
            **read_json(folder / "tokenizer_config.json"),
        }
        self.special = self._resolve(config, side, mask_names, folder)
        self._encoded: dict[str, list[int]] = {}  # encode_batch's answers

    def _named(self, side: dict, key: str) -> int | None:
        text = _token_text(side.get(key))
        return None if text is None else self.hf.token_to_id(text)

    def _resolve(self, config: dict, side: dict, mask_names: tuple[str, ...], folder: Path) -> SpecialTokens:
        mask = config.get("mask_token_id")
        if mask is None:
            mask = self._named(side, "mask_token")
        for name in mask_names:
            mask = mask if mask is not None else self.hf.token_to_id(name)
        if mask is None:
            raise CheckpointError(
                f"{folder}: no mask token (config.json has no mask_token_id and tokenizer_config.json "
                "names none)"
            )
        eos = first_id(config.get("eos_token_id"))
        eos = eos if eos is not None else self._named(side, "eos_token")
        if eos is None:
            raise CheckpointError(f"{folder}: no end-of-text token (config.json eos_token_id or eos_token)")
        pad = config.get("pad_token_id")
        pad = pad if pad is not None else self._named(side, "pad_token")
        pad = pad if pad is not None else eos
        expand = config.get("expand_token_id")
        expand = expand if expand is not None else self.hf.token_to_id("<|expand|>")
        dlm_pad = self.hf.token_to_id("<|dlm_pad|>")  # DiffuCoder pads the answer tail with it
        stops = frozenset(i for i in (eos, pad, dlm_pad) if i is not None)
        return SpecialTokens(mask, eos, pad, first_id(config.get("bos_token_id")), expand, stops)

    @cached_property
    def newline_ids(self) -> frozenset[int]:
        """Ids whose text contains a newline: the stops of a single-line middle."""
        texts = self.hf.decode_batch([[i] for i in range(self.vocab_size)], skip_special_tokens=False)
        return frozenset(i for i, text in enumerate(texts) if "\n" in text)

    @cached_property
    def vocabulary(self) -> Vocabulary | None:
        """Every token's text, sorted (engine/heal.py), or None where tokens' texts do not simply concatenate
        (a tokenizer whose decoder drops or adds spaces per call): prompt healing needs them to."""
        ids = list(range(self.vocab_size))
        texts = self.hf.decode_batch([[i] for i in ids], skip_special_tokens=False)
        special = self.special
        skip = special.stops | {special.mask} | {i for i in (special.bos, special.expand) if i is not None}
        words = [i for i in ids if i not in skip and texts[i].strip()][:: max(1, len(ids) // 64)]
        pairs = zip(words, words[1:] + words[:1])
        if any(self.hf.decode([a, b], skip_special_tokens=False) != texts[a] + texts[b] for a, b in pairs):
            return None
        return Vocabulary(texts, frozenset(skip))

    @property
    def vocab_size(self) -> int:
        return self.hf.get_vocab_size()

    def encode(self, text: str) -> list[int]:
        return self.hf.encode(text, add_special_tokens=False).ids

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        """Each text's ids (lists the caller must not change). The memory asks for the same continuations
        of the same code again and again, so answers are kept, up to ENCODE_CACHE texts."""
        out = []
        for t in texts:
            ids = self._encoded.get(t)
            if ids is None:
                if len(self._encoded) >= ENCODE_CACHE:
                    self._encoded.clear()
                # one call per text: for the memory's few short texts a parallel batch costs more
                ids = self._encoded[t] = self.hf.encode(t, add_special_tokens=False).ids
            out.append(ids)
        return out

    def decode(self, ids: list[int]) -> str:
        return self.hf.decode(ids, skip_special_tokens=False)

    @property
    def mask_id(self) -> int:
        return self.special.mask

    @property
    def eos_id(self) -> int:
        return self.special.eos

    @property
    def pad_id(self) -> int:
        return self.special.pad


class Vocabulary:
    """Token texts sorted, to find every token that starts with a given text. `texts[i]` is id i's text;
    ids in `skip` (special tokens) and texts that are not whole characters never match."""

    def __init__(self, texts: list[str], skip: frozenset[int]):
        self.size = len(texts)
        pairs = sorted((t, i) for i, t in enumerate(texts) if i not in skip and t and "\ufffd" not in t)
        self._texts = [t for t, _ in pairs]
        self._ids = [i for _, i in pairs]
        self._text_of = dict(zip(self._ids, self._texts))
        self._allowed: dict[str, Tensor] = {}

    def starting_with(self, text: str) -> list[int]:
        lo = bisect_left(self._texts, text)
        hi = lo
        while hi < len(self._texts) and self._texts[hi].startswith(text):
            hi += 1
        return self._ids[lo:hi]

    def text(self, token: int) -> str | None:
        return self._text_of.get(token)

    def extended(self, token: int) -> bool:
        """Whether some other token's text starts with this token's text."""
        text = self.text(token)
        return text is not None and len(self.starting_with(text)) > 1

    def allowed(self, text: str) -> Tensor:
        """[V] bool: the tokens a canvas healed of `text` may start with (kept per text)."""
        if text not in self._allowed:
            mask = torch.zeros(self.size, dtype=torch.bool)
            mask[self.starting_with(text)] = True
            if len(self._allowed) >= 4096:
                self._allowed.clear()
            self._allowed[text] = mask
        return self._allowed[text]
