"""Identifiers a candidate uses that the user's code defines nowhere: a likely invented name.

A name is known when it is a keyword of the language (its grammar's anonymous node kinds), a builtin
(grammars/languages.toml `builtins`, and Python's own), a word of the document or of the other open documents,
or a word the caller's `known` finds (the repository memory: the workspace's files). Names the candidate binds
(an assignment target, the names a definition header or a loop introduces) and attributes after a dot are not
checked: the candidate may define them, and an attribute's owner is not known here. Words inside string
literals and comments are text, not names.
"""

import builtins
import keyword
import re
from collections.abc import Callable, Iterable
from functools import cache

from .languages import spec, ts_language

WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# a name at these places is used, not bound: not after a dot, not before an assignment or a declaration
USE = re.compile(r"(?<![\w.$])([A-Za-z_][A-Za-z0-9_]*)\b(?!\s*(?::=|=(?!=)|[-+*/%|&^]=))")
# a line that introduces names of its own: everything on it may be new
STRING = re.compile(r"""(?:[rbfuRBFU]{0,2})("|'|`)(?:\\.|(?!\1).)*\1""")  # a one-line literal, quotes kept
DEFINES = re.compile(r"^\s*(?:async\s+)?(?:def|class|func|fn|function|struct|enum|impl|trait|interface|type|"
                     r"let|const|var|for|with|import|from|package|use|mod|except|catch|lambda|pub)\b")


@cache
def keywords(language: str) -> frozenset[str]:
    """The grammar's keywords: its anonymous node kinds that look like identifiers."""
    lang = ts_language(language)
    kinds = (lang.node_kind_for_id(i) for i in range(lang.node_kind_count) if not lang.node_kind_is_named(i))
    words = {k for k in kinds if k and WORD.fullmatch(k)}
    if language == "python":
        words |= set(keyword.kwlist) | set(keyword.softkwlist) | set(dir(builtins))
    return frozenset(words | set(spec(language).builtins))


def words(texts: Iterable[str]) -> frozenset[str]:
    return frozenset(w for t in texts for w in WORD.findall(t))


def unknown(text: str, language: str, seen: frozenset[str], known: Callable[[str], bool] | None) -> list[str]:
    """The names `text` uses that are neither keywords, builtins, in `seen` (the document's and open
    documents' words) nor `known` to the caller, in order, once each."""
    out: list[str] = []
    common, comment = keywords(language), spec(language).line_comment
    for line in text.split("\n"):
        line = STRING.sub('""', line)
        line = line.split(comment, 1)[0] if comment else line
        if DEFINES.match(line):
            continue
        for name in USE.findall(line):
            if name in out or name in common or name in seen or (known is not None and known(name)):
                continue
            out.append(name)
    return out
