"""Tree-sitter queries (`<lang>/<purpose>.scm`) and the language table (`languages.toml`) infill reads."""

from pathlib import Path

GRAMMARS_DIR = Path(__file__).parent
LANGUAGES_TOML = GRAMMARS_DIR / "languages.toml"


def query_path(lang: str, purpose: str) -> Path:
    """Path of `grammars/<lang>/<purpose>.scm` (it may not exist)."""
    return GRAMMARS_DIR / lang / f"{purpose}.scm"
