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
from mfmdp.annotate.schema import DIMENSIONS, Labels, label_index


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


def scores_json(annotator_name: str, scores: dict[str, DimensionScore]) -> dict:
    """The machine-readable form: {"annotator", "dimensions": {dim: {"n", "accuracy", "macro_f1"}}}."""
    return {"annotator": annotator_name, "dimensions": {d: s.as_dict() for d, s in scores.items()}}
