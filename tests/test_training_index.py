import gzip
import json
import lzma

from engine.corpus_index import INDEX_FILE
from engine.memory import SEP
from engine.training import index


def corpus(folder, docs):
    folder.mkdir(parents=True)
    with gzip.open(folder / "corpus.jsonl.gz", "wt", encoding="utf-8") as f:
        for d in docs:
            f.write(json.dumps(d) + "\n")
    return folder


def test_the_index_holds_train_text_within_budget_and_creates_its_folder(tmp_path):
    data = corpus(tmp_path / "data", [
        {"name": "a.py", "split": "train", "text": "def a():\n    return 1\n"},
        {"name": "b.py", "split": "val", "text": "def b():\n    return 2\n"},
        {"name": "c.go", "split": "train", "language": "go", "text": "package c\n"},
        {"name": "d.c", "split": "train", "language": "c", "text": "int d;\n"},  # not a permissive licence
        {"name": "e.py", "split": "train", "text": "x = 1\n" * 100},  # over the budget below
    ])
    out = tmp_path / "new" / "model"  # does not exist yet
    report = index.write(data, out, {"python": 40, "go": 40})
    text = lzma.decompress((out / INDEX_FILE).read_bytes())
    assert sorted(text.split(SEP)) == [b"def a():\n    return 1\n", b"package c\n"]
    assert report["languages"] == {"python": {"files": 1, "bytes": 22}, "go": {"files": 1, "bytes": 10}}
