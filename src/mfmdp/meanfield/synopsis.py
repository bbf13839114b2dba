"""Offline synopsis r_t: an exponential moving average of the step's mean text embedding.

r_t = decay * r_{t-1} + (1 - decay) * mean(embeddings of step t). The first non-empty step sets
r = its mean (no bias toward zero) unless `reset(r0)` gave a starting value; an empty step leaves r
unchanged. Embeddings are computed once per text by the caller (the encoder cache): nothing here
re-encodes text. `synopsis_series` computes the same r_t for a whole event at once and is
bit-identical to calling `.update` step by step (both share `_step_mean` and `_ema`).

Alongside r, the synopsis keeps a short extractive text for reports: the most central response of
each of the last few steps (closest to r), skipping bare reposts and empty texts.
"""

from __future__ import annotations

from collections import deque
from typing import Sequence

import numpy as np

from mfmdp.core.records import BARE_REPOST_TEXT


def _check_decay(decay: float) -> float:
    if not 0.0 <= decay < 1.0:
        raise ValueError(f"decay must be in [0, 1), got {decay}")
    return float(decay)


def _step_sums(emb64: np.ndarray, starts: np.ndarray) -> np.ndarray:
    # np.add.reduceat sums each segment in the same order whether it is alone or among others,
    # which keeps the per-step path and the whole-event path bit-identical.
    return np.add.reduceat(emb64, starts, axis=0)


def _ema(prev: np.ndarray | None, mean: np.ndarray, decay: float) -> np.ndarray:
    if prev is None:
        return mean.copy()
    return decay * prev + (1.0 - decay) * mean


class EmbeddingSynopsis:
    """Running synopsis of a crowd's responses; `r` is float32 [dim], `text` a short extract."""

    is_llm = False  # tables call the macro baseline "mf-synopsis (embedding)", never "mf_llm"

    def __init__(self, dim: int, decay: float = 0.8, keep_texts: int = 3, max_chars: int = 240):
        if dim < 1:
            raise ValueError(f"dim must be >= 1, got {dim}")
        self.dim = int(dim)
        self.decay = _check_decay(decay)
        self.keep_texts = int(keep_texts)
        self.max_chars = int(max_chars)
        self.reset()

    def reset(self, r0: np.ndarray | None = None) -> None:
        """Start over; `r0` (e.g. a warm-up synopsis) becomes the previous value of the EMA."""
        if r0 is None:
            self._r: np.ndarray | None = None
        else:
            r0 = np.asarray(r0, dtype=np.float64)
            if r0.shape != (self.dim,):
                raise ValueError(f"r0 must have shape ({self.dim},), got {r0.shape}")
            self._r = r0.copy()
        self._texts: deque[str] = deque(maxlen=max(self.keep_texts, 1))

    @property
    def r(self) -> np.ndarray:
        """float32 [dim]; zeros before any non-empty step."""
        if self._r is None:
            return np.zeros(self.dim, dtype=np.float32)
        return self._r.astype(np.float32)

    def describe(self) -> dict:
        """What a run manifest records about the synopsis."""
        return {"kind": "embedding", "decay": self.decay}

    @property
    def text(self) -> str:
        s = " | ".join(self._texts)
        return s if len(s) <= self.max_chars else s[: self.max_chars - 1] + "…"

    def update(self, embeddings: np.ndarray, texts: Sequence[str] | None = None) -> np.ndarray:
        """Fold one step's responses (embeddings [k, dim], their texts) into r; returns r (float32)."""
        emb = np.asarray(embeddings)
        if emb.ndim != 2 or emb.shape[1] != self.dim:
            raise ValueError(f"embeddings must have shape (k, {self.dim}), got {emb.shape}")
        k = emb.shape[0]
        if texts is not None and len(texts) != k:
            raise ValueError(f"got {len(texts)} texts for {k} embeddings")
        if k == 0:
            return self.r
        emb64 = emb.astype(np.float64)
        mean = _step_sums(emb64, np.array([0]))[0] / k
        self._r = _ema(self._r, mean, self.decay)
        if texts is not None:
            self._keep_central(emb64, texts)
        return self.r

    def _keep_central(self, emb64: np.ndarray, texts: Sequence[str]) -> None:
        ok = [i for i, t in enumerate(texts) if t and t.strip() and t.strip() != BARE_REPOST_TEXT]
        if not ok or self.keep_texts < 1:
            return
        scores = emb64[ok] @ self._r
        best = texts[ok[int(np.argmax(scores))]].strip().replace("\n", " ")
        self._texts.append(best[:80])


def synopsis_series(
    emb: np.ndarray,
    bounds: np.ndarray,
    decay: float = 0.8,
    r0: np.ndarray | None = None,
) -> np.ndarray:
    """float32 [T, D]: r_t after each step t of an event, as repeated `EmbeddingSynopsis.update`."""
    decay = _check_decay(decay)
    emb = np.asarray(emb)
    if emb.ndim != 2:
        raise ValueError(f"emb must be 2-D [n, D], got shape {emb.shape}")
    n, dim = emb.shape
    bounds = np.asarray(bounds, dtype=np.int64)
    if bounds.ndim != 1 or len(bounds) < 1 or bounds[0] != 0 or bounds[-1] != n or np.any(np.diff(bounds) < 0):
        raise ValueError(f"bounds must be non-decreasing from 0 to n={n}")
    T = len(bounds) - 1
    sizes = np.diff(bounds)
    out = np.zeros((T, dim), dtype=np.float32)
    nonempty = np.flatnonzero(sizes > 0)
    means = np.empty((0, dim))
    if len(nonempty):
        means = _step_sums(emb.astype(np.float64), bounds[nonempty]) / sizes[nonempty, None]
    prev = None if r0 is None else np.asarray(r0, dtype=np.float64).copy()
    if prev is not None and prev.shape != (dim,):
        raise ValueError(f"r0 must have shape ({dim},), got {prev.shape}")
    j = 0
    for t in range(T):
        if sizes[t] > 0:
            prev = _ema(prev, means[j], decay)
            j += 1
        if prev is not None:
            out[t] = prev
    return out
