"""infill/trust.py, infill/names.py and the judged path of infill.complete: candidates from the memory beside
the model's, evidence, a calibrated probability, and silence under the threshold."""

import math

import pytest

import infill
from infill.names import unknown, words
from infill.trust import FEATURES, Calibration, Evidence, features, shape

DOC = ("import os\n\n\ndef area(rect):\n    return rect.width * rect.height\n\n\n"
       "def volume(rect, depth):\n    return \n")
CURSOR = DOC.index("return \n") + len("return ")


def weights(**named) -> Calibration:
    return Calibration(tuple(named.get(f, 0.0) for f in FEATURES))


def test_shape_finds_repetition_open_brackets_and_prose():
    assert shape("self._get(a(a(a(a) + b) + b)", "", "()[]{}")[0] >= 4
    assert shape("foo(bar, [1, 2", ")", "()[]{}")[1] == 1  # "(" is closed by the rest of the line, "[" not
    assert shape("x + y", "", "()[]{}") == (1, 0, False)
    assert shape(">>> add(1, 2)", "", "()[]{}")[2]
    assert shape("Return the sum of the two numbers", "", "()[]{}")[2]


def test_unknown_names_skip_keywords_builtins_bindings_and_known_words():
    seen = words(["def f(items):\n    total = 0\n"])
    assert unknown("total + len(items)", "python", seen, None) == []
    assert unknown("self.is_isositive(n)", "python", seen, None) == ["self", "n"]
    assert unknown("result = helper(items)", "python", seen, lambda w: w == "helper") == []  # binds result
    assert unknown("for k in items:", "python", seen, None) == []
    assert unknown("err := run(ctx)", "go", frozenset({"ctx"}), None) == ["run"]
    assert unknown("if err != nil { return nil }", "go", frozenset({"err"}), None) == []


def test_calibration_is_a_logistic_model_saved_as_json(tmp_path):
    cal = weights(bias=-1.0, memory=2.0)
    e = Evidence(False, True, 0.0, None, 12, 3, 3, 0, 0, 1, 0, 9, False)
    assert cal.probability(e) == pytest.approx(1 / (1 + math.exp(-1.0)))
    assert len(features(e)) == len(FEATURES)
    cal.save(tmp_path / "trust.json")
    assert Calibration.load(tmp_path / "trust.json").weights == cal.weights
    (tmp_path / "old.json").write_text('{"features": ["bias"], "weights": [0.5]}')
    with pytest.raises(ValueError, match="old.json: fitted on other features"):
        Calibration.load(tmp_path / "old.json")


def complete(fill, judge, invoked=False, **opts):
    doc = infill.Document(DOC, "python")
    return infill.complete(doc, CURSOR, fill, count_tokens=len, invoked=invoked,
                           options=infill.InfillOptions(**opts), judge=judge)


def test_without_a_calibration_the_models_answer_is_shown_as_before():
    c = complete(lambda *a: ("rect.depth", 0.4), infill.Judge())
    assert c.text == "rect.depth" and c.probability is None and c.source == "network"


def test_the_memorys_proposal_competes_and_wins_on_evidence():
    proposed = []

    def propose(prefix, suffix, single_line):
        proposed.append((prefix[-7:], single_line))
        return [("rect.width * rect.height * depth", 8, 2, 2)]

    judge = infill.Judge(propose, None, None, weights(bias=-2.0, memory=3.0, network=-1.0))
    c = complete(lambda *a: ("self._get(a(a(a", 0.9), judge)
    assert proposed == [("return ", True)] or proposed[0][0].endswith("return ")
    assert c.text == "rect.width * rect.height * depth" and c.source == "memory"
    assert c.probability == pytest.approx(1 / (1 + math.exp(-1.0)))
    both = complete(lambda *a: ("rect.width * rect.height * depth", 0.9), judge)
    assert both.source == "both"


def test_under_the_threshold_the_answer_is_withheld_unless_asked():
    judge = infill.Judge(None, lambda p, s, texts: [-0.5] * len(texts), None, weights(bias=0.0))
    shown = complete(lambda *a: ("rect.width * depth", 0.9), judge, min_probability=0.4)
    assert shown.probability == pytest.approx(0.5)
    withheld = complete(lambda *a: ("rect.width * depth", 0.9), judge, min_probability=0.6)
    assert isinstance(withheld, infill.Withheld) and withheld.probability == pytest.approx(0.5)
    assert withheld.reason == "threshold"
    asked = complete(lambda *a: ("rect.width * depth", 0.9), judge, invoked=True, min_probability=0.6,
                     min_probability_invoked=0.3)
    assert isinstance(asked, infill.Completion)


def test_evidence_counts_invented_names_and_scores_every_candidate():
    scored = []

    def score(prefix, suffix, middles):
        scored.append(list(middles))
        return [-1.0] * len(middles)

    seen = {}

    class Spy(Calibration):
        def probability(self, e):
            seen[e.network, e.memory] = e
            return 0.9

    judge = infill.Judge(lambda *a: [("rect.width * depth", 8, 1, 1)], score, lambda w: False,
                         Spy(tuple(0.0 for _ in FEATURES)))
    complete(lambda *a: ("frobnicate(rect)", 0.7), judge)
    assert sorted(scored[0]) == ["frobnicate(rect)", "rect.width * depth"]  # one batch
    assert seen[True, False].unknown_names == 1 and seen[False, True].unknown_names == 0
    assert seen[False, True].match == 8 and seen[True, False].score == -1.0


def test_a_candidate_that_adds_a_syntax_error_is_never_shown():
    judge = infill.Judge(lambda *a: [("rect.width * depth", 8, 3, 3)], None, None,
                         weights(bias=1.0, network=3.0))
    c = complete(lambda *a: ("foo(rect, [", 0.9), judge)  # likelier, but it leaves brackets open
    assert c.text == "rect.width * depth" and c.source == "memory"
    broken_only = infill.Judge(None, None, None, weights(bias=5.0))
    withheld = complete(lambda *a: ("foo(rect, [", 0.9), broken_only)
    assert isinstance(withheld, infill.Withheld) and withheld.reason == "syntax"
    allowed = complete(lambda *a: ("foo(rect, [", 0.9), broken_only, syntax_errors=True)
    assert allowed.text == "foo(rect, ["
