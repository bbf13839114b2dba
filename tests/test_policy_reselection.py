"""Inference reselection: candidates scored against f_psi's own forecast, one rollout call."""

from __future__ import annotations

import numpy as np

from mfmdp.policy.reselection import candidate_costs, select_candidate
from mfmdp.transition.features import signal_dim
from policy_fakes import FakeTransition, tiny_event

DIM = 8


def stepped_session(t: int = 3):
    ev = tiny_event(0)
    trans = FakeTransition(DIM, 11 + signal_dim(DIM) + 4)
    s = trans.session(ev.schedule)
    m_hat = None
    for i in range(t + 1):
        m_hat = s.step(ev.m_prev[i][None], ev.r_prev[i][None])[0]
    return s, m_hat, ev.r_prev[t]


def test_prefers_the_candidate_whose_rollout_matches_the_forecast():
    s, m_hat, r = stepped_session()
    mixes = np.stack([np.full(3, 1 / 3), m_hat, m_hat[::-1], np.roll(m_hat, 1)])
    v = candidate_costs(s, mixes, r, k=6, gamma=0.9, m_hat=m_hat)
    assert int(np.argmin(v)) == 1 and v[1] < 1e-9
    assert s.rollout_calls == 1  # reference and all J candidates in one call
    picks = [select_candidate(s, mixes, r, 6, beta=50.0, gamma=0.9, rng=np.random.default_rng(i), m_hat=m_hat)[0]
             for i in range(20)]
    assert picks.count(1) >= 19


def test_sampling_is_seeded_and_j1_skips_rollouts():
    s, m_hat, r = stepped_session()
    mixes = np.stack([m_hat, np.array([0.3, 0.4, 0.3]), np.array([0.5, 0.2, 0.3])])
    a = [select_candidate(s, mixes, r, 4, 1.0, 0.9, np.random.default_rng(9), m_hat=m_hat)[0] for _ in range(3)]
    assert len(set(a)) == 1
    calls = s.rollout_calls
    j, v = select_candidate(s, mixes[:1], r, 4, 1.0, 0.9, np.random.default_rng(0), m_hat=m_hat)
    assert j == 0 and s.rollout_calls == calls
    assert s.t == 4  # rollouts never advance the session


def test_beta_zero_is_uniform():
    s, m_hat, r = stepped_session()
    mixes = np.stack([m_hat, np.array([0.9, 0.05, 0.05])])
    picks = [select_candidate(s, mixes, r, 4, 0.0, 0.9, np.random.default_rng(i), m_hat=m_hat)[0] for i in range(400)]
    assert 150 < sum(picks) < 250
