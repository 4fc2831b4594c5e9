"""DiffusionGemma's tokenizer and special ids. It has no mask token: the canvas starts as uniform noise."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from engine.tokenizer import Tokenizer, first_id, read_json


@dataclass(frozen=True)
class GemmaSpecial:
    eos: tuple[int, ...]  # any of these ends the text (generation_config.json lists several)
    pad: int | None  # what follows the end in a finished canvas
    bos: int | None

    @property
    def stops(self) -> frozenset[int]:
        return frozenset(self.eos) | (frozenset() if self.pad is None else {self.pad})


def _ids(value) -> tuple[int, ...]:
    if value is None:
        return ()
    return tuple(value) if isinstance(value, list) else (value,)


class GemmaTokenizer(Tokenizer):
    """tokenizer.json through `tokenizers`; ids from generation_config.json, then config.json's
    text_config."""

    def _resolve(self, config: dict, side: dict, mask_names: tuple[str, ...], folder: Path) -> GemmaSpecial:
        gen = read_json(folder / "generation_config.json")
        text = config.get("text_config") or {}

        def pick(key: str):
            for source in (gen, text, config):
                if source.get(key) is not None:
                    return source[key]
            return self._named(side, key.removesuffix("_id"))

        return GemmaSpecial(_ids(pick("eos_token_id")), first_id(pick("pad_token_id")),
                            first_id(pick("bos_token_id")))

