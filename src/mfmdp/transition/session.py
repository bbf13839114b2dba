"""Incremental inference for one event: a KV cache per layer kept as a ring buffer of W steps.

A step writes its keys/values into slot t % W and attends over the buffer (slots whose position is
outside the window are masked), so step 10 and step 2,500 cost the same. The schedule (p, c, time)
is projected once per event. `fork` copies the cache; `rollout` and `rollout_torch` read it without
writing (candidates keep their own keys), so scoring J candidates never disturbs the session.
"""

from __future__ import annotations

import functools

import numpy as np
import torch

from mfmdp.transition import incremental as inc
from mfmdp.transition.api import Schedule
from mfmdp.transition.model import EventTransformer, params, to_numpy


_BLAS = None


def _one_blas_thread(fn):
    """Run `fn` with BLAS limited to one thread: the matrices of a step are tiny, and on a busy
    2-core machine OpenBLAS threads waiting for each other cost 2-5x (measured)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        global _BLAS
        if _BLAS is None:
            from threadpoolctl import ThreadpoolController

            _BLAS = ThreadpoolController()
        with _BLAS.limit(limits=1, user_api="blas"):
            return fn(*args, **kwargs)

    return wrapper


def schedule_matrix(schedule: Schedule) -> np.ndarray:
    """float32 [T, Q]: profiles | signals | time, the layout the model's input projection expects."""
    return np.concatenate([schedule.profiles, schedule.signals, schedule.time], axis=1).astype(np.float32)


def check_schedule(cfg, schedule: Schedule) -> None:
    T = len(schedule)
    if T < 1:
        raise ValueError("schedule has no steps")
    for name, arr, dim in (("profiles", schedule.profiles, cfg.profile_dim),
                           ("signals", schedule.signals, cfg.signal_dim), ("time", schedule.time, cfg.time_dim)):
        if arr.shape != (T, dim):
            hint = f"model encoder {cfg.encoder!r}: build the schedule with the same encoder"
            if name == "signals" and arr.ndim == 2 and arr.shape[1] == 2 * dim:
                # c_t gained a signal memory half (features.signal_dim): older checkpoints read the pulse only
                hint = "the checkpoint predates the signal memory in c_t; retrain it"
            raise ValueError(f"schedule.{name} has shape {arr.shape}, the transition model expects ({T}, {dim}) ({hint})")


class Session:
    """Implements `mfmdp.transition.api.TransitionSession` (see there for the contract)."""

    def __init__(self, p_np: dict, p_torch: dict, sched_proj: np.ndarray, batch: int, t: int,
                 cache_k: list, cache_v: list, pos: np.ndarray, n_states: int, synopsis_dim: int):
        self._p, self._pt, self._sched = p_np, p_torch, sched_proj
        self.batch, self.t = batch, t
        self._k, self._v, self._pos = cache_k, cache_v, pos
        self.n_states, self.synopsis_dim = n_states, synopsis_dim

    @classmethod
    def create(cls, model: EventTransformer, schedule: Schedule, batch: int = 1) -> "Session":
        cfg = model.cfg
        check_schedule(cfg, schedule)
        if batch < 1:
            raise ValueError(f"batch must be >= 1, got {batch}")
        pt = params(model, detach=True)
        p = to_numpy(pt)
        sched_proj = (schedule_matrix(schedule) @ p["w_sched"] + p["b_in"]).astype(np.float32)
        H, W, dh = cfg.n_heads, cfg.window, cfg.d_model // cfg.n_heads
        ks = [np.zeros((batch, H, W, dh), np.float32) for _ in range(cfg.n_layers)]
        vs = [np.zeros((batch, H, W, dh), np.float32) for _ in range(cfg.n_layers)]
        return cls(p, pt, sched_proj, batch, 0, ks, vs, np.full(W, -1, np.int64), cfg.n_states, cfg.synopsis_dim)

    @property
    def n_steps(self) -> int:
        return len(self._sched)

    def _check(self, name: str, a, rows: int, dim: int):
        shape = tuple(a.shape)
        if shape != (rows, dim):
            raise ValueError(f"{name} must have shape ({rows}, {dim}), got {shape}")

    @_one_blas_thread
    def step(self, m_prev: np.ndarray, r_prev: np.ndarray) -> np.ndarray:
        p = self._p
        m_prev = np.asarray(m_prev, dtype=np.float32)
        r_prev = np.asarray(r_prev, dtype=np.float32)
        self._check("m_prev", m_prev, self.batch, self.n_states)
        self._check("r_prev", r_prev, self.batch, self.synopsis_dim)
        t, W, H = self.t, p["window"], p["n_heads"]
        slot = t % W
        self._pos[slot] = t
        bias = inc.prefix_bias(p["slopes"], self._pos[None], t, W)
        x = r_prev @ p["w_r"] + m_prev @ p["w_m"] + self._sched[min(t, len(self._sched) - 1)]
        B, d = x.shape
        for li, lp in enumerate(p["layers"]):
            q, k, v = inc.qkv(inc.NP, lp, x, H)
            self._k[li][:, :, slot] = k
            self._v[li][:, :, slot] = v
            a = inc.attend(inc.NP, q[:, :, None, :], self._k[li], self._v[li], bias)
            x = inc.finish_block(inc.NP, lp, x, a.reshape(B, d))
        logits = inc.head_logits(inc.NP, p, x, m_prev).astype(np.float64)
        self.t = t + 1
        return inc.NP.softmax(logits)

    def teacher_force(self, m_prev_seq: np.ndarray, r_prev_seq: np.ndarray) -> np.ndarray:
        """Step through given inputs ([n,S], [n,D], or [n,batch,.]); returns the forecasts [n, (batch,) S]."""
        m_prev_seq, r_prev_seq = np.asarray(m_prev_seq), np.asarray(r_prev_seq)
        flat = m_prev_seq.ndim == 2
        out = [self.step(m[None] if flat else m, r[None] if flat else r) for m, r in zip(m_prev_seq, r_prev_seq)]
        return np.stack([o[0] for o in out] if flat else out)

    def fork(self, copies: int) -> "Session":
        if copies < 1:
            raise ValueError(f"copies must be >= 1, got {copies}")
        rep = lambda a: np.repeat(a, copies, axis=0)  # noqa: E731 - row-major: each row `copies` times
        return Session(self._p, self._pt, self._sched, self.batch * copies, self.t,
                       [rep(k) for k in self._k], [rep(v) for v in self._v], self._pos.copy(),
                       self.n_states, self.synopsis_dim)

    def _rows(self, k: int) -> np.ndarray:
        idx = np.minimum(np.arange(self.t, self.t + k), len(self._sched) - 1)
        return self._sched[idx][None]

    def _candidates(self, rows: int) -> int:
        if rows % self.batch:
            raise ValueError(f"rollout rows {rows} must be a multiple of the session batch {self.batch}")
        return rows // self.batch

    @_one_blas_thread
    def rollout(self, m_first: np.ndarray, r_frozen: np.ndarray, k: int) -> np.ndarray:
        m_first = np.asarray(m_first, dtype=np.float32)
        r_frozen = np.asarray(r_frozen, dtype=np.float32)
        J = self._candidates(m_first.shape[0])
        self._check("m_first", m_first, self.batch * J, self.n_states)
        self._check("r_frozen", r_frozen, self.batch * J, self.synopsis_dim)
        if k < 1:
            return np.zeros((m_first.shape[0], 0, self.n_states))
        logits = inc.rollout(inc.NP, self._p, list(zip(self._k, self._v)), self._pos[None], self.t,
                             m_first, r_frozen, self._rows(k), k, J)
        return inc.NP.softmax(logits.astype(np.float64))

    def rollout_torch(self, m_first: torch.Tensor, r_frozen, k: int) -> torch.Tensor:
        """Differentiable in m_first; f_psi's weights are detached (frozen) on this path."""
        r_frozen = torch.as_tensor(np.asarray(r_frozen.detach() if isinstance(r_frozen, torch.Tensor) else r_frozen,
                                              dtype=np.float32))
        J = self._candidates(m_first.shape[0])
        self._check("m_first", m_first, self.batch * J, self.n_states)
        self._check("r_frozen", r_frozen, self.batch * J, self.synopsis_dim)
        prefix = [(torch.from_numpy(k_), torch.from_numpy(v_)) for k_, v_ in zip(self._k, self._v)]
        rows = torch.from_numpy(self._rows(k))
        logits = inc.rollout(inc.TH, self._pt, prefix, self._pos[None], self.t, m_first.float(), r_frozen, rows, k, J)
        return torch.softmax(logits, dim=-1)
