"""Distances between label distributions (rows = windows or steps) and slot-level F1.

All distribution functions take p (real) and q (simulated) as [..., K] arrays of distributions that
are already smoothed (no zeros), and return one value per row. Natural logarithms (nats) throughout.
"""

from __future__ import annotations

import math

import numpy as np
from dtaidistance import dtw, dtw_ndim

from mfmdp.core.schema import DIMENSIONS

# Ordinal positions for Wasserstein-1 on the state: negative < neutral < positive, unit spacing.
# (STATES is ordered positive, neutral, negative, so the position of code c is 2 - c.)
ORDINAL_POSITIONS: dict[str, np.ndarray] = {"state": np.array([2.0, 1.0, 0.0])}


def _check_pair(p: np.ndarray, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    p = np.asarray(p, dtype=np.float64)
    q = np.asarray(q, dtype=np.float64)
    if p.shape != q.shape:
        raise ValueError(f"real and simulated distributions differ in shape: {p.shape} vs {q.shape}")
    return p, q


def kl(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """KL(p || q) per row; infinite where q has a zero that p does not (smooth first)."""
    p, q = _check_pair(p, q)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p > 0, p * (np.log(p) - np.log(q)), 0.0)
    return terms.sum(axis=-1)


def js(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Jensen-Shannon *divergence* per row, in nats, in [0, ln 2] (= scipy's jensenshannon ** 2)."""
    p, q = _check_pair(p, q)
    m = 0.5 * (p + q)
    return 0.5 * kl(p, m) + 0.5 * kl(q, m)


def total_variation(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    p, q = _check_pair(p, q)
    return 0.5 * np.abs(p - q).sum(axis=-1)


def wasserstein(p: np.ndarray, q: np.ndarray, dimension: str) -> np.ndarray:
    """Wasserstein-1 per row: the ordinal line for ordered dimensions (state), else the 0/1 metric,
    under which W1 equals total variation."""
    p, q = _check_pair(p, q)
    pos = ORDINAL_POSITIONS.get(dimension)
    if pos is None:
        return total_variation(p, q)
    order = np.argsort(pos)
    gaps = np.diff(pos[order])
    cdf_gap = np.abs(np.cumsum(p[..., order] - q[..., order], axis=-1))[..., :-1]
    return (cdf_gap * gaps).sum(axis=-1)


def dtw_distance(real: np.ndarray, sim: np.ndarray, band: float = 0.1) -> float:
    """DTW between two [W, K] distribution series, Sakoe-Chiba band of `band` x length, normalised
    by path length: sqrt(sum of squared Euclidean distances along the best path / path length),
    i.e. the root-mean-square distance between matched windows (dtaidistance's multivariate cost)."""
    real, sim = _check_pair(real, sim)
    if real.ndim != 2 or len(real) == 0:
        raise ValueError(f"DTW needs non-empty [windows, labels] series, got shape {real.shape}")
    n = len(real)
    if n == 1:
        return float(np.sqrt(((real[0] - sim[0]) ** 2).sum()))
    window = max(1, math.ceil(band * n)) + 1  # dtaidistance: shifts < window; window=1 is diagonal
    d, paths = dtw_ndim.warping_paths(np.ascontiguousarray(real), np.ascontiguousarray(sim),
                                      window=window, use_c=True)
    path_len = len(dtw.best_path(paths))
    return float(np.sqrt(d * d / path_len))


def f1_scores(y_true: np.ndarray, y_pred: np.ndarray, n_labels: int) -> tuple[float, float]:
    """(macro-F1, micro-F1) over slots where both labels are known. Macro averages over labels
    present in either array (scikit-learn's default); micro-F1 equals accuracy for single labels."""
    y_true = np.asarray(y_true)
    y_pred = np.asarray(y_pred)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"real and simulated labels differ in length: {y_true.shape} vs {y_pred.shape}")
    known = (y_true >= 0) & (y_pred >= 0)
    t = y_true[known].astype(np.int64)
    s = y_pred[known].astype(np.int64)
    if len(t) == 0:
        return float("nan"), float("nan")
    cm = np.bincount(t * n_labels + s, minlength=n_labels * n_labels).reshape(n_labels, n_labels)
    tp = np.diag(cm).astype(np.float64)
    support = cm.sum(axis=1)
    predicted = cm.sum(axis=0)
    present = (support + predicted) > 0
    denom = support + predicted
    f1 = np.where(denom > 0, 2 * tp / np.where(denom > 0, denom, 1), 0.0)
    return float(f1[present].mean()), float(tp.sum() / len(t))


def f1_references(y_true: np.ndarray, n_labels: int) -> dict[str, float]:
    """Slot F1 of two label-free predictors, to read slot F1 against: always the real majority label,
    and random labels drawn from the real label mix (expected value: macro = 1 / labels present,
    micro = sum of squared shares)."""
    t = np.asarray(y_true)
    t = t[t >= 0].astype(np.int64)
    if len(t) == 0:
        nan = float("nan")
        return {"macro_f1_majority": nan, "micro_f1_majority": nan,
                "macro_f1_random": nan, "micro_f1_random": nan}
    counts = np.bincount(t, minlength=n_labels)
    majority = np.full(len(t), int(np.argmax(counts)))
    macro_major, micro_major = f1_scores(t, majority, n_labels)
    shares = counts / counts.sum()
    return {"macro_f1_majority": macro_major, "micro_f1_majority": micro_major,
            "macro_f1_random": float(1.0 / np.count_nonzero(counts)),
            "micro_f1_random": float((shares**2).sum())}


def n_labels(dimension: str) -> int:
    try:
        return len(DIMENSIONS[dimension])
    except KeyError:
        raise ValueError(f"unknown dimension {dimension!r}; known: {', '.join(DIMENSIONS)}") from None
