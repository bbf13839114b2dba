"""Mean-field helpers: step histograms, smoothing, net polarity, embedding synopsis."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mfmdp.meanfield.histogram import net_polarity, normalise, step_counts, window_counts
from mfmdp.meanfield.synopsis import EmbeddingSynopsis, synopsis_series


def test_step_counts_counts_per_step_and_ignores_unknown_and_masked():
    codes = np.array([0, 1, 1, -1, 2, 2, 0], dtype=np.int8)
    bounds = np.array([0, 3, 3, 7])  # middle step empty
    mask = np.array([True, True, True, True, False, True, True])
    c = step_counts(codes, bounds, 3, mask)
    assert c.dtype == np.float64
    np.testing.assert_array_equal(c, [[1, 2, 0], [0, 0, 0], [1, 0, 1]])
    np.testing.assert_array_equal(step_counts(codes, bounds, 3), [[1, 2, 0], [0, 0, 0], [1, 0, 2]])


@settings(max_examples=50, deadline=None)
@given(st.lists(st.integers(-1, 3), min_size=0, max_size=60), st.integers(1, 9), st.integers(0, 2**31 - 1))
def test_step_counts_matches_a_plain_loop(codes, size, seed):
    codes = np.array(codes, dtype=np.int8)
    n = len(codes)
    bounds = np.unique(np.r_[np.arange(0, n, size), n]).astype(np.int64) if n else np.array([0])
    mask = np.random.default_rng(seed).random(n) < 0.7
    got = step_counts(codes, bounds, 4, mask)
    want = np.zeros((len(bounds) - 1, 4))
    for t in range(len(bounds) - 1):
        for i in range(bounds[t], bounds[t + 1]):
            if codes[i] >= 0 and mask[i]:
                want[t, codes[i]] += 1
    np.testing.assert_array_equal(got, want)
    assert got.sum() == ((codes >= 0) & mask).sum()


def test_step_counts_rejects_bad_input():
    with pytest.raises(ValueError, match="out of range"):
        step_counts(np.array([0, 3]), np.array([0, 2]), 3)
    with pytest.raises(ValueError, match="end at n"):
        step_counts(np.array([0, 1]), np.array([0, 1]), 3)
    with pytest.raises(ValueError, match="mask shape"):
        step_counts(np.array([0, 1]), np.array([0, 2]), 3, mask=np.array([True]))


def test_normalise_smooths_and_makes_empty_rows_uniform():
    c = np.array([[2.0, 0.0, 2.0], [0.0, 0.0, 0.0]])
    p = normalise(c)
    np.testing.assert_allclose(p, [[0.5, 0, 0.5], [1 / 3, 1 / 3, 1 / 3]])
    p = normalise(c, alpha=0.5)
    np.testing.assert_allclose(p[0], [2.5 / 5.5, 0.5 / 5.5, 2.5 / 5.5])
    np.testing.assert_allclose(p.sum(axis=1), 1.0)
    np.testing.assert_allclose(normalise(np.array([1.0, 3.0])), [0.25, 0.75])
    with pytest.raises(ValueError, match="alpha"):
        normalise(c, alpha=-1)


def test_window_counts_and_net_polarity():
    codes = np.r_[np.zeros(128), np.full(64, 2), np.full(64, 1), np.full(10, -1)].astype(np.int8)
    w = window_counts(codes, 3, 128)
    np.testing.assert_array_equal(w, [[128, 0, 0], [0, 64, 64], [0, 0, 0]])
    np.testing.assert_allclose(net_polarity(codes, 128), [1.0, -0.5, 0.0])


def _random_steps(rng, n, dim):
    emb = rng.normal(size=(n, dim)).astype(np.float32)
    cuts = np.sort(rng.integers(0, n + 1, size=12))
    bounds = np.r_[0, cuts, n].astype(np.int64)  # includes empty steps
    return emb, bounds


def test_synopsis_series_is_identical_to_repeated_update():
    rng = np.random.default_rng(0)
    emb, bounds = _random_steps(rng, 200, 16)
    series = synopsis_series(emb, bounds, decay=0.7)
    syn = EmbeddingSynopsis(16, decay=0.7)
    for t in range(len(bounds) - 1):
        r = syn.update(emb[bounds[t]:bounds[t + 1]], [f"t{i}" for i in range(bounds[t], bounds[t + 1])])
        np.testing.assert_array_equal(r, series[t])
    r0 = rng.normal(size=16)
    syn.reset(r0)
    series0 = synopsis_series(emb, bounds, decay=0.7, r0=r0)
    for t in range(len(bounds) - 1):
        np.testing.assert_array_equal(syn.update(emb[bounds[t]:bounds[t + 1]]), series0[t])


def test_synopsis_is_an_ema_of_step_means():
    e1 = np.array([[1.0, 0.0], [3.0, 0.0]])
    e2 = np.array([[0.0, 4.0]])
    syn = EmbeddingSynopsis(2, decay=0.5)
    np.testing.assert_allclose(syn.r, [0, 0])
    np.testing.assert_allclose(syn.update(e1, ["a", "b"]), [2.0, 0.0])  # first step: its mean
    np.testing.assert_allclose(syn.update(np.zeros((0, 2))), [2.0, 0.0])  # empty step: unchanged
    np.testing.assert_allclose(syn.update(e2, ["c"]), [1.0, 2.0])
    syn.reset(np.array([10.0, 10.0]))
    np.testing.assert_allclose(syn.update(e2), [5.0, 7.0])


def test_synopsis_keeps_a_short_central_extract_skipping_bare_reposts():
    syn = EmbeddingSynopsis(2, decay=0.5, keep_texts=2)
    emb = np.array([[1.0, 0.0], [0.9, 0.1], [-1.0, 0.0], [1.0, 0.0]])
    syn.update(emb, ["转发微博", "支持官方辟谣", "这是谣言吧", ""])
    assert syn.text == "支持官方辟谣"
    syn.update(np.array([[0.0, 1.0]]), ["第二步"])
    syn.update(np.array([[0.0, 1.0]]), ["第三步"])
    assert syn.text == "第二步 | 第三步"
    syn.reset()
    assert syn.text == ""


def test_synopsis_rejects_bad_shapes():
    syn = EmbeddingSynopsis(4)
    with pytest.raises(ValueError, match="shape"):
        syn.update(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="texts"):
        syn.update(np.zeros((2, 4)), ["a"])
    with pytest.raises(ValueError, match="decay"):
        EmbeddingSynopsis(4, decay=1.0)
    with pytest.raises(ValueError, match="bounds"):
        synopsis_series(np.zeros((3, 4)), np.array([0, 2]))

