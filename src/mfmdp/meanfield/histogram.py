"""Per-step label histograms (the macro state m_t) and their smoothing.

`codes` are label codes of one schema dimension, one per slot in time order; `bounds` are the step
boundaries of `Steps.bounds` (step t holds slots bounds[t]:bounds[t+1]). Unknown labels (code < 0)
and masked-out slots (e.g. signals or warm-up, depending on the caller) do not count.
"""

from __future__ import annotations

import numpy as np


def _check_bounds(bounds: np.ndarray, n: int) -> np.ndarray:
    bounds = np.asarray(bounds, dtype=np.int64)
    if bounds.ndim != 1 or len(bounds) < 1:
        raise ValueError(f"bounds must be a 1-D array of T+1 step boundaries, got shape {bounds.shape}")
    if bounds[0] != 0 or bounds[-1] != n:
        raise ValueError(f"bounds must start at 0 and end at n={n}, got {bounds[0]}..{bounds[-1]}")
    if np.any(np.diff(bounds) < 0):
        raise ValueError("bounds must be non-decreasing")
    return bounds


def step_counts(
    codes: np.ndarray,
    bounds: np.ndarray,
    n_labels: int,
    mask: np.ndarray | None = None,
) -> np.ndarray:
    """float64 [T, n_labels]: how many slots of each step carry each label.

    Codes < 0 (unknown) and slots where `mask` is False are ignored; codes >= n_labels are an error.
    """
    codes = np.asarray(codes)
    n = len(codes)
    bounds = _check_bounds(bounds, n)
    if n_labels < 1:
        raise ValueError(f"n_labels must be >= 1, got {n_labels}")
    if n and codes.max(initial=-1) >= n_labels:
        raise ValueError(f"label code {int(codes.max())} out of range for n_labels={n_labels}")
    T = len(bounds) - 1
    step = np.repeat(np.arange(T, dtype=np.int64), np.diff(bounds))
    keep = codes >= 0
    if mask is not None:
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != codes.shape:
            raise ValueError(f"mask shape {mask.shape} does not match codes shape {codes.shape}")
        keep &= mask
    flat = step[keep] * n_labels + codes[keep].astype(np.int64)
    return np.bincount(flat, minlength=T * n_labels).astype(np.float64).reshape(T, n_labels)


def normalise(counts: np.ndarray, alpha: float = 0.0) -> np.ndarray:
    """Rows of `counts` (+ alpha each) divided by their sums; a row summing to zero becomes uniform.

    Works on [T, K] or a single [K] row.
    """
    if alpha < 0:
        raise ValueError(f"alpha must be >= 0, got {alpha}")
    c = np.asarray(counts, dtype=np.float64) + alpha
    if np.any(c < 0):
        raise ValueError("counts must be non-negative")
    total = c.sum(axis=-1, keepdims=True)
    k = c.shape[-1]
    with np.errstate(invalid="ignore", divide="ignore"):
        p = np.where(total > 0, c / np.where(total > 0, total, 1.0), 1.0 / k)
    return p


def window_counts(
    codes: np.ndarray,
    n_labels: int,
    window: int = 128,
    mask: np.ndarray | None = None,
) -> np.ndarray:
    """float64 [W, n_labels]: counts over consecutive windows of `window` slots (the last may be short)."""
    n = len(codes)
    bounds = np.unique(np.r_[np.arange(0, n, window), n]).astype(np.int64)
    if n == 0:
        bounds = np.array([0], dtype=np.int64)
    return step_counts(codes, bounds, n_labels, mask)


def net_polarity(state_codes: np.ndarray, window: int = 128, mask: np.ndarray | None = None) -> np.ndarray:
    """float64 [W]: per window, share positive minus share negative among known states (0 if none).

    State codes follow `DIMENSIONS["state"]` = (positive, neutral, negative).
    """
    c = window_counts(state_codes, 3, window, mask)
    total = c.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, (c[:, 0] - c[:, 2]) / np.where(total > 0, total, 1.0), 0.0)
