"""Metrics against hand-computed values and reference implementations (scipy, scikit-learn)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.distance import jensenshannon
from scipy.stats import entropy, wasserstein_distance
from sklearn.metrics import f1_score

from mfmdp.evaluate import metrics as M
from mfmdp.evaluate.windows import group_counts, scored_mask, smooth, window_ids


def _random_dists(rng, n, k):
    return smooth(rng.integers(0, 30, size=(n, k)))


def test_kl_matches_scipy_and_hand_value():
    p, q = np.array([0.5, 0.25, 0.25]), np.array([0.25, 0.5, 0.25])
    hand = 0.5 * np.log(2) + 0.25 * np.log(0.5)
    assert M.kl(p, q) == pytest.approx(hand)
    rng = np.random.default_rng(0)
    P, Q = _random_dists(rng, 20, 6), _random_dists(rng, 20, 6)
    np.testing.assert_allclose(M.kl(P, Q), [entropy(a, b) for a, b in zip(P, Q)], rtol=1e-12)


def test_js_is_scipy_jensenshannon_squared_in_nats():
    rng = np.random.default_rng(1)
    P, Q = _random_dists(rng, 20, 3), _random_dists(rng, 20, 3)
    np.testing.assert_allclose(M.js(P, Q), [jensenshannon(a, b) ** 2 for a, b in zip(P, Q)], rtol=1e-10)
    assert M.js(np.array([1.0, 0.0]), np.array([0.0, 1.0])) == pytest.approx(np.log(2))


def test_state_wasserstein_is_ordinal_negative_neutral_positive():
    # all mass on positive vs all on negative: two ordinal steps apart
    assert M.wasserstein(np.array([1.0, 0, 0]), np.array([0, 0, 1.0]), "state") == pytest.approx(2.0)
    # positive vs neutral: one step
    assert M.wasserstein(np.array([1.0, 0, 0]), np.array([0, 1.0, 0]), "state") == pytest.approx(1.0)
    rng = np.random.default_rng(2)
    P, Q = _random_dists(rng, 20, 3), _random_dists(rng, 20, 3)
    pos = np.array([2.0, 1.0, 0.0])  # STATES order is positive, neutral, negative
    ref = [wasserstein_distance(pos, pos, a, b) for a, b in zip(P, Q)]
    np.testing.assert_allclose(M.wasserstein(P, Q, "state"), ref, rtol=1e-10)


def test_nominal_wasserstein_is_total_variation_and_accuracy_complements_it():
    p, q = np.array([0.7, 0.2, 0.1]), np.array([0.1, 0.2, 0.7])
    assert M.wasserstein(p, q, "stance") == pytest.approx(0.6)
    assert M.total_variation(p, q) == pytest.approx(0.6)


def test_distances_reject_mismatched_shapes():
    with pytest.raises(ValueError, match="differ in shape"):
        M.kl(np.ones((2, 3)) / 3, np.ones((3, 3)) / 3)


def test_smoothing_hand_values_and_zero_mass():
    np.testing.assert_allclose(smooth(np.array([2, 0, 0])), np.array([2.5, 0.5, 0.5]) / 3.5)
    np.testing.assert_allclose(smooth(np.zeros((1, 4))), np.full((1, 4), 0.25))
    np.testing.assert_allclose(smooth(np.zeros(3), alpha=0.0), np.full(3, 1 / 3))


def test_window_ids_partial_rule():
    sizes = lambda m: np.bincount(window_ids(m, 128)).tolist() if m else []  # noqa: E731
    assert sizes(300) == [128, 172]  # 44-response tail merged into the last full window
    assert sizes(320) == [128, 128, 64]  # a tail of half a window stands alone
    assert sizes(100) == [100]  # shorter than a window: one window
    assert sizes(256) == [128, 128]
    assert sizes(0) == []
    with pytest.raises(ValueError):
        window_ids(10, 0)


def test_group_counts_ignores_unknown_and_rejects_out_of_range():
    c = group_counts(np.array([0, 1, -1, 1, 2]), np.array([0, 0, 0, 1, 1]), 2, 3)
    np.testing.assert_array_equal(c, [[1, 1, 0], [0, 1, 1]])
    with pytest.raises(ValueError, match="out of range"):
        group_counts(np.array([3]), np.array([0]), 1, 3)


def test_scored_mask_excludes_warmup_and_signals():
    sig = np.zeros(6, dtype=bool)
    sig[4] = True
    assert scored_mask(6, sig, 2).tolist() == [False, False, True, True, False, True]
    with pytest.raises(ValueError, match="shape"):
        scored_mask(6, np.zeros(5, dtype=bool), 0)


def _brute_dtw_rms(a, b, shift):
    n, m = len(a), len(b)
    cost = np.full((n + 1, m + 1), np.inf)
    length = np.zeros((n + 1, m + 1), dtype=int)
    cost[0, 0] = 0
    for i in range(1, n + 1):
        for j in range(max(1, i - shift), min(m, i + shift) + 1):
            d = ((a[i - 1] - b[j - 1]) ** 2).sum()
            prev = [(cost[i - 1, j - 1], length[i - 1, j - 1]), (cost[i - 1, j], length[i - 1, j]),
                    (cost[i, j - 1], length[i, j - 1])]
            c, ln = min(prev, key=lambda x: x[0])
            cost[i, j], length[i, j] = c + d, ln + 1
    return np.sqrt(cost[n, m] / length[n, m])


def test_dtw_identical_constant_offset_and_bruteforce():
    rng = np.random.default_rng(3)
    a = _random_dists(rng, 30, 3)
    assert M.dtw_distance(a, a) == pytest.approx(0.0, abs=1e-12)
    p, q = np.array([0.6, 0.3, 0.1]), np.array([0.2, 0.3, 0.5])
    # every matched pair is the same distance apart, so the RMS along any path is that distance
    assert M.dtw_distance(np.tile(p, (12, 1)), np.tile(q, (12, 1))) == pytest.approx(np.linalg.norm(p - q))
    b = _random_dists(rng, 30, 3)
    assert M.dtw_distance(a, b) == pytest.approx(_brute_dtw_rms(a, b, shift=3), rel=1e-9)  # band ceil(0.1*30)
    assert M.dtw_distance(a[:1], b[:1]) == pytest.approx(np.linalg.norm(a[0] - b[0]))
    with pytest.raises(ValueError, match="differ in shape"):
        M.dtw_distance(a, b[:20])
    with pytest.raises(ValueError, match="non-empty"):
        M.dtw_distance(a[:0], b[:0])


def test_f1_matches_sklearn_and_skips_unknown():
    rng = np.random.default_rng(4)
    t = rng.integers(0, 4, 200)
    s = np.where(rng.random(200) < 0.6, t, rng.integers(0, 4, 200))
    macro, micro = M.f1_scores(t, s, 6)
    assert macro == pytest.approx(f1_score(t, s, average="macro"))
    assert micro == pytest.approx(f1_score(t, s, average="micro"))
    t2, s2 = t.copy(), s.copy()
    t2[:10] = -1
    s2[10:20] = -1
    keep = (t2 >= 0) & (s2 >= 0)
    macro2, _ = M.f1_scores(t2, s2, 6)
    assert macro2 == pytest.approx(f1_score(t2[keep], s2[keep], average="macro"))
    assert np.isnan(M.f1_scores(np.full(3, -1), np.zeros(3, int), 3)[0])
    with pytest.raises(ValueError, match="differ in length"):
        M.f1_scores(t, s[:-1], 6)


def test_f1_references_hand_values():
    ref = M.f1_references(np.array([0, 0, 0, 1, -1]), 3)
    assert ref["micro_f1_majority"] == pytest.approx(0.75)
    assert ref["macro_f1_majority"] == pytest.approx(f1_score([0, 0, 0, 1], [0, 0, 0, 0], average="macro"))
    assert ref["macro_f1_random"] == pytest.approx(0.5)
    assert ref["micro_f1_random"] == pytest.approx(0.75**2 + 0.25**2)
