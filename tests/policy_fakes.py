"""Test doubles for the policy tests: a tiny differentiable transition model implementing the
TransitionModel / TransitionSession protocols, and tiny PolicyEvents built without real data."""

from __future__ import annotations

import numpy as np
import torch

from mfmdp.policy.dataset import PolicyEvent
from mfmdp.transition.api import Schedule
from mfmdp.transition.features import signal_dim

S = 3


class FakeTransition(torch.nn.Module):
    """m^_{t+1} = softmax(A log(m_t + 0.05) + r W_r + sched_{t+1} W_s + b): small, smooth, frozen."""

    n_states = S

    def __init__(self, dim: int, sched_dim: int, seed: int = 0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.synopsis_dim = dim
        self.A = torch.nn.Parameter(2.0 * torch.eye(S) + 0.3 * torch.randn(S, S, generator=g))
        self.W_r = torch.nn.Parameter(0.3 * torch.randn(dim, S, generator=g))
        self.W_s = torch.nn.Parameter(0.3 * torch.randn(sched_dim, S, generator=g))
        self.b = torch.nn.Parameter(0.1 * torch.randn(S, generator=g))

    def next_m(self, m: torch.Tensor, r: torch.Tensor, sched_row: torch.Tensor) -> torch.Tensor:
        logits = torch.log(m + 0.05) @ self.A + r @ self.W_r + sched_row @ self.W_s + self.b
        return torch.softmax(logits, dim=-1)

    def session(self, schedule: Schedule, batch: int = 1) -> "FakeSession":
        return FakeSession(self, schedule, batch)


def sched_rows(schedule: Schedule) -> torch.Tensor:
    return torch.from_numpy(np.concatenate([schedule.profiles, schedule.signals, schedule.time], axis=1))


class FakeSession:
    def __init__(self, model: FakeTransition, schedule: Schedule, batch: int):
        self.model, self.schedule, self.batch, self.t = model, schedule, batch, 0
        self.rows = sched_rows(schedule)
        self.rollout_calls = 0

    def _row(self, t: int) -> torch.Tensor:
        return self.rows[min(t, len(self.rows) - 1)]

    def step(self, m_prev, r_prev):
        with torch.no_grad():
            out = self.model.next_m(torch.as_tensor(m_prev, dtype=torch.float32),
                                    torch.as_tensor(r_prev, dtype=torch.float32), self._row(self.t))
        self.t += 1
        return out.double().numpy()

    def fork(self, copies: int) -> "FakeSession":
        s = FakeSession(self.model, self.schedule, self.batch * copies)
        s.t = self.t
        return s

    def rollout_torch(self, m_first, r_frozen, k: int):
        m = m_first.float()
        r = r_frozen.float()
        out = []
        for i in range(k):
            m = self.model.next_m(m, r, self._row(self.t + i))
            out.append(m)
        return torch.stack(out, dim=1)

    def rollout(self, m_first, r_frozen, k: int):
        self.rollout_calls += 1
        with torch.no_grad():
            return self.rollout_torch(torch.as_tensor(m_first), torch.as_tensor(r_frozen), k).double().numpy()


def tiny_event(seed: int = 0, steps: int = 12, per_step: int = 6, dim: int = 8, drift: float = 0.0,
               event_id: str | None = None) -> PolicyEvent:
    """A PolicyEvent whose agents' states depend on their first profile feature (learnable)."""
    rng = np.random.default_rng(seed)
    T, n = steps, steps * per_step
    profiles = rng.random((n, 10)).astype(np.float32)
    p_pos = np.clip(0.2 + 0.6 * profiles[:, 1] + drift * np.repeat(np.arange(T), per_step) / T, 0, 1)
    states = np.where(rng.random(n) < p_pos, 0, np.where(rng.random(n) < 0.5, 1, 2)).astype(np.int8)
    behaviors = (states == 2).astype(np.int8) ^ (rng.random(n) < 0.2).astype(np.int8)
    bounds = np.arange(0, n + 1, per_step, dtype=np.int64)
    agent_step = np.repeat(np.arange(T), per_step).astype(np.int64)
    m_real = np.stack([np.bincount(states[agent_step == t], minlength=S) / per_step for t in range(T)]).astype(np.float32)
    r = rng.standard_normal((T, dim)).astype(np.float32) * 0.1
    r_prev = np.concatenate([np.zeros((1, dim), np.float32), r[:-1]])
    m_prev = np.concatenate([np.full((1, S), 1 / S, np.float32), m_real[:-1]])
    schedule = Schedule(profiles=rng.random((T, 11)).astype(np.float32),
                        signals=np.zeros((T, signal_dim(dim)), np.float32),
                        time=(np.arange(T, dtype=np.float32)[:, None] / T).repeat(4, axis=1))
    return PolicyEvent(
        event_id=event_id or f"e{seed}", topic="topic", schedule=schedule, bounds=bounds,
        agent_step=agent_step, agent_offsets=bounds.copy(), profiles=profiles, states=states,
        behaviors=behaviors, context=r_prev, r_prev=r_prev, m_prev=m_prev, m_real=m_real,
        m_weight=np.ones(T, np.float32), own_previous=np.full(n, -1, np.int64),
    )
