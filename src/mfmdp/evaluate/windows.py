"""Which slots are scored, how they are cut into windows, and smoothed label distributions per window.

Scoring never sees warm-up slots (replayed for every method) or signal slots (replayed verbatim).
Windows are consecutive runs of `window` *scored* responses; a final partial window shorter than
half a window is merged into the previous one (so every scored response counts and no window is a
handful of responses whose mix is noise); a partial window of at least half a window stands alone;
a horizon shorter than one window is a single window.

What-if scenario plots use sliding windows instead (`windowed_states`, `band`): overlapping windows
of a fixed number of the crowd's responses, for curves along the whole event.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mfmdp.core.schema import STATES, Labels
from mfmdp.data.stepping import Steps

SMOOTHING = 0.5  # add-1/2 (Jeffreys) smoothing of counts before any divergence


def scored_mask(n: int, is_signal: np.ndarray | None, warmup_slots: int) -> np.ndarray:
    """bool [n]: slots that are scored (after warm-up, not signals)."""
    if warmup_slots < 0:
        raise ValueError(f"warmup_slots must be >= 0, got {warmup_slots}")
    mask = np.ones(n, dtype=bool)
    mask[: min(warmup_slots, n)] = False
    if is_signal is not None:
        is_signal = np.asarray(is_signal, dtype=bool)
        if is_signal.shape != (n,):
            raise ValueError(f"is_signal has shape {is_signal.shape}, expected ({n},)")
        mask &= ~is_signal
    return mask


@dataclass(frozen=True)
class Horizon:
    """The scored slots of one setting, in slot order, and where they fall."""

    name: str
    slots: np.ndarray  # int64 [m]: slot indices (into the event's table) that are scored
    first_step: int
    last_step: int

    @property
    def responses(self) -> int:
        return int(len(self.slots))

    @property
    def steps(self) -> int:
        return 0 if len(self.slots) == 0 else self.last_step - self.first_step + 1


def horizon(name: str, scored: np.ndarray, step_of: np.ndarray, limit: int | None) -> Horizon:
    """The first `limit` scored slots (all of them when `limit` is None)."""
    slots = np.flatnonzero(scored).astype(np.int64)
    if limit is not None:
        slots = slots[:limit]
    if len(slots) == 0:
        return Horizon(name, slots, 0, -1)
    return Horizon(name, slots, int(step_of[slots[0]]), int(step_of[slots[-1]]))


def window_ids(m: int, window: int) -> np.ndarray:
    """int64 [m]: window index of each of m scored responses (see module doc for the partial rule)."""
    if window < 1:
        raise ValueError(f"window must be >= 1 response, got {window}")
    ids = np.arange(m, dtype=np.int64) // window
    n_full, rest = divmod(m, window)
    if n_full >= 1 and 0 < rest < (window + 1) // 2:
        ids[ids == n_full] = n_full - 1  # merge a short tail into the last full window
    return ids


def group_counts(codes: np.ndarray, groups: np.ndarray, n_groups: int, n_labels: int) -> np.ndarray:
    """float64 [n_groups, n_labels] label counts per group; codes < 0 (unknown) are ignored."""
    codes = np.asarray(codes)
    known = codes >= 0
    if np.any(codes[known] >= n_labels):
        raise ValueError(f"label code {int(codes.max())} out of range for {n_labels} labels")
    flat = groups[known] * n_labels + codes[known].astype(np.int64)
    return np.bincount(flat, minlength=n_groups * n_labels).reshape(n_groups, n_labels).astype(np.float64)


def smooth(counts: np.ndarray, alpha: float = SMOOTHING) -> np.ndarray:
    """Add-alpha smoothing, rows normalised to distributions (a zero row becomes uniform)."""
    counts = np.asarray(counts, dtype=np.float64) + alpha
    total = counts.sum(axis=-1, keepdims=True)
    k = counts.shape[-1]
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(total > 0, counts / np.where(total > 0, total, 1.0), 1.0 / k)
    return out


def step_groups(slots: np.ndarray, step_of: np.ndarray) -> tuple[np.ndarray, int]:
    """Group index per scored slot by its step (steps without scored slots vanish)."""
    steps = step_of[slots]
    uniq, inv = np.unique(steps, return_inverse=True)
    return inv.astype(np.int64), len(uniq)


def steps_from_column(step: np.ndarray) -> np.ndarray:
    """Step bounds [T+1] from a per-slot step column (non-decreasing)."""
    step = np.asarray(step)
    if len(step) and np.any(np.diff(step) < 0):
        raise ValueError("step column must be non-decreasing in slot order")
    change = np.flatnonzero(np.diff(step)) + 1
    return np.r_[0, change, len(step)].astype(np.int64)


def check_steps(steps: Steps, n: int, what: str) -> None:
    if int(steps.bounds[-1]) != n:
        raise ValueError(f"{what}: steps cover {int(steps.bounds[-1])} slots but labels have {n}")


# --- a what-if scenario's sliding windows (mfmdp.evaluate.whatif, plots.scenario_plot) -----------
SEED_BAND = (10, 90)  # percentiles of a scenario's band over seeds


def windowed_states(codes: np.ndarray, agent: np.ndarray, window: int, stride: int) -> tuple[np.ndarray, np.ndarray]:
    """(window centres as slot indices [W], state shares [W, S]) over the agents' slots with known
    states; windows of `window` agent slots every `stride`.

    Unlike `window_ids` (consecutive windows that partition the scored responses, short tail merged),
    these windows slide and overlap; each is the difference of cumulative `group_counts` (one group
    per known agent slot), so a window's shares are its counts over its `window` responses."""
    idx = np.flatnonzero(agent & (codes >= 0))
    S = len(STATES)
    if len(idx) == 0:
        return np.zeros(0), np.zeros((0, S))
    window = min(window, len(idx))
    starts = np.arange(0, len(idx) - window + 1, max(1, stride))
    per_slot = group_counts(codes[idx], np.arange(len(idx)), len(idx), S)  # [m, S] one-hot
    csum = np.r_[np.zeros((1, S)), np.cumsum(per_slot, axis=0)]
    shares = (csum[starts + window] - csum[starts]) / window
    centres = idx[starts + window // 2]
    return centres, shares


def band(runs: dict[int, Labels], agent: np.ndarray, window: int, stride: int) -> dict:
    """Mean and 10-90 % band over seeds of the windowed shares and net polarity (positive - negative)."""
    series = [windowed_states(lab.codes["state"], agent, window, stride) for lab in runs.values()]
    centres = series[0][0]
    shares = np.stack([s for _, s in series])  # [seeds, W, S]
    net = shares[..., 0] - shares[..., 2]
    lo, hi = SEED_BAND
    return {
        "centres": centres,
        "shares_mean": shares.mean(0), "shares_lo": np.percentile(shares, lo, 0), "shares_hi": np.percentile(shares, hi, 0),
        "net_mean": net.mean(0), "net_lo": np.percentile(net, lo, 0), "net_hi": np.percentile(net, hi, 0),
        "net_per_seed": net,
    }
