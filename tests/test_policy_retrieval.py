"""Retrieval pool: exact (y, b) match, fallback, nearest by query, dedup, persistence."""

from __future__ import annotations

import numpy as np
import pytest

from mfmdp.core.schema import Labels
from mfmdp.policy.retrieval import RetrievalPool


def pool_of(rows, dim=4, seed=0, **kw):
    """rows: list of (text, state, behavior)."""
    texts = [r[0] for r in rows]
    labels = Labels({"state": np.array([r[1] for r in rows]), "behavior": np.array([r[2] for r in rows]),
                     "sentiment": np.arange(len(rows)) % 6})
    emb = np.random.default_rng(seed).standard_normal((len(rows), dim)).astype(np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    return RetrievalPool.build(texts, labels, emb, **kw), emb


def test_exact_match_on_state_and_behavior():
    rows = [(f"t{i}", i % 3, (i // 3) % 2) for i in range(30)]
    pool, _ = pool_of(rows)
    rng = np.random.default_rng(0)
    states = rng.integers(0, 3, 200)
    behaviors = rng.integers(0, 2, 200)
    got = pool.retrieve(states, behaviors, None, rng)
    np.testing.assert_array_equal(pool.labels.codes["state"][got], states)
    np.testing.assert_array_equal(pool.labels.codes["behavior"][got], behaviors)


def test_fallback_to_same_state_when_no_exact_match():
    pool, _ = pool_of([("a", 0, 0), ("b", 1, 1), ("c", 1, 1)])
    got = pool.retrieve(np.array([1, 0]), np.array([0, 1]), None, np.random.default_rng(0))
    assert pool.labels.codes["state"][got[0]] == 1  # (1, 0) absent: same state
    assert pool.texts[got[1]] == "a"  # (0, 1) absent: same state (0, 0)


def test_nearest_by_query_with_top_k_one():
    rows = [(f"t{i}", 0, 1) for i in range(20)]
    pool, emb = pool_of(rows, dim=6)
    target = pool.embeddings[5]
    got = pool.retrieve(np.zeros(3, int), np.ones(3, int), target, np.random.default_rng(0), top_k=1)
    np.testing.assert_array_equal(got, 5)
    with pytest.raises(ValueError, match="query has shape"):
        pool.retrieve(np.zeros(1, int), np.ones(1, int), np.ones(7), np.random.default_rng(0))


def test_duplicates_merge_and_unknown_labels_are_dropped_with_counts():
    pool, _ = pool_of([("same", 0, 0), ("same", 0, 0), ("same", 1, 0), ("x", -1, 0)])
    assert len(pool) == 2
    assert pool.meta["duplicates_merged"] == 1 and pool.meta["dropped_unknown_label"] == 1
    assert sorted(pool.popularity.tolist()) == [1.0, 2.0]


def test_cap_keeps_most_popular_rows():
    rows = [("pop", 0, 0)] * 5 + [(f"r{i}", 0, 0) for i in range(10)]
    pool, _ = pool_of(rows, max_per_group=3)
    assert len(pool) == 3 and "pop" in pool.texts


def test_save_load(tmp_path):
    pool, _ = pool_of([(f"文本{i}", i % 3, i % 2) for i in range(12)], encoder="hash-x")
    pool.save(tmp_path)
    back = RetrievalPool.load(tmp_path)
    assert back.texts == pool.texts and back.encoder == "hash-x"
    np.testing.assert_array_equal(back.embeddings, pool.embeddings)
    np.testing.assert_array_equal(back.offsets, pool.offsets)
    np.testing.assert_array_equal(back.labels.codes["sentiment"], pool.labels.codes["sentiment"])
    with pytest.raises(FileNotFoundError, match="is missing"):
        RetrievalPool.load(tmp_path / "nope")
