"""Reversals of windowed net polarity (share positive - share negative), thresholds fitted on
training events, and the comparison of a simulated trajectory's reversals with the real one's.

Definition (one rule for detection, fitting and the nulls): a *reversal* is a sustained swing of net
polarity: a level held for `duration` consecutive windows (all of them at most / at least that
level) followed later by a level at least `magnitude` above (direction "up", toward positive) or
below ("down") held as long. The *turning point* is the last window of the first level, taken as
the most extreme held level since the previous turning point. Requiring both levels to be held is
what keeps a one-window spike from counting. A swing that starts at the first scored windows counts:
the warm-up fixes where the trajectory begins, so a sustained move away from it is a change of
opinion. The series is judged on non-overlapping windows of scored responses (see windows.py).

Fitting rule (`fit_reversal_thresholds`): for every candidate duration, the magnitude is the smallest
value on a 0.01 grid at which at most `fp_target` (default 5%) of time-permuted nulls show a
reversal. A null is a training event with its scored responses shuffled in time (`n_perm` per
event), so it keeps the event's mix and sampling noise and loses all dynamics. Among durations, the
one that flags the most real training events wins (ties: the longer duration, more conservative).
Nulls too short to hold two levels of a duration are left out of that duration's rate, and the
magnitude never goes below MIN_MAGNITUDE (0.1).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from mfmdp.core.schema import label_index
from mfmdp.evaluate.windows import group_counts, smooth, window_ids

POSITIVE = label_index("state", "positive")
NEGATIVE = label_index("state", "negative")


@dataclass(frozen=True)
class ReversalThresholds:
    magnitude: float  # net-polarity units (the series lives in [-1, 1])
    duration: int  # windows the swing must be sustained
    source: str = "default"  # "default" (not fitted), or what it was fitted on
    fp_rate: float | None = None  # achieved share of permuted nulls with a reversal
    fp_target: float | None = None
    n_train: int | None = None
    detected_train: int | None = None

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(asdict(self), indent=2))

    @classmethod
    def load(cls, path: str | Path) -> "ReversalThresholds":
        try:
            data = json.loads(Path(path).read_text())
            return cls(**data)
        except (OSError, json.JSONDecodeError, TypeError) as exc:
            raise ValueError(f"{path}: not a reversal-thresholds JSON file ({exc})") from exc


# A swing smaller than this is not called a reversal of opinion however quiet the nulls are (short
# events have few windows, so their nulls rarely show two held levels at all).
MIN_MAGNITUDE = 0.1
# A simulated turning point within this many windows of a real one (same direction) is a hit.
REVERSAL_TOLERANCE = 2
# Used only when no thresholds were fitted; reports say so.
DEFAULT_THRESHOLDS = ReversalThresholds(magnitude=0.3, duration=2, source="default (not fitted)")


@dataclass(frozen=True)
class Reversal:
    window: int  # index of the turning-point window
    direction: str  # "up" | "down"
    swing: float  # the move when it was confirmed (net-polarity units; >= magnitude)


def polarity_series(state_codes: np.ndarray, slots: np.ndarray, window: int = 128) -> tuple[np.ndarray, np.ndarray]:
    """Windowed net polarity (smoothed shares) over the scored `slots`, and each window's centre in
    scored responses after warm-up. Unknown states (-1) are left out of the shares."""
    codes = np.asarray(state_codes)[slots]
    ids = window_ids(len(codes), window)
    n_win = int(ids[-1]) + 1 if len(ids) else 0
    shares = smooth(group_counts(codes, ids, n_win, 3))
    sizes = np.bincount(ids, minlength=n_win)
    starts = np.r_[0, np.cumsum(sizes)[:-1]]
    return shares[:, POSITIVE] - shares[:, NEGATIVE], starts + sizes / 2.0


def _forward_extremes(x: np.ndarray, duration: int) -> tuple[np.ndarray, np.ndarray]:
    """min and max of x[..., i:i+duration] along the last axis (NaN where the run is incomplete)."""
    n = x.shape[-1]
    fmin = np.full(x.shape, np.nan)
    fmax = np.full(x.shape, np.nan)
    if n >= duration:
        view = sliding_window_view(x, duration, axis=-1)
        fmin[..., : n - duration + 1] = view.min(axis=-1)
        fmax[..., : n - duration + 1] = view.max(axis=-1)
    return fmin, fmax


def _backward_extremes(x: np.ndarray, duration: int) -> tuple[np.ndarray, np.ndarray]:
    """min and max of x[..., j-duration+1:j+1] (NaN where the run is incomplete)."""
    fmin, fmax = _forward_extremes(x, duration)
    bmin = np.full(x.shape, np.nan)
    bmax = np.full(x.shape, np.nan)
    bmin[..., duration - 1 :] = fmin[..., : x.shape[-1] - duration + 1]
    bmax[..., duration - 1 :] = fmax[..., : x.shape[-1] - duration + 1]
    return bmin, bmax


def critical_magnitude(x: np.ndarray, duration: int) -> np.ndarray:
    """Per row of x: the largest magnitude at which the series shows a reversal, i.e. the biggest gap
    between a level held for `duration` windows and a later one held as long. -inf when too short."""
    if duration < 1:
        raise ValueError(f"duration must be >= 1 window, got {duration}")
    x = np.atleast_2d(np.asarray(x, dtype=np.float64))
    if x.shape[-1] < 2:
        return np.full(x.shape[0], -np.inf)
    fmin, fmax = _forward_extremes(x, duration)
    bmin, bmax = _backward_extremes(x, duration)
    lowest = np.minimum.accumulate(np.where(np.isnan(bmax), np.inf, bmax), axis=-1)[..., :-1]
    highest = np.maximum.accumulate(np.where(np.isnan(bmin), -np.inf, bmin), axis=-1)[..., :-1]
    with np.errstate(invalid="ignore"):
        up = fmin[..., 1:] - lowest
        down = highest - fmax[..., 1:]
    best = np.fmax(np.where(np.isfinite(up), up, -np.inf), np.where(np.isfinite(down), down, -np.inf))
    return best.max(axis=-1)


def detect_reversals(series: np.ndarray, thresholds: ReversalThresholds = DEFAULT_THRESHOLDS) -> list[Reversal]:
    """All reversals of one series, in time order (turning points alternate in direction)."""
    x = np.asarray(series, dtype=np.float64)
    if x.ndim != 1:
        raise ValueError(f"detect_reversals takes one 1-D series, got shape {x.shape}")
    if np.isnan(x).any():
        raise ValueError("polarity series contains NaN")
    m, d = thresholds.magnitude - 1e-12, thresholds.duration
    fmin, fmax = _forward_extremes(x, d)
    bmin, bmax = _backward_extremes(x, d)
    out: list[Reversal] = []
    direction = 0
    lo: int | None = None  # lowest held level (its last window) since the last turning point
    hi: int | None = None  # highest held level
    start = 0

    def best(values: np.ndarray, a: int, b: int, pick) -> int | None:
        idx = [j for j in range(a, b) if np.isfinite(values[j])]
        return pick(idx, key=lambda j: (values[j], j)) if idx else None

    for i in range(1, len(x)):
        j = i - 1
        if j >= start and np.isfinite(bmax[j]):
            if lo is None or bmax[j] <= bmax[lo]:  # ties move the level later: the swing starts there
                lo = j
            if hi is None or bmin[j] >= bmin[hi]:
                hi = j
        if np.isnan(fmin[i]):
            break
        up = direction <= 0 and lo is not None and fmin[i] - bmax[lo] >= m
        down = direction >= 0 and hi is not None and bmin[hi] - fmax[i] >= m
        if up and down:  # possible only before the first swing: the later level starts it
            up, down = lo > hi, hi > lo
        if up:
            out.append(Reversal(lo, "up", float(fmin[i] - bmax[lo])))
            direction, start = 1, lo + 1
            hi = best(bmin, start, i, lambda idx, key: max(idx, key=key))
        elif down:
            out.append(Reversal(hi, "down", float(bmin[hi] - fmax[i])))
            direction, start = -1, hi + 1
            lo = best(bmax, start, i, lambda idx, key: min(idx, key=lambda j: (bmax[j], -j)))
    return out


def _polarity_rows(codes: np.ndarray, window: int) -> np.ndarray:
    """Net polarity series for each row of a [R, m] matrix of state codes (rows share windows)."""
    rows, m = codes.shape
    ids = window_ids(m, window)
    n_win = int(ids[-1]) + 1
    known = codes >= 0
    flat = ((np.arange(rows)[:, None] * n_win + ids[None, :]) * 3 + codes.clip(0))[known]
    counts = np.bincount(flat, minlength=rows * n_win * 3).reshape(rows, n_win, 3)
    shares = smooth(counts)
    return shares[..., POSITIVE] - shares[..., NEGATIVE]


def null_series(state_codes: np.ndarray, window: int = 128, n_perm: int = 200, seed: int | np.random.Generator = 0) -> np.ndarray:
    """[n_perm, W] polarity series of time-permuted copies of one event's scored state codes: the
    responses are shuffled, so only the event's overall mix and sampling noise remain."""
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    codes = np.asarray(state_codes, dtype=np.int64)
    perms = rng.permuted(np.broadcast_to(codes, (n_perm, len(codes))).copy(), axis=1)
    return _polarity_rows(perms, window)


def _null_critical(train_codes: Sequence[np.ndarray], window: int, duration: int, n_perm: int,
                   rng: np.random.Generator) -> np.ndarray:
    out = [critical_magnitude(null_series(c, window, n_perm, rng), duration)
           for c in train_codes if len(c) >= 2 * window]
    return np.concatenate(out) if out else np.zeros(0)


def null_false_positive_rate(state_codes: Sequence[np.ndarray], thresholds: ReversalThresholds,
                             window: int = 128, n_perm: int = 200, seed: int = 0) -> float:
    """Share of time-permuted copies of the events (scored state codes, responses shuffled) in which
    a reversal is detected. NaN when no event has two windows."""
    crit = _null_critical(state_codes, window, thresholds.duration, n_perm, np.random.default_rng(seed))
    if len(crit) == 0:
        return float("nan")
    return float(np.mean(crit >= thresholds.magnitude - 1e-12))


def fit_reversal_thresholds(train_codes: Sequence[np.ndarray], window: int = 128, fp_target: float = 0.05,
                            durations: Sequence[int] = (1, 2, 3), n_perm: int = 200, seed: int = 0,
                            min_magnitude: float = MIN_MAGNITUDE,
                            source: str = "training events") -> ReversalThresholds:
    """Thresholds from training events by the rule in the module docstring. `train_codes`: per event,
    the state codes of its scored slots in time order (-1 unknown)."""
    usable = [np.asarray(c) for c in train_codes if len(c) >= 2 * window]
    if not usable:
        raise ValueError(f"fit_reversal_thresholds needs at least one event with >= {2 * window} scored responses")
    if not 0 < fp_target < 1:
        raise ValueError(f"fp_target must be in (0, 1), got {fp_target}")
    real = [polarity_series(c, np.arange(len(c)), window)[0] for c in usable]
    best: ReversalThresholds | None = None
    for d in durations:
        crit = _null_critical(usable, window, d, n_perm, np.random.default_rng([seed, d]))
        crit = crit[np.isfinite(crit)]  # events too short for two held levels say nothing about d
        if len(crit) == 0:
            continue
        # smallest 0.01-grid magnitude >= min_magnitude with P(null critical >= m) <= fp_target
        m = max(min_magnitude, math.ceil(float(np.quantile(crit, 1 - fp_target)) * 100 - 1e-9) / 100)
        while np.mean(crit >= m - 1e-12) > fp_target:
            m = round(m + 0.01, 2)
        fp = float(np.mean(crit >= m - 1e-12))
        detected = int(sum(critical_magnitude(s, d)[0] >= m - 1e-12 for s in real))
        cand = ReversalThresholds(m, int(d), source, fp, fp_target, len(usable), detected)
        if best is None or (detected, d) >= (best.detected_train, best.duration):
            best = cand
    if best is None:
        raise ValueError(f"no training event is long enough for durations {tuple(durations)} "
                         f"(needs {2 * min(durations)} windows of {window})")
    return best


def compare_reversals(real: np.ndarray, sim: np.ndarray, centres: np.ndarray,
                      thresholds: ReversalThresholds = DEFAULT_THRESHOLDS,
                      tolerance: int = REVERSAL_TOLERANCE) -> dict:
    """Does the simulation reverse like the real trajectory? For the first real reversal: whether the
    simulation has one in the same direction, and the timing error (responses) to the nearest such.
    Scored so that noise cannot win: `hit` (the real series reverses) when a simulated turning point
    lies within `tolerance` windows of a real one in the same direction; `false_alarm` (the real
    series does not reverse) when the simulation reverses at all. Each is None on the other kind of event."""
    real = np.asarray(real, dtype=np.float64)
    sim = np.asarray(sim, dtype=np.float64)
    if real.shape != sim.shape:
        raise ValueError(f"real and simulated polarity series differ in length: {real.shape} vs {sim.shape}")
    r_rev = detect_reversals(real, thresholds)
    s_rev = detect_reversals(sim, thresholds)
    out = {"real_reversals": len(r_rev), "sim_reversals": len(s_rev), "real_direction": None,
           "real_at_response": float("nan"), "same_direction": None, "timing_error_responses": float("nan"),
           "hit": None, "false_alarm": None}
    if not r_rev:
        out["false_alarm"] = bool(s_rev)
        return out
    out["hit"] = any(r.direction == s.direction and abs(r.window - s.window) <= tolerance
                     for r in r_rev for s in s_rev)
    first = r_rev[0]
    out["real_direction"] = first.direction
    out["real_at_response"] = float(centres[first.window])
    same = [r for r in s_rev if r.direction == first.direction]
    out["same_direction"] = bool(same)
    if same:
        out["timing_error_responses"] = float(min(abs(centres[r.window] - centres[first.window]) for r in same))
    return out
