import lzma

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.corpus_index import INDEX_FILE, CorpusIndex, load_index
from engine.memory import SEP, MemoryConfig

CFG = MemoryConfig()
TEXTS = [b"def add(a, b):\n    return a + b\n", b"def sub(a, b):\n    return a - b\n", b"x = add(1, 2)\n"]


def brute_count(data: bytes, pattern: bytes) -> int:
    return sum(data.startswith(pattern, i) for i in range(len(data)))


def test_suffix_array_sorts_every_suffix():
    ix = CorpusIndex(SEP.join(TEXTS))
    suffixes = [ix.data[int(s):] for s in ix.sa]
    assert suffixes == sorted(suffixes)
    assert len(ix) == len(SEP.join(TEXTS)) + 2  # a separator at both ends


@settings(max_examples=60, deadline=None)
@given(st.lists(st.text(alphabet="ab\n", max_size=30).map(str.encode), min_size=1, max_size=4),
       st.text(alphabet="ab\n", min_size=1, max_size=5).map(str.encode))
def test_count_equals_brute_force(texts, pattern):
    ix = CorpusIndex(SEP.join(texts))
    assert ix.count(pattern) == brute_count(ix.data, pattern)


def test_match_left_is_the_longest_suffix_that_something_follows():
    ix = CorpusIndex(SEP.join(TEXTS))
    m = ix.match_left(b"def mul(a, b):\n    return", CFG)
    assert m.length == len(b"(a, b):\n    return")
    assert sorted(m.following()) == [b" a + b\n", b" a - b\n"]
    # a context whose longer match only ends documents backs off to a shorter one that goes on
    m = ix.match_left(b"zz 2)\n", CFG)
    assert m.length < len(b" 2)\n") and all(f for f in m.following())


def test_match_right_votes_for_what_precedes():
    ix = CorpusIndex(SEP.join(TEXTS))
    m = ix.match_right(b"(1, 2)\nfoo", CFG)
    assert m.length == len(b"(1, 2)\n")
    assert [p[-3:] for p in m.preceding()] == [b"add"]


def test_occurrences_are_capped_and_spread():
    ix = CorpusIndex(SEP.join([b"k = %d\n" % i for i in range(100)]))
    m = ix.match_left(b"k =", MemoryConfig(max_occurrences=10))
    assert m.count == 10
    assert len({f[:3] for f in m.following()}) > 5  # not just the first ten in sorted order


def test_load_builds_then_reuses_the_cached_array(tmp_path):
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / INDEX_FILE).write_bytes(lzma.compress(SEP.join(TEXTS)))
    cache = tmp_path / "cache"
    first = CorpusIndex.load(tmp_path / "model" / INDEX_FILE, cache)
    cached = list(cache.glob("*.npy"))
    assert len(cached) == 1
    np.save(cached[0], first.sa[::-1].copy())  # a wrong array of the right length would be read back
    second = CorpusIndex.load(tmp_path / "model" / INDEX_FILE, cache)
    assert list(second.sa) == list(first.sa[::-1])


def test_unreadable_index_names_the_file(tmp_path):
    (tmp_path / INDEX_FILE).write_bytes(b"not xz")
    with pytest.raises(ValueError, match=INDEX_FILE):
        load_index(tmp_path)
    assert load_index(tmp_path / "missing") is None


def test_corrupt_cached_array_is_rebuilt(tmp_path):
    (tmp_path / INDEX_FILE).write_bytes(lzma.compress(SEP.join(TEXTS)))
    first = CorpusIndex.load(tmp_path / INDEX_FILE, tmp_path)
    for f in tmp_path.glob("*.npy"):
        f.write_bytes(b"junk")
    again = CorpusIndex.load(tmp_path / INDEX_FILE, tmp_path)
    assert list(again.sa) == list(first.sa)
