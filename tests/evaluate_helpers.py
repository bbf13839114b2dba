"""Builds tiny run directories in the layout of mfmdp.simulate.results (RUN_DIR/events/<id>/real.parquet, sim__*.parquet)
for the evaluation tests: real labels with a known trajectory, simulated runs of known quality."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from mfmdp.core.schema import DIMENSIONS
from mfmdp.simulate.results import DONE_FILE, EVENTS_DIR, MANIFEST_FILE, REAL_FILE, sim_file

WARMUP = 160
STEP = 16


def real_codes(n: int, rng: np.random.Generator, reverses: bool) -> dict[str, np.ndarray]:
    """State mostly negative then mostly positive when `reverses`, else a stationary mix."""
    codes = {}
    t = np.arange(n)
    if reverses:
        p_pos = np.where(t < n // 2, 0.1, 0.8)
    else:
        p_pos = np.full(n, 0.35)
    u = rng.random(n)
    state = np.where(u < p_pos, 0, np.where(u < p_pos + (1 - p_pos) / 2, 1, 2))
    codes["state"] = state.astype(np.int8)
    for d, labels in DIMENSIONS.items():
        if d != "state":
            codes[d] = rng.integers(0, len(labels), n).astype(np.int8)
    return codes


def frame(codes: dict[str, np.ndarray], is_signal: np.ndarray, sim: bool, nll: float | None = None) -> pd.DataFrame:
    n = len(is_signal)
    df = pd.DataFrame({"slot": np.arange(n), "step": np.arange(n) // STEP, "is_signal": is_signal,
                       "warmup": np.arange(n) < WARMUP})
    if not sim:
        df["time"] = 1.6e9 + np.arange(n) * 60.0
    for d in DIMENSIONS:
        df[d] = codes[d].astype(np.int8)
    if sim:
        df["text"] = ["转发微博"] * n
        df["nll"] = np.full(n, np.nan if nll is None else nll)
    return df


def noisy_copy(codes: dict[str, np.ndarray], rng: np.random.Generator, flip: float) -> dict[str, np.ndarray]:
    """Each scored label replaced by a uniform random one with probability `flip`."""
    out = {}
    for d, c in codes.items():
        c = c.copy()
        swap = (rng.random(len(c)) < flip) & (np.arange(len(c)) >= WARMUP)
        c[swap] = rng.integers(0, len(DIMENSIONS[d]), swap.sum())
        out[d] = c
    return out


def make_run_dir(root: Path, n_events: int = 3, n: int = 900, seeds: tuple[int, ...] = (0, 1),
                 methods: dict[str, float] | None = None, manifest: dict | None = None) -> Path:
    """`methods`: method -> share of labels randomised (0 = perfect copy of the real labels)."""
    methods = methods or {"direct": 0.9, "mf_mdp": 0.1, "persistence": 0.6, "no_sampling": 0.3}
    rng = np.random.default_rng(0)
    for e in range(n_events):
        ev_dir = root / EVENTS_DIR / f"ev{e}"
        ev_dir.mkdir(parents=True)
        codes = real_codes(n, rng, reverses=(e == 0))
        is_signal = np.zeros(n, dtype=bool)
        is_signal[[i for i in (200, 201, 650) if i < n]] = True
        frame(codes, is_signal, sim=False).to_parquet(ev_dir / REAL_FILE, index=False)
        for method, flip in methods.items():
            for s in seeds:
                sim = noisy_copy(codes, rng, flip)
                frame(sim, is_signal, sim=True, nll=0.9 if method == "mf_mdp" else None).to_parquet(
                    ev_dir / sim_file(method, s), index=False)
        (ev_dir / DONE_FILE).write_text("{}")
    (root / MANIFEST_FILE).write_text(json.dumps(manifest or {"seeds": list(seeds)}))
    return root
