"""Tiny transition models and toy per-event features for the transition tests."""

from __future__ import annotations

import numpy as np
import torch

from mfmdp.transition.api import Schedule
from mfmdp.transition.features import PROFILE_DIM, TIME_DIM, EventFeatures, signal_block
from mfmdp.transition.model import EventTransformer, TransitionConfig

D = 8  # synopsis / encoder dim of the toy models


def tiny_config(**kw) -> TransitionConfig:
    base = dict(d_model=32, n_layers=2, n_heads=4, d_ff=64, window=6, dropout=0.0)
    base.update(kw)
    return TransitionConfig.for_encoder("hash:8", D, **base)


def tiny_model(seed: int = 0, **kw) -> EventTransformer:
    torch.manual_seed(seed)
    model = EventTransformer(tiny_config(**kw)).eval()
    with torch.no_grad():
        model.skip.fill_(0.5)  # exercise the persistence path too
    return model


def random_schedule(T: int, cfg: TransitionConfig, seed: int = 0) -> Schedule:
    rng = np.random.default_rng(seed)
    f = lambda n: rng.normal(size=(T, n)).astype(np.float32)  # noqa: E731
    return Schedule(f(cfg.profile_dim), f(cfg.signal_dim), f(cfg.time_dim))


def random_inputs(T: int, cfg: TransitionConfig, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    m = rng.dirichlet(np.ones(cfg.n_states), size=T).astype(np.float32)
    r = rng.normal(size=(T, cfg.synopsis_dim)).astype(np.float32)
    return m, r


def toy_features(n_events: int, T: int, seed: int = 0) -> list[EventFeatures]:
    """Events whose state mix switches from a to b when a signal arrives (learnable from c_t)."""
    rng = np.random.default_rng(seed)
    out = []
    for e in range(n_events):
        Te = int(rng.integers(T // 2, T + 1))
        a, b = rng.dirichlet(np.ones(3)), rng.dirichlet(np.ones(3))
        switch = int(rng.integers(3, Te - 1))
        time = np.zeros((Te, TIME_DIM), np.float32)
        time[:, 0] = np.log1p(np.arange(Te) * 60.0) / 10
        sig = signal_block([np.ones((1, D), np.float32) if t == switch else np.zeros((0, D), np.float32)
                            for t in range(Te)], D)
        mix = np.where(np.arange(Te)[:, None] < switch, a, b)
        counts = np.stack([rng.multinomial(16, p) for p in mix]).astype(np.float32)
        r = np.cumsum(rng.normal(size=(Te, D)), 0).astype(np.float32)
        r /= np.linalg.norm(r, axis=1, keepdims=True)
        schedule = Schedule(np.zeros((Te, PROFILE_DIM), np.float32), sig, time)
        out.append(EventFeatures(f"toy{e}", schedule, counts / 16, np.full(Te, 16, np.float32), r))
    return out
