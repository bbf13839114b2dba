"""Score an annotator against reference labels (the gold_dev.jsonl format).

A reference file is JSONL, one response per line: source, event, response_id, topic, text, one label
name per schema dimension (behavior included: it comes from the data and is passed to the
annotator, never guessed), and optionally confidence (high|low). Per dimension we report n (items
with a reference label), accuracy and macro-F1 (unweighted mean of per-label F1 over the labels
that occur in the reference or the predictions, as sklearn's f1_score(average="macro")), and a
confusion matrix (rows: reference, columns: prediction, in the schema's label order; a prediction
of "unknown" counts as wrong and appears in a last column).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mfmdp.annotate.base import Annotator
from mfmdp.data.jsonl import iter_jsonl
from mfmdp.core.schema import DIMENSIONS, Labels, label_index


@dataclass
class GoldSet:
    """Reference items: texts, topics and data behaviors, with their labels in schema codes."""

    path: str
    texts: list[str]
    topics: list[str]
    labels: Labels
    ids: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.texts)

    @property
    def behaviors(self) -> np.ndarray:
        return self.labels.codes["behavior"]


def read_gold(path: str | Path) -> GoldSet:
    """Parse a reference file; a bad line raises an error naming file, line and field."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"reference file {path} does not exist")
    texts, topics, ids = [], [], []
    codes: dict[str, list[int]] = {d: [] for d in DIMENSIONS}
    for lineno, row in iter_jsonl(path):
        where = f"{path}:{lineno}"
        text = row.get("text")
        if not isinstance(text, str):
            raise ValueError(f"{where}: field 'text' is missing or not a string")
        texts.append(text)
        topics.append(str(row.get("topic") or ""))
        ids.append(str(row.get("response_id", lineno)))
        for d in DIMENSIONS:
            value = row.get(d)
            if value is None or value == "":
                codes[d].append(-1)
                continue
            try:
                codes[d].append(label_index(d, str(value)))
            except ValueError as err:
                raise ValueError(f"{where}: field {d!r}: {err}") from None
    if not texts:
        raise ValueError(f"reference file {path} has no items")
    labels = Labels({d: np.array(v, dtype=np.int8) for d, v in codes.items()})
    return GoldSet(str(path), texts, topics, labels, ids)


@dataclass
class DimensionScore:
    n: int
    accuracy: float
    macro_f1: float
    confusion: np.ndarray  # int [n_labels, n_labels + 1]; last column: predicted unknown
    labels: tuple[str, ...]

    def as_dict(self) -> dict:
        return {"n": self.n, "accuracy": self.accuracy, "macro_f1": self.macro_f1}


def score_dimension(gold: np.ndarray, pred: np.ndarray, labels: tuple[str, ...]) -> DimensionScore:
    """Accuracy, macro-F1 and confusion over the items with a reference label (gold >= 0)."""
    gold = np.asarray(gold, dtype=np.int64)
    pred = np.asarray(pred, dtype=np.int64)
    if gold.shape != pred.shape:
        raise ValueError(f"{len(gold)} reference labels but {len(pred)} predictions")
    keep = gold >= 0
    g, p = gold[keep], pred[keep]
    k = len(labels)
    confusion = np.zeros((k, k + 1), dtype=np.int64)
    if len(g) == 0:
        return DimensionScore(0, float("nan"), float("nan"), confusion, labels)
    np.add.at(confusion, (g, np.where(p >= 0, p, k)), 1)
    accuracy = float(np.mean(g == p))
    present = sorted(set(g.tolist()) | set(p[p >= 0].tolist()))
    f1s = []
    for c in present:
        tp = float(np.sum((g == c) & (p == c)))
        fp = float(np.sum((g != c) & (p == c)))
        fn = float(np.sum((g == c) & (p != c)))
        denom = 2 * tp + fp + fn
        f1s.append(2 * tp / denom if denom else 0.0)
    return DimensionScore(int(len(g)), accuracy, float(np.mean(f1s)), confusion, labels)


def expected_calibration_error(confidence: np.ndarray, correct: np.ndarray, n_bins: int = 15) -> float:
    """ECE: the item-weighted mean |accuracy - mean confidence| over equal-width confidence bins.

    0 means "a confidence of 0.8 is right 80% of the time"; it is the figure that says whether a
    confidence can be used as a probability (thresholds, weighting, abstaining).
    """
    confidence = np.asarray(confidence, dtype=np.float64)
    correct = np.asarray(correct, dtype=np.float64)
    if confidence.shape != correct.shape:
        raise ValueError(f"{len(confidence)} confidences but {len(correct)} outcomes")
    if len(confidence) == 0:
        return float("nan")
    bins = np.minimum((confidence * n_bins).astype(np.int64), n_bins - 1)
    total = 0.0
    for b in np.unique(bins):
        sel = bins == b
        total += sel.sum() * abs(correct[sel].mean() - confidence[sel].mean())
    return float(total / len(confidence))


@dataclass
class CalibrationScore:
    """How far a confidence is from the rate at which its label is right."""

    n: int
    ece: float
    mean_confidence: float
    accuracy: float

    def as_dict(self) -> dict:
        return {"n": self.n, "ece": self.ece, "mean_confidence": self.mean_confidence, "accuracy": self.accuracy}


def score_calibration(confidence: np.ndarray, gold: np.ndarray, pred: np.ndarray) -> CalibrationScore | None:
    """Calibration of `confidence` (the probability of `pred`) over items with a reference label;
    None when no item has one."""
    confidence = np.asarray(confidence, dtype=np.float64)
    keep = np.asarray(gold) >= 0
    if not keep.any():
        return None
    correct = np.asarray(gold)[keep] == np.asarray(pred)[keep]
    c = confidence[keep]
    return CalibrationScore(int(keep.sum()), expected_calibration_error(c, correct), float(c.mean()),
                            float(correct.mean()))


def score_labels(gold: Labels, pred: Labels, dimensions=tuple(DIMENSIONS)) -> dict[str, DimensionScore]:
    if gold.n != pred.n:
        raise ValueError(f"{gold.n} reference items but {pred.n} predictions")
    return {d: score_dimension(gold.codes[d], pred.codes[d], DIMENSIONS[d]) for d in dimensions}


def annotate_gold(annotator: Annotator, gold: GoldSet) -> Labels:
    """Run `annotator` over the reference texts, one call per topic, behaviors from the data."""
    pred = Labels.empty(len(gold))
    pred.confidence = np.zeros(len(gold), dtype=np.float32)
    by_topic: dict[str, list[int]] = {}
    for i, topic in enumerate(gold.topics):
        by_topic.setdefault(topic, []).append(i)
    for topic, idx in by_topic.items():
        idx_arr = np.array(idx)
        out = annotator.annotate([gold.texts[i] for i in idx], topic, gold.behaviors[idx_arr])
        if out.n != len(idx):
            raise ValueError(f"annotator {annotator.name!r} returned {out.n} labels for {len(idx)} texts")
        for d in DIMENSIONS:
            pred.codes[d][idx_arr] = out.codes[d]
        pred.confidence[idx_arr] = out.confidence
    return pred


def score_annotator(annotator: Annotator, gold: GoldSet) -> tuple[dict[str, DimensionScore], Labels]:
    pred = annotate_gold(annotator, gold)
    return score_labels(gold.labels, pred), pred


def calibration_by_dimension(annotator: Annotator, gold: GoldSet, pred: Labels) -> dict[str, CalibrationScore]:
    """ECE per text dimension from the annotator's probabilities (`predict_proba`, e.g. the distilled
    annotator); without them, of `state` alone from the labels' confidence field, unless that is the
    placeholder 1.0 everywhere (no confidence reported). Dimensions without a probability are left out."""
    predict_proba = getattr(annotator, "predict_proba", None)
    if predict_proba is None:
        if np.all(pred.confidence == 1.0):
            return {}
        state = score_calibration(pred.confidence, gold.labels.codes["state"], pred.codes["state"])
        return {"state": state} if state is not None else {}
    out = {}
    for d, p in predict_proba(gold.texts, gold.topics).items():
        top = p.argmax(1)
        score = score_calibration(p[np.arange(len(top)), top], gold.labels.codes[d], top)
        if score is not None:
            out[d] = score
    return out


def scores_json(annotator_name: str, scores: dict[str, DimensionScore],
                calibration: dict[str, CalibrationScore] | None = None) -> dict:
    """The machine-readable form: {"annotator", "dimensions": {dim: {"n", "accuracy", "macro_f1"}},
    "calibration": {dim: {"n", "ece", "mean_confidence", "accuracy"}}}."""
    doc = {"annotator": annotator_name, "dimensions": {d: s.as_dict() for d, s in scores.items()}}
    if calibration is not None:
        doc["calibration"] = {d: c.as_dict() for d, c in calibration.items()}
    return doc
