"""The language table (grammars/languages.toml) as frozen specs, and tree-sitter grammars by name."""

import importlib
from dataclasses import dataclass
from functools import cache
from pathlib import PurePath

import tomllib
import tree_sitter

from grammars import LANGUAGES_TOML


@dataclass(frozen=True, slots=True)
class LanguageSpec:
    name: str
    grammar: str  # module of the grammar wheel
    entry: str  # its function returning the grammar pointer
    extensions: tuple[str, ...]
    language_ids: tuple[str, ...]
    line_comment: str
    block_comment: tuple[str, str] | None
    indent: str  # default indentation unit
    block_open: str
    block_close: str  # "" = the offside rule: a block ends at a dedent
    closers: str  # characters after the cursor that still count as the end of the line
    brackets: str  # "()[]{}": opening and closing pairs
    identifier_extra: str
    queries: str  # folder under grammars/
    builtins: tuple[str, ...] = ()  # predeclared names besides keywords (infill/names.py)

    @property
    def offside(self) -> bool:
        return not self.block_close

    def is_identifier_char(self, ch: str) -> bool:
        return ch.isalnum() or ch == "_" or (ch != "" and ch in self.identifier_extra)


def _spec(name: str, d: dict) -> LanguageSpec:
    where = f"{LANGUAGES_TOML.name} [{name}]"
    try:
        comment = d.get("block_comment")
        if comment is not None and len(comment) != 2:
            raise ValueError(f"{where}: block_comment must be [open, close]")
        if len(d["brackets"]) % 2:
            raise ValueError(f"{where}: brackets must hold open/close pairs")
        return LanguageSpec(
            name=name,
            grammar=d["grammar"],
            entry=d["entry"],
            extensions=tuple(d["extensions"]),
            language_ids=tuple(d["language_ids"]),
            line_comment=d["line_comment"],
            block_comment=tuple(comment) if comment else None,
            indent=d["indent"],
            block_open=d["block_open"],
            block_close=d["block_close"],
            closers=d["closers"],
            brackets=d["brackets"],
            identifier_extra=d.get("identifier_extra", ""),
            queries=d.get("queries", name),
            builtins=tuple(d.get("builtins", ())),
        )
    except KeyError as e:
        raise ValueError(f"{where}: missing field {e.args[0]!r}") from None


@cache
def languages() -> dict[str, LanguageSpec]:
    with open(LANGUAGES_TOML, "rb") as f:
        table = tomllib.load(f)
    return {name: _spec(name, d) for name, d in table.items()}


def spec(name: str) -> LanguageSpec:
    try:
        return languages()[name]
    except KeyError:
        raise ValueError(f"unsupported language {name!r} (see {LANGUAGES_TOML.name})") from None


@cache
def ts_language(name: str) -> tree_sitter.Language:
    s = spec(name)
    return tree_sitter.Language(getattr(importlib.import_module(s.grammar), s.entry)())


def language_for(language_id: str | None = None, path: str | None = None) -> str | None:
    """Our language name for an LSP languageId or a file path; None when unsupported."""
    table = languages()
    if language_id:
        for s in table.values():
            if language_id in s.language_ids:
                return s.name
    if path:
        ext = PurePath(path).suffix.lstrip(".").lower()
        for s in table.values():
            if ext in s.extensions:
                return s.name
    return None
