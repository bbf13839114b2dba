"""evaluate_event: rows, horizons, hand-computed window metrics, edge cases, NLL, oracle floor."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import entropy

from mfmdp.core.schema import DIMENSIONS, Labels
from mfmdp.data.stepping import Steps
from mfmdp.evaluate.oracle import oracle_labels
from mfmdp.evaluate.protocol import ROW_KEYS, evaluate_event
from mfmdp.evaluate.reversal import ReversalThresholds


def _steps(n, size=16, signals=()):
    is_signal = np.zeros(n, dtype=bool)
    is_signal[list(signals)] = True
    return Steps(bounds=np.unique(np.r_[np.arange(0, n, size), n]).astype(np.int64), is_signal=is_signal)


def _random_labels(n, seed):
    rng = np.random.default_rng(seed)
    return Labels({d: rng.integers(0, len(v), n) for d, v in DIMENSIONS.items()})


def test_identical_runs_score_perfectly_and_rows_have_agreed_keys():
    real = _random_labels(700, 0)
    rows = evaluate_event(real, real, _steps(700), warmup_slots=160)
    assert len(rows) == 2 * len(DIMENSIONS)
    assert all(tuple(r) == ROW_KEYS for r in rows)
    for r in rows:
        assert r["kl"] == pytest.approx(0) and r["js"] == pytest.approx(0)
        assert r["wasserstein"] == pytest.approx(0) and r["dtw"] == pytest.approx(0)
        assert r["matched_accuracy"] == pytest.approx(1) and r["macro_f1"] == pytest.approx(1)
        assert np.isnan(r["nll"])
    short = [r for r in rows if r["setting"] == "short"][0]
    long = [r for r in rows if r["setting"] == "long"][0]
    assert (short["responses"], short["steps"]) == (300, 19)  # slots 160..459 = steps 10..28
    assert (long["responses"], long["steps"]) == (540, 34)


def test_hand_computed_windows_with_warmup_and_signals():
    # 2 warm-up slots, a signal at slot 5, window of 4 scored responses: windows {2,3,4,6}, {7,8,9,10}
    n = 11
    real_state = np.array([0, 0, 0, 0, 1, 2, 2, 2, 2, 1, 0])
    sim_state = np.array([2, 2, 0, 1, 1, 0, 2, 2, 1, 1, 1])
    real = Labels({"state": real_state})
    sim = Labels({"state": sim_state})
    rows = evaluate_event(real, sim, _steps(n, size=4, signals=[5]), warmup_slots=2, settings=("long",),
                          window=4, dimensions=["state"])
    (row,) = rows
    cr = np.array([[2, 1, 1], [1, 1, 2]]) + 0.5  # real counts (positive, neutral, negative) per window
    cs = np.array([[1, 2, 1], [0, 3, 1]]) + 0.5
    p, q = cr / cr.sum(1, keepdims=True), cs / cs.sum(1, keepdims=True)
    assert row["kl"] == pytest.approx(np.mean([entropy(a, b) for a, b in zip(p, q)]))
    tv = 0.5 * np.abs(p - q).sum(1)
    assert row["matched_accuracy"] == pytest.approx(1 - tv.mean())
    assert row["responses"] == 8 and row["steps"] == 3  # slots 2..10 lie in steps 0, 1, 2
    # per-step KL: scored slots grouped by step: {2,3}, {4,6,7}, {8,9,10}
    steps_r = np.array([[2, 0, 0], [0, 1, 2], [1, 1, 1]]) + 0.5
    steps_s = np.array([[1, 1, 0], [0, 1, 2], [0, 3, 0]]) + 0.5
    ps, qs = steps_r / steps_r.sum(1, keepdims=True), steps_s / steps_s.sum(1, keepdims=True)
    assert row["kl_step"] == pytest.approx(np.mean([entropy(a, b) for a, b in zip(ps, qs)]))
    assert row["micro_f1"] == pytest.approx(5 / 8)


def test_all_unknown_dimension_gives_nan_not_crash():
    real = _random_labels(400, 1)
    sim = _random_labels(400, 2)
    sim.codes["belief"][:] = -1
    rows = evaluate_event(real, sim, _steps(400), warmup_slots=160, settings=("long",))
    belief = [r for r in rows if r["dimension"] == "belief"][0]
    assert np.isnan(belief["kl"]) and np.isnan(belief["dtw"]) and np.isnan(belief["macro_f1"])
    state = [r for r in rows if r["dimension"] == "state"][0]
    assert np.isfinite(state["kl"])


def test_no_scored_slots_gives_nan_rows():
    real = _random_labels(100, 1)
    rows = evaluate_event(real, real, _steps(100), warmup_slots=160, settings=("long",))
    assert all(np.isnan(r["kl"]) and r["responses"] == 0 and r["steps"] == 0 for r in rows)


def test_unequal_lengths_and_bad_inputs_raise_clear_errors():
    with pytest.raises(ValueError, match="differ in length: 300 vs 299"):
        evaluate_event(_random_labels(300, 0), _random_labels(299, 0), _steps(300), 160)
    with pytest.raises(ValueError, match="steps cover 320 slots but labels have 300"):
        evaluate_event(_random_labels(300, 0), _random_labels(300, 0), _steps(320), 160)
    with pytest.raises(ValueError, match="unknown setting"):
        evaluate_event(_random_labels(300, 0), _random_labels(300, 0), _steps(300), 160, settings=("medium",))
    bad = _random_labels(300, 0)
    bad.codes["belief"][200] = 5
    with pytest.raises(ValueError, match="dimension 'belief': label code 5 out of range"):
        evaluate_event(_random_labels(300, 0), bad, _steps(300), 160)
    with pytest.raises(ValueError, match="nll has"):
        evaluate_event(_random_labels(300, 0), _random_labels(300, 0), _steps(300), 160, nll=np.zeros(3))


def test_nll_passthrough_averages_scored_slots_only():
    n = 400
    nll = np.full(n, 5.0)
    nll[160:] = 1.0
    nll[300] = np.nan
    nll[200] = 100.0
    real = _random_labels(n, 0)
    rows = evaluate_event(real, real, _steps(n, signals=[200]), 160, settings=("long",), nll=nll)
    assert rows[0]["nll"] == pytest.approx(1.0)


def test_reversal_setting_only_for_reversing_events():
    n = 1600
    flat = Labels({"state": np.tile([0, 1, 2], n // 3 + 1)[:n]})
    rev_state = np.where(np.arange(n) < 800, 2, 0)  # negative, then positive
    rev = Labels({"state": rev_state})
    th = ReversalThresholds(0.5, 2)
    rows_flat = evaluate_event(flat, flat, _steps(n), 160, settings=("long", "reversal"), reversal_thresholds=th)
    rows_rev = evaluate_event(rev, rev, _steps(n), 160, settings=("long", "reversal"), reversal_thresholds=th)
    assert {r["setting"] for r in rows_flat} == {"long"}
    assert {r["setting"] for r in rows_rev} == {"long", "reversal"}


def test_oracle_keeps_window_mix_replayed_slots_and_is_seeded():
    n = 700
    real = _random_labels(n, 3)
    steps = _steps(n, signals=[170, 400])
    o1 = oracle_labels(real, steps.is_signal, 160, seed=1)
    o2 = oracle_labels(real, steps.is_signal, 160, seed=1)
    o3 = oracle_labels(real, steps.is_signal, 160, seed=2)
    np.testing.assert_array_equal(o1.codes["state"], o2.codes["state"])
    assert not np.array_equal(o1.codes["state"], o3.codes["state"])
    np.testing.assert_array_equal(o1.codes["state"][:160], real.codes["state"][:160])
    assert o1.codes["state"][170] == real.codes["state"][170] and o1.codes["state"][400] == real.codes["state"][400]
    assert not np.array_equal(o1.codes["state"], real.codes["state"])
    # better than an unrelated run, worse than a perfect copy
    o_kl = evaluate_event(real, o1, steps, 160, settings=("long",), dimensions=["state"])[0]["kl"]
    bad = Labels({"state": np.zeros(n, dtype=np.int8)})
    bad_kl = evaluate_event(real, bad, steps, 160, settings=("long",), dimensions=["state"])[0]["kl"]
    assert 0 < o_kl < bad_kl
