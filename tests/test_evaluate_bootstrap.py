"""Paired bootstrap over events: known answers."""

from __future__ import annotations

import numpy as np
import pytest

from mfmdp.evaluate.bootstrap import paired_bootstrap


def test_constant_difference_collapses_the_interval():
    b = np.array([1.0, 2.0, 3.0, 4.0])
    r = paired_bootstrap(b - 0.5, b, n_boot=500)
    assert r["diff"] == pytest.approx(-0.5)
    assert r["diff_lo"] == pytest.approx(-0.5) and r["diff_hi"] == pytest.approx(-0.5)
    assert r["rel_reduction"] == pytest.approx(0.5 / 2.5)
    assert r["p_value"] == 0.0


def test_interval_matches_the_normal_approximation():
    rng = np.random.default_rng(0)
    b = rng.normal(3, 1, 400)
    a = b + 0.5 + rng.normal(0, 1, 400)
    r = paired_bootstrap(a, b, n_boot=4000, seed=1)
    d = a - b
    se = d.std(ddof=1) / np.sqrt(len(d))
    assert r["diff_lo"] < d.mean() < r["diff_hi"]
    assert (r["diff_hi"] - r["diff_lo"]) == pytest.approx(2 * 1.96 * se, rel=0.1)
    assert r["rel_lo"] < r["rel_reduction"] < r["rel_hi"]


def test_seeded_nan_pairs_dropped_and_shape_checked():
    a, b = np.array([1.0, np.nan, 3.0, 2.0]), np.array([2.0, 1.0, np.nan, 2.5])
    assert paired_bootstrap(a, b, n_boot=200, seed=3) == paired_bootstrap(a, b, n_boot=200, seed=3)
    assert paired_bootstrap(a, b, n_boot=200)["n_events"] == 2
    assert paired_bootstrap(np.array([np.nan]), np.array([1.0]))["n_events"] == 0
    with pytest.raises(ValueError, match="equal 1-D"):
        paired_bootstrap(np.zeros(3), np.zeros(4))
