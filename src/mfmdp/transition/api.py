"""What the rest of MF-MDP needs from a state-transition model f_psi (the Event Transformer).

x_t = (r_{t-1}, m_{t-1}, p_t, c_t, time_t) -> m^_t over STATES. (r, m) are realised online by the
simulator (real during warm-up, simulated after); (p, c, time) come from a leak-free Schedule.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np


@dataclass
class Schedule:
    """Per-step inputs known in advance without leaking the real actions (time and profile only)."""

    profiles: np.ndarray  # float32 [T, P]: pooled profile features of the agents active at step t
    signals: np.ndarray  # float32 [T, Dc]: encoded exogenous signals at step t (zeros when none)
    time: np.ndarray  # float32 [T, F]: relative time features of step t (e.g. log elapsed seconds)

    def __len__(self) -> int:
        return len(self.time)


@runtime_checkable
class TransitionSession(Protocol):
    """Incremental (cached, windowed) stepping over one event, batched over `batch` copies."""

    t: int  # the step the next `step` call forecasts
    batch: int

    def step(self, m_prev: np.ndarray, r_prev: np.ndarray) -> np.ndarray:
        """Feed realised m_{t-1} [batch,S] and r_{t-1} [batch,D]; return m^_t [batch,S]; t += 1."""
        ...

    def fork(self, copies: int) -> "TransitionSession":
        """A new session with batch*copies rows (row-major: each row repeated `copies` times)."""
        ...

    def rollout(self, m_first: np.ndarray, r_frozen: np.ndarray, k: int) -> np.ndarray:
        """Without changing this session: feed m_first [B,S] as the realised histogram of the last
        forecast step, then self-feed for k steps with r frozen; returns m^ [B,k,S] for the next k
        steps (schedule taken from t on; steps past the end repeat the last schedule row).
        B may be batch or batch*J (rows of each batch row repeated J times)."""
        ...

    def rollout_torch(self, m_first, r_frozen, k: int):
        """Same as `rollout` on torch tensors, differentiable in m_first (f_psi stays frozen)."""
        ...


@runtime_checkable
class TransitionModel(Protocol):
    n_states: int
    synopsis_dim: int

    def session(self, schedule: Schedule, batch: int = 1) -> TransitionSession: ...


@runtime_checkable
class TeacherForcedPrefix(Protocol):
    """f_psi run over an event's real inputs up to some step, kept for rollouts from any step of it."""

    forecasts: np.ndarray  # float32 [T', S]: m^_t for t < T', the real (m_{t-1}, r_{t-1}) fed at t

    def rollout_torch(self, starts: np.ndarray, mixes, J: int, k: int):
        """starts [B] (steps whose realised mix is a candidate), mixes [B*J, S] torch (rows of start b
        at b*J .. b*J+J-1) -> forecasts [B*J, k, S] for steps t+1..t+k, r frozen at the real r_t,
        differentiable in mixes; the same numbers as a session stepped to t+1 and `rollout_torch`."""
        ...


@runtime_checkable
class PrefixModel(Protocol):
    """A TransitionModel that can also teacher-force a whole prefix at once (the Event Transformer)."""

    def teacher_forced(self, schedule: Schedule, m_prev: np.ndarray, r_prev: np.ndarray,
                       upto: int | None = None) -> TeacherForcedPrefix: ...
