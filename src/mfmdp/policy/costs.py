"""Rollout costs shared by LCT training and inference reselection.

V = sum_{k=1..K} gamma^(k-1) KL(p_{t+k} || q_{t+k}) over the last two axes [..., K, S]; candidate
weights softmax(-beta V): the MINUS sign (docs/method.md) so the lowest-cost candidate weighs most.
"""

from __future__ import annotations

import numpy as np
import torch

EPS = 1e-8


def discounted_kl(p: np.ndarray, q: np.ndarray, gamma: float) -> np.ndarray:
    """numpy: p, q [..., K, S] -> [...]; terms with p = 0 contribute 0."""
    p = np.asarray(p, dtype=np.float64)
    q = np.maximum(np.asarray(q, dtype=np.float64), EPS)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p > 0, p * (np.log(np.maximum(p, EPS)) - np.log(q)), 0.0).sum(-1)
    disc = gamma ** np.arange(terms.shape[-1], dtype=np.float64)
    return (terms * disc).sum(-1)


def discounted_kl_torch(p: torch.Tensor, q: torch.Tensor, gamma: float) -> torch.Tensor:
    """torch version, differentiable in q (and p): [..., K, S] -> [...]."""
    terms = torch.xlogy(p, p) - p * torch.log(q.clamp_min(EPS))
    terms = terms.sum(-1)
    disc = gamma ** torch.arange(terms.shape[-1], dtype=terms.dtype)
    return (terms * disc).sum(-1)


def candidate_weights(v: np.ndarray, beta: float) -> np.ndarray:
    """softmax(-beta V) along the last axis (numerically stable)."""
    z = -beta * np.asarray(v, dtype=np.float64)
    z = z - z.max(axis=-1, keepdims=True)
    w = np.exp(z)
    return w / w.sum(axis=-1, keepdims=True)
