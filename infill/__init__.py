"""Syntax-aware infilling: which span to fill at a cursor, with which context, and what to return.

Pure functions over tree-sitter trees; imports neither torch nor lsprotocol. The model is reached
only through a `Filler`.

- `Filler = Callable[[str, str, int, int, bool], tuple[str, float]]`:
  `fill(prefix, suffix, canvas, max_canvas, single_line) -> (middle, confidence in [0, 1])`;
  with `single_line` only the text before the first newline is used, so the engine may stop there.
- `Document(text, language)`: one document's text and its trees, one per chunk of consecutive
  top-level nodes (~12 KB); `.apply_edit(start, end, new_text)` re-parses only the chunk(s) the edit
  touches (offsets are str indices, i.e. code points); `.text`, `.data` (UTF-8), `.language`,
  `.tree_at(byte)` (the tree of the chunk holding that byte), `.trees` (all, in order; None / () for
  plain text). A tree's nodes carry document positions, but `Node.text` may be None: slice `.data`.
- `language_for(language_id=None, path=None) -> str | None`: our language name, None if unsupported.
- `complete(doc, offset, fill, *, count_tokens, invoked=False, options=InfillOptions(), others=())
  -> Completion | None`: plan the span at `offset` (`invoked=False` declines inside comments, strings
  and identifiers), build the prompt within `options.context_tokens`, call `fill` once per canvas size
  (`options.candidates`), post-process and return the candidate adding the fewest ERROR/MISSING nodes,
  then the most confident.
- `InfillOptions` (frozen): max_tokens, max_lines, context_tokens, candidates, canvas, min_chars.
- `Completion(start, end, text, kind, confidence)`: replace `doc.text[start:end]` with `text`; start
  and end lie on the cursor's line (end > offset when trailing closers are replaced, start < offset
  when the line's indentation is rewritten); kind is one of "rest_of_line", "line", "lines", "block".
- `infill.refactor`: whole-document refactors, `rewrite` (a selection), `fill_holes` (every marker) and
  `complete_body` (an empty body), returning edits against the text given (`infill.edits.Edit`).
"""

from .document import Document
from .languages import language_for
from .options import InfillOptions
from .pipeline import Completion, Filler, Judge, Proposer, Scorer, Withheld, complete
from .trust import Calibration, Evidence

__all__ = ["Calibration", "Completion", "Document", "Evidence", "Filler", "InfillOptions", "Judge",
           "Proposer", "Scorer", "Withheld", "complete", "language_for"]
