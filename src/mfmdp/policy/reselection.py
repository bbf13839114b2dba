"""Inference-time reselection: pick one of J candidate state mixes by K-step rollouts of f_psi.

No ground truth exists at inference, so each candidate is scored against f_psi's own forecast: the
reference trajectory is the rollout that feeds the forecast m^_t itself as step t's realised mix,
and V_j = sum_k gamma^(k-1) KL(reference_{t+k} || rollout_j_{t+k}). One rollout call covers the
reference and all J candidates (J+1 rows per session row). j ~ softmax(-beta V). J = 1 is the
"w/o Sampling" ablation: no rollout at all.
"""

from __future__ import annotations

import logging

import numpy as np

from mfmdp.policy.costs import candidate_weights, discounted_kl
from mfmdp.transition.api import TransitionSession

log = logging.getLogger(__name__)
_warned = False


def candidate_costs(
    session: TransitionSession,
    mixes: np.ndarray,
    r_prev: np.ndarray,
    k: int,
    gamma: float,
    m_hat: np.ndarray | None = None,
) -> np.ndarray:
    """V [J] (or [B, J] for a batched session with mixes [B, J, S]).

    `m_hat` [S] / [B, S] is the forecast of the step the candidates realise; without it the mean
    candidate mix stands in for it (a warning is logged once)."""
    global _warned
    mixes = np.asarray(mixes, dtype=np.float64)
    single = mixes.ndim == 2
    if single:
        mixes = mixes[None]
    bsz, J, S = mixes.shape
    if bsz != session.batch:
        raise ValueError(f"reselection: mixes for {bsz} session rows, the session has batch {session.batch}")
    if m_hat is None:
        if not _warned:
            log.warning("reselection without the forecast m^_t: scoring against the mean candidate mix")
            _warned = True
        ref = mixes.mean(axis=1)
    else:
        ref = np.asarray(m_hat, dtype=np.float64).reshape(bsz, S)
    rows = np.concatenate([ref[:, None, :], mixes], axis=1).reshape(bsz * (J + 1), S)
    r = np.asarray(r_prev, dtype=np.float32).reshape(bsz, -1)
    r_rows = np.repeat(r, J + 1, axis=0)
    traj = np.asarray(session.rollout(rows, r_rows, k)).reshape(bsz, J + 1, k, S)
    v = discounted_kl(traj[:, :1], traj[:, 1:], gamma)  # [B, J]
    return v[0] if single else v


def standardised(v: np.ndarray) -> np.ndarray:
    """(V - mean) / std along the last axis; zeros where all candidates cost the same."""
    v = np.asarray(v, dtype=np.float64)
    spread = v.std(axis=-1, keepdims=True)
    return np.where(spread > 1e-12, (v - v.mean(axis=-1, keepdims=True)) / np.maximum(spread, 1e-12), 0.0)


def select_candidate(
    session: TransitionSession,
    mixes: np.ndarray,
    r_prev: np.ndarray,
    k: int,
    beta: float,
    gamma: float,
    rng: np.random.Generator,
    m_hat: np.ndarray | None = None,
    scale: str = "raw",
) -> tuple[int, np.ndarray]:
    """(chosen j, V [J]) for one session row; j ~ softmax(-beta V), or with `scale` "standardised"
    softmax(-beta z), z = (V - mean V) / std V: scale-free, so one beta means the same on any
    dataset (V spreads differ by orders of magnitude between events and datasets)."""
    mixes = np.asarray(mixes, dtype=np.float64)
    if mixes.ndim != 2:
        raise ValueError(f"select_candidate takes mixes [J, S], got shape {mixes.shape}")
    if len(mixes) == 1:
        return 0, np.zeros(1)
    v = candidate_costs(session, mixes, r_prev, k, gamma, m_hat)
    w = candidate_weights(standardised(v) if scale == "standardised" else v, beta)
    j = int(rng.choice(len(w), p=w))
    return j, v
