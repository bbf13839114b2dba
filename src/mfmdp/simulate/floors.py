"""Floors the paper lacks: what a simulator must beat to add anything.

Every floor emits sampled labels for the simulated slots (n_t per step), like the methods, so that
all are scored by the same code: persistence (the warm-up mix carried forward), transition-only
(f_psi's forecast fed back on itself, no agents), regression (ridge from warm-up mix, warm-up share
rate and log elapsed responses to the window mix, fitted on training events). The oracle (labels
resampled from the real per-window mix) is added by the evaluator, which owns the real labels.
Each floor is one object behind the `Floor` protocol; a MethodSpec holds it. With
`simulation.state_draws: systematic` the floors realise their states with the same low-variance draws
as the agent methods, so that no method wins by sampling noise alone.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
import pandas as pd
from sklearn.linear_model import Ridge

from mfmdp.core.schema import DIMENSIONS, STATES, Labels
from mfmdp.policy.base import sample_categorical, systematic_uniforms
from mfmdp.simulate.replay import Replay

WINDOW = 128


def scored_slots(replay: Replay) -> np.ndarray:
    """Slots that are simulated and scored: after warm-up and not signals."""
    idx = np.arange(replay.warmup_slots, replay.n_slots)
    return idx[~replay.is_signal[idx]]


def _revealed_copy(replay: Replay) -> Labels:
    labels = Labels.empty(replay.n_slots)
    for d in DIMENSIONS:
        labels.codes[d][replay.revealed] = replay.revealed_labels.codes[d]
    return labels


def warmup_mix(replay: Replay, dimension: str, alpha: float = 0.5) -> np.ndarray:
    """Smoothed label mix of the warm-up's non-signal slots (m_0 for the state dimension)."""
    warm = np.arange(replay.warmup_slots)
    warm = warm[~replay.is_signal[warm]]
    codes = replay.revealed_labels.codes[dimension][replay.revealed_at(warm)]
    k = len(DIMENSIONS[dimension])
    counts = np.bincount(codes[codes >= 0], minlength=k).astype(float) + alpha
    return counts / counts.sum()


def _sample(rng: np.random.Generator, probs: np.ndarray, n: int, systematic: bool = False) -> np.ndarray:
    """n draws from one distribution: independent, or systematic (jointly stratified, each marginal
    still `probs`: the low-variance draws of policy/base.py)."""
    if systematic:
        return sample_categorical(np.tile(probs, (n, 1)), rng, systematic_uniforms(n, rng)).astype(np.int8)
    return rng.choice(len(probs), size=n, p=probs).astype(np.int8)


def _state_blocks(replay: Replay, slots: np.ndarray) -> list[np.ndarray]:
    """The scored slots grouped by step (what one step's systematic draw covers)."""
    step = np.searchsorted(replay.bounds, slots, side="right") - 1
    return np.split(slots, np.flatnonzero(np.diff(step)) + 1) if len(slots) else []


def _fill(labels: Labels, dimension: str, slots: np.ndarray, probs: np.ndarray, rng: np.random.Generator,
          replay: Replay, systematic: bool) -> None:
    """Draw `slots` of one dimension from `probs`; states drawn systematically step by step when asked
    (as the agent methods draw them), everything else independently."""
    if systematic and dimension == "state":
        for block in _state_blocks(replay, slots):
            labels.codes[dimension][block] = _sample(rng, probs, len(block), systematic=True)
    else:
        labels.codes[dimension][slots] = _sample(rng, probs, len(slots))


def persistence(replay: Replay, seed: int, systematic: bool = False) -> Labels:
    rng = np.random.default_rng(seed)
    labels = _revealed_copy(replay)
    slots = scored_slots(replay)
    for d in DIMENSIONS:
        _fill(labels, d, slots, warmup_mix(replay, d), rng, replay, systematic)
    return labels


def transition_only(replay: Replay, transition, seed: int, systematic: bool = False) -> tuple[Labels, np.ndarray]:
    """States from f_psi's own forecast (real histograms during warm-up, its forecast fed back
    after, r frozen at the end of warm-up); other dimensions as persistence."""
    from mfmdp.meanfield.synopsis import EmbeddingSynopsis
    from mfmdp.meanfield.histogram import normalise, step_counts

    rng = np.random.default_rng(seed)
    labels = persistence(replay, seed + 7919)
    session = transition.session(replay.schedule, batch=1)
    S = len(STATES)
    dim = replay.revealed_embeddings.shape[1]
    synopsis = EmbeddingSynopsis(dim)
    synopsis.reset()
    m_prev, r_prev = np.full(S, 1.0 / S), np.zeros(dim, np.float32)
    forecasts = np.zeros((replay.n_steps, S))
    for t in range(replay.n_steps):
        lo, hi = int(replay.bounds[t]), int(replay.bounds[t + 1])
        m_hat = session.step(m_prev[None], r_prev[None])[0]
        forecasts[t] = m_hat
        if t < replay.warmup_steps:
            slots = np.arange(lo, hi)
            pos = replay.revealed_at(slots)
            codes = replay.revealed_labels.codes["state"][pos]
            mask = ~replay.is_signal[lo:hi]
            m_prev = normalise(step_counts(codes, np.array([0, hi - lo]), S, mask=mask))[0]
            r_prev = np.asarray(synopsis.update(replay.revealed_embeddings[pos], replay.revealed_texts_at(pos)), np.float32)
        else:
            agents = lo + np.flatnonzero(~replay.is_signal[lo:hi])
            labels.codes["state"][agents] = _sample(rng, m_hat / m_hat.sum(), len(agents), systematic)
            m_prev = m_hat
    return labels, forecasts


def regression_features(replay: Replay, dimension: str, window_starts: np.ndarray) -> np.ndarray:
    """Per window: warm-up mix of the dimension, warm-up share rate, log1p elapsed scored responses."""
    mix = warmup_mix(replay, dimension)
    share = warmup_mix(replay, "behavior")[0]
    rows = [np.r_[mix, share, np.log1p(s)] for s in window_starts]
    return np.asarray(rows, dtype=float).reshape(len(window_starts), len(mix) + 2)


class RegressionFloor:
    """Ridge regression per dimension, fitted on training events' real labels."""

    def __init__(self, alpha: float = 1.0, window: int = WINDOW) -> None:
        self.alpha, self.window = alpha, window
        self.models: dict[str, Ridge] = {}

    def fit(self, replays: list[Replay], real: list[Labels]) -> "RegressionFloor":
        for d, values in DIMENSIONS.items():
            xs, ys = [], []
            for rep, lab in zip(replays, real):
                slots = scored_slots(rep)
                starts = np.arange(0, len(slots), self.window)
                if not len(starts):
                    continue
                xs.append(regression_features(rep, d, starts))
                for s in starts:
                    codes = lab.codes[d][slots[s : s + self.window]]
                    counts = np.bincount(codes[codes >= 0], minlength=len(values)).astype(float) + 0.5
                    ys.append(counts / counts.sum())
            if xs:
                self.models[d] = Ridge(alpha=self.alpha).fit(np.concatenate(xs), np.asarray(ys))
        return self

    def sample(self, replay: Replay, seed: int, systematic: bool = False) -> Labels:
        rng = np.random.default_rng(seed)
        labels = _revealed_copy(replay)
        slots = scored_slots(replay)
        starts = np.arange(0, len(slots), self.window)
        for d in DIMENSIONS:
            model = self.models.get(d)
            feats = regression_features(replay, d, starts)
            preds = model.predict(feats) if model is not None else np.tile(warmup_mix(replay, d), (len(starts), 1))
            for s, p in zip(starts, preds):
                p = np.clip(p, 1e-3, None)
                _fill(labels, d, slots[s : s + self.window], p / p.sum(), rng, replay, systematic)
        return labels


# --- the floors as methods -----------------------------------------------------------------------
class Floor(Protocol):
    """What a floor method is: labels for one event and seed, from the replay and the trained models."""

    needs_transition: bool  # reads f_psi (models.transitions[True])
    simulated: bool  # False: the evaluator adds it from the real labels (the oracle)
    reads_signals: bool  # can react to an injected signal (a scenario needs that)

    def simulate(self, replay: Replay, models, seed: int,
                 systematic: bool = False) -> tuple[Labels, pd.DataFrame | None]: ...


class Persistence:
    needs_transition, simulated, reads_signals = False, True, False

    def simulate(self, replay: Replay, models, seed: int, systematic: bool = False) -> tuple[Labels, None]:
        return persistence(replay, seed, systematic), None


class TransitionOnly:
    needs_transition, simulated, reads_signals = True, True, True

    def simulate(self, replay: Replay, models, seed: int, systematic: bool = False) -> tuple[Labels, pd.DataFrame]:
        labels, forecasts = transition_only(replay, models.transitions[True], seed, systematic)
        return labels, pd.DataFrame({f"m_hat_{k}": forecasts[:, i] for i, k in enumerate(STATES)})


class Regression:
    """Reads the RegressionFloor fitted on the training events (models.regression)."""

    needs_transition, simulated, reads_signals = False, True, False

    def simulate(self, replay: Replay, models, seed: int, systematic: bool = False) -> tuple[Labels, None]:
        return models.regression.sample(replay, seed, systematic), None


class Oracle:
    needs_transition, simulated, reads_signals = False, False, False

    def simulate(self, replay: Replay, models, seed: int, systematic: bool = False):
        raise ValueError("the oracle floor is computed by the evaluator from the real labels, not simulated")
