"""Annotator scoring: hand-computed accuracy / macro-F1, sklearn agreement, reference-file parsing."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.metrics import confusion_matrix, f1_score

from mfmdp.core.schema import DIMENSIONS, Labels, label_index
from mfmdp.annotate.score import (annotate_gold, expected_calibration_error, score_calibration, read_gold,
                                  score_annotator, score_dimension, score_labels, scores_json)

STATES = DIMENSIONS["state"]


def test_hand_computed_accuracy_and_macro_f1():
    # gold: pos pos neu neg ; pred: pos neu neu pos
    gold = np.array([0, 0, 1, 2])
    pred = np.array([0, 1, 1, 0])
    s = score_dimension(gold, pred, STATES)
    assert s.n == 4
    assert s.accuracy == pytest.approx(0.5)
    # positive: tp1 fp1 fn1 -> 0.5 ; neutral: tp1 fp1 fn0 -> 2/3 ; negative: tp0 fn1 -> 0
    assert s.macro_f1 == pytest.approx((0.5 + 2 / 3 + 0.0) / 3)
    assert s.confusion[:, :3].tolist() == [[1, 1, 0], [0, 1, 0], [1, 0, 0]]


def test_expected_calibration_error_hand_computed():
    # Always 0.9 sure, right half the time: one bin, |0.5 - 0.9| = 0.4.
    assert expected_calibration_error(np.full(10, 0.9), np.arange(10) % 2 == 0) == pytest.approx(0.4)
    # Two bins, each exactly calibrated: 0.25 right 1 of 4, 0.75 right 3 of 4.
    conf = np.array([0.25] * 4 + [0.75] * 4)
    correct = np.array([1, 0, 0, 0, 1, 1, 1, 0], bool)
    assert expected_calibration_error(conf, correct) == pytest.approx(0.0)
    # Weighted by bin size: 2 items at 1.0 all wrong (gap 1), 6 at 0.5 half right (gap 0) -> 2/8.
    conf = np.array([1.0, 1.0] + [0.5] * 6)
    correct = np.array([0, 0, 1, 0, 1, 0, 1, 0], bool)
    assert expected_calibration_error(conf, correct) == pytest.approx(0.25)
    with pytest.raises(ValueError, match="confidences"):
        expected_calibration_error(np.ones(3), np.ones(2, bool))


def test_calibration_skips_unlabelled_items():
    gold = np.array([0, 1, -1, 2])
    pred = np.array([0, 0, 1, 2])
    c = score_calibration(np.array([0.8, 0.6, 0.99, 0.7]), gold, pred)
    assert c.n == 3 and c.accuracy == pytest.approx(2 / 3)
    assert c.mean_confidence == pytest.approx(0.7)
    assert score_calibration(np.ones(2), np.array([-1, -1]), np.array([0, 1])) is None


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_agrees_with_sklearn(seed):
    rng = np.random.default_rng(seed)
    gold = rng.integers(0, 6, 200)
    pred = np.where(rng.random(200) < 0.6, gold, rng.integers(0, 6, 200))
    s = score_dimension(gold, pred, DIMENSIONS["sentiment"])
    assert s.macro_f1 == pytest.approx(f1_score(gold, pred, average="macro"))
    assert s.accuracy == pytest.approx(np.mean(gold == pred))
    assert np.array_equal(s.confusion[:, :6], confusion_matrix(gold, pred, labels=range(6)))


def test_labels_absent_from_both_sides_do_not_count():
    # Only "share" occurs: macro-F1 is over the labels present, as in sklearn.
    s = score_dimension(np.array([0, 0]), np.array([0, 0]), DIMENSIONS["behavior"])
    assert s.macro_f1 == 1.0 and s.accuracy == 1.0


def test_unknown_references_are_skipped_and_unknown_predictions_are_wrong():
    gold = np.array([-1, 0, 1, 1])
    pred = np.array([0, 0, -1, 1])
    s = score_dimension(gold, pred, STATES)
    assert s.n == 3
    assert s.accuracy == pytest.approx(2 / 3)
    assert s.confusion[1, -1] == 1  # reference neutral, predicted unknown
    # positive F1 = 1 ; neutral: tp1 fn1 -> 2/3
    assert s.macro_f1 == pytest.approx((1.0 + 2 / 3) / 2)


def test_empty_dimension_is_nan():
    s = score_dimension(np.array([-1, -1]), np.array([0, 1]), STATES)
    assert s.n == 0 and np.isnan(s.accuracy)


def test_length_mismatch_is_an_error():
    with pytest.raises(ValueError, match="predictions"):
        score_dimension(np.array([0, 1]), np.array([0]), STATES)


def _write_gold(path, rows):
    path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n", encoding="utf-8")
    return path


def gold_row(text, topic="某话题", behavior="share", **labels):
    base = {
        "state": "neutral", "sentiment": "calm", "stance": "neutral", "belief": "believe", "rumor": "spread",
        "subjectivity": "objective", "intent": "promotion",
    }
    base.update(labels)
    return {"source": "test", "event": "e1", "response_id": text, "topic": topic, "text": text,
            "behavior": behavior, "confidence": "high", **base}


def test_read_gold_parses_labels_and_behavior(tmp_path):
    p = _write_gold(tmp_path / "g.jsonl", [gold_row("转发微博"), gold_row("加油", behavior="comment", state="positive")])
    g = read_gold(p)
    assert len(g) == 2
    assert g.texts == ["转发微博", "加油"]
    assert g.behaviors.tolist() == [0, 1]
    assert g.labels.codes["state"].tolist() == [label_index("state", "neutral"), label_index("state", "positive")]


@pytest.mark.parametrize(
    "line,match",
    [
        ("{not json", r"g\.jsonl, record line 2: malformed JSON"),
        (json.dumps({"topic": "t"}), r"g\.jsonl:2: field 'text'"),
        (json.dumps(gold_row("x", state="happy")), r"g\.jsonl:2: field 'state'.*happy"),
        ("[1, 2]", r"g\.jsonl, record line 2: expected a JSON object"),
    ],
)
def test_read_gold_errors_name_file_line_and_field(tmp_path, line, match):
    p = tmp_path / "g.jsonl"
    p.write_text(json.dumps(gold_row("ok")) + "\n" + line + "\n", encoding="utf-8")
    with pytest.raises(ValueError, match=match):
        read_gold(p)


def test_read_gold_empty_and_missing_files(tmp_path):
    (tmp_path / "e.jsonl").write_text("\n", encoding="utf-8")
    with pytest.raises(ValueError, match="no items"):
        read_gold(tmp_path / "e.jsonl")
    with pytest.raises(FileNotFoundError):
        read_gold(tmp_path / "absent.jsonl")


class EchoAnnotator:
    """Answers 'positive' for texts containing 好, else 'neutral'; records each call's topic."""

    name = "echo"

    def __init__(self):
        self.topics = []

    def annotate(self, texts, topic, behaviors=None):
        self.topics.append(topic)
        n = len(texts)
        codes = {d: np.zeros(n, np.int8) for d in DIMENSIONS}
        codes["state"] = np.array([0 if "好" in t else 1 for t in texts], np.int8)
        codes["behavior"] = np.asarray(behaviors, np.int8) if behaviors is not None else np.full(n, -1, np.int8)
        return Labels(codes)


def test_score_annotator_groups_by_topic_and_passes_behaviors(tmp_path):
    rows = [gold_row("好", topic="A", state="positive", behavior="comment"), gold_row("嗯", topic="B"),
            gold_row("好啊", topic="A", state="negative")]
    g = read_gold(_write_gold(tmp_path / "g.jsonl", rows))
    ann = EchoAnnotator()
    scores, pred = score_annotator(ann, g)
    assert sorted(ann.topics) == ["A", "B"]
    assert pred.codes["state"].tolist() == [0, 1, 0]
    assert scores["state"].accuracy == pytest.approx(2 / 3)
    assert scores["behavior"].accuracy == 1.0
    doc = scores_json("echo", scores)
    assert set(doc) == {"annotator", "dimensions"}
    assert set(doc["dimensions"]) == set(DIMENSIONS)
    assert set(doc["dimensions"]["state"]) == {"n", "accuracy", "macro_f1"}
    json.dumps(doc)  # serialisable


def test_annotate_gold_rejects_wrong_length(tmp_path):
    g = read_gold(_write_gold(tmp_path / "g.jsonl", [gold_row("a"), gold_row("b")]))

    class Short(EchoAnnotator):
        def annotate(self, texts, topic, behaviors=None):
            return super().annotate(texts[:1], topic, None)

    with pytest.raises(ValueError, match="returned 1 labels for 2"):
        annotate_gold(Short(), g)


def test_score_labels_checks_sizes():
    with pytest.raises(ValueError):
        score_labels(Labels.empty(2), Labels.empty(3))
