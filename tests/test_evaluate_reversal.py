"""Reversal detection on constructed series, threshold fitting against permuted nulls, comparison."""

from __future__ import annotations

import numpy as np
import pytest

from mfmdp.evaluate.reversal import (ReversalThresholds, compare_reversals, critical_magnitude,
                                     detect_reversals, fit_reversal_thresholds, null_false_positive_rate,
                                     null_series, polarity_series)

TH = ReversalThresholds(magnitude=0.3, duration=2)


def test_flat_then_rise_is_one_upward_reversal_at_the_plateau_end():
    x = np.r_[np.full(5, -0.4), np.linspace(-0.4, 0.6, 5)[1:], np.full(5, 0.6)]
    (r,) = detect_reversals(x, TH)
    assert (r.window, r.direction) == (4, "up")


def test_rise_then_fall_gives_alternating_turning_points():
    x = np.r_[np.zeros(3), np.linspace(0, 0.8, 5)[1:], np.full(3, 0.8), np.linspace(0.8, 0.0, 5)[1:], np.zeros(3)]
    revs = detect_reversals(x, TH)
    assert [r.direction for r in revs] == ["up", "down"]
    assert revs[0].window == 2 and revs[1].window == 9  # last zero, last window at the peak


def test_small_wiggles_and_short_blips_are_not_reversals():
    rng = np.random.default_rng(0)
    assert detect_reversals(0.1 * np.sin(np.arange(40)) + rng.normal(0, 0.02, 40), TH) == []
    blip = np.r_[np.zeros(6), 0.9, np.zeros(6)]  # one window only: fails duration 2
    assert detect_reversals(blip, TH) == []
    assert detect_reversals(blip, ReversalThresholds(0.3, 1))[0].direction == "up"
    assert detect_reversals(np.zeros(1), TH) == []


def test_detection_agrees_with_critical_magnitude():
    rng = np.random.default_rng(1)
    for _ in range(200):
        x = np.cumsum(rng.normal(0, 0.1, rng.integers(2, 30)))
        for d in (1, 2, 3):
            th = ReversalThresholds(0.25, d)
            assert bool(detect_reversals(x, th)) == bool(critical_magnitude(x, d)[0] >= 0.25 - 1e-12)


def test_detect_rejects_bad_series():
    with pytest.raises(ValueError, match="1-D"):
        detect_reversals(np.zeros((2, 3)), TH)
    with pytest.raises(ValueError, match="NaN"):
        detect_reversals(np.array([0.0, np.nan, 1.0]), TH)


def test_polarity_series_from_state_codes():
    codes = np.r_[np.zeros(128, int), np.full(128, 2)]  # all positive, then all negative
    series, centres = polarity_series(codes, np.arange(256), window=128)
    p = (128 + 0.5) / 129.5
    np.testing.assert_allclose(series, [p - 0.5 / 129.5, 0.5 / 129.5 - p])
    np.testing.assert_allclose(centres, [64, 192])


def _training_codes(seed, n_flat=20, n_rev=5):
    """Stationary events (fixed mix, any order) and events that flip from negative to positive."""
    rng = np.random.default_rng(seed)
    out = [rng.choice(3, size=rng.integers(256, 2000), p=rng.dirichlet([2, 2, 2])) for _ in range(n_flat)]
    for _ in range(n_rev):
        half = 640
        out.append(np.r_[rng.choice(3, half, p=[0.1, 0.3, 0.6]), rng.choice(3, half, p=[0.6, 0.3, 0.1])])
    return out


def test_fitted_thresholds_control_the_null_false_positive_rate():
    train = _training_codes(0)
    th = fit_reversal_thresholds(train, window=128, fp_target=0.05, n_perm=60, seed=0)
    assert th.fp_rate <= 0.05 and th.fp_target == 0.05
    assert th.duration in (1, 2, 3) and 0 < th.magnitude < 0.5
    assert th.detected_train >= 5  # the constructed reversals are found
    # fresh permutations of the same events: close to the target
    assert null_false_positive_rate(train, th, window=128, n_perm=60, seed=99) <= 0.09
    assert fit_reversal_thresholds(train, window=128, n_perm=60, seed=0) == th  # seeded
    with pytest.raises(ValueError, match="at least one event"):
        fit_reversal_thresholds([np.zeros(100, int)], window=128)


def test_null_series_keep_the_mix_and_lose_the_order():
    codes = np.r_[np.zeros(640, int), np.full(640, 2)]
    nulls = null_series(codes, window=128, n_perm=20, seed=0)
    assert nulls.shape == (20, 10)
    assert np.abs(nulls).max() < 0.35  # shuffled: every window is near the overall mix (0)
    assert critical_magnitude(nulls, 2).max() < critical_magnitude(polarity_series(codes, np.arange(1280))[0], 2)[0]


def test_thresholds_roundtrip_and_bad_file(tmp_path):
    th = ReversalThresholds(0.42, 3, "test", 0.04, 0.05, 10, 2)
    th.save(tmp_path / "t.json")
    assert ReversalThresholds.load(tmp_path / "t.json") == th
    (tmp_path / "bad.json").write_text("{\"magnitude\": ")
    with pytest.raises(ValueError, match="bad.json"):
        ReversalThresholds.load(tmp_path / "bad.json")


def test_compare_reversals_direction_and_timing():
    real = np.r_[np.full(6, -0.5), np.full(6, 0.5)]
    centres = 64 + 128 * np.arange(12.0)
    late = np.r_[np.full(8, -0.5), np.full(4, 0.5)]
    out = compare_reversals(real, late, centres, TH)
    assert out["same_direction"] is True and out["real_direction"] == "up"
    assert out["timing_error_responses"] == pytest.approx(2 * 128)
    opposite = compare_reversals(real, -real, centres, TH)
    assert opposite["same_direction"] is False and np.isnan(opposite["timing_error_responses"])
    none = compare_reversals(np.zeros(12), real, centres, TH)
    assert none["real_reversals"] == 0 and none["same_direction"] is None
    with pytest.raises(ValueError, match="differ in length"):
        compare_reversals(real, real[:5], centres, TH)


def test_short_events_cannot_push_the_magnitude_below_the_floor():
    rng = np.random.default_rng(5)
    short = [rng.choice(3, 700) for _ in range(6)]  # 5 windows: two held 3-window levels impossible
    th = fit_reversal_thresholds(short, window=128, n_perm=40, seed=0)
    assert th.magnitude >= 0.1 and th.duration in (1, 2)
    with pytest.raises(ValueError, match="long enough"):
        fit_reversal_thresholds(short, window=128, durations=(3,), n_perm=10)


def test_hits_need_the_right_direction_within_the_tolerance_and_quiet_events_score_false_alarms():
    real = np.r_[np.full(6, -0.5), np.full(6, 0.5)]  # up, turning point at window 5
    centres = 64 + 128 * np.arange(12.0)
    late = np.r_[np.full(8, -0.5), np.full(4, 0.5)]  # up at window 7: 2 windows late
    assert compare_reversals(real, late, centres, TH, tolerance=2)["hit"] is True
    assert compare_reversals(real, late, centres, TH, tolerance=1)["hit"] is False
    assert compare_reversals(real, -real, centres, TH)["hit"] is False  # wrong direction
    flat = compare_reversals(real, np.zeros(12), centres, TH)
    assert flat["hit"] is False and flat["false_alarm"] is None
    quiet = compare_reversals(np.zeros(12), real, centres, TH)
    assert quiet["false_alarm"] is True and quiet["hit"] is None
    assert compare_reversals(np.zeros(12), np.zeros(12), centres, TH)["false_alarm"] is False


def test_a_simulator_that_reverses_at_random_scores_no_skill():
    """Hits minus false alarms: a method that reverses on a random half of all events, in a random
    direction and at a random time, scores about 0 or below; one that follows the real series scores 1."""
    import pandas as pd

    from mfmdp.evaluate.tables import reversal_skill

    rng = np.random.default_rng(0)
    centres = 64 + 128 * np.arange(12.0)
    rows = []
    for event in range(200):
        at = int(rng.integers(3, 9))
        real = np.r_[np.full(at, -0.5), np.full(12 - at, 0.5)] if event % 2 else np.zeros(12)
        noisy = rng.random() < 0.5
        at_sim, sign = int(rng.integers(3, 9)), rng.choice([-1, 1])
        sim = sign * np.r_[np.full(at_sim, -0.5), np.full(12 - at_sim, 0.5)] if noisy else np.zeros(12)
        for method, series in (("noise", sim), ("follows", real)):
            rows.append({"event": event, "method": method, "seed": 0,
                         **compare_reversals(real, series, centres, TH)})
    skill = reversal_skill(pd.DataFrame(rows), ["noise", "follows", "absent"]).set_index("method")
    assert list(skill.index) == ["noise", "follows"]
    assert skill.loc["noise", "false_alarm_rate"] == pytest.approx(0.5, abs=0.1)
    assert skill.loc["noise", "hits_minus_false_alarms"] < 0.05
    assert skill.loc["follows", "hits_minus_false_alarms"] == 1.0
    assert skill.loc["follows", "reversing_events"] == 100 and skill.loc["follows", "quiet_events"] == 100
