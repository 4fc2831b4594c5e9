"""complete() reads a chunked document as it reads one parsed whole: on error-free code the prompt
and the completion are the same at every cursor, chunk boundaries included."""

import random
import re

import pytest

from infill import Document, InfillOptions, complete
from tests.test_document import SMALL, source


def count_tokens(text: str) -> int:
    return len(re.findall(r"\w+|[^\w\s]", text))


def run(doc: Document, offset: int):
    prompts = []

    def fill(prefix, suffix, canvas, max_canvas, single_line):
        prompts.append((prefix, suffix))
        return "total = compute(a, b)\n    return total + 1)\n", 0.5

    options = InfillOptions(candidates=2, context_tokens=300)
    return complete(doc, offset, fill, count_tokens=count_tokens, invoked=True, options=options), prompts


@pytest.mark.parametrize("lang", ["go", "python", "c"])
def test_chunked_document_completes_like_a_whole_one(lang):
    text = source(lang)
    whole, chunked = Document(text, lang, chunk_bytes=10**9), Document(text, lang, chunk_bytes=SMALL)
    assert len(whole.trees) == 1 and len(chunked.trees) >= 6
    starts = [chunked.char_offset(s) for s, _ in chunked.spans[1:]]
    rng = random.Random(4)
    cursors = starts + [s - 1 for s in starts] + [rng.randrange(len(text) + 1) for _ in range(40)]
    for offset in cursors:
        assert run(chunked, offset) == run(whole, offset), offset
