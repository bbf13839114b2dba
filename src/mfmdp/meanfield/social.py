"""The social-retrieval context: the k most recent and the k most popular responses seen so far.

Simulated responses carry no engagement counts, so "popular" means the texts repeated most often
(a repost cascade repeats its text); counts only grow, so the top-k set is maintained incrementally
in O(k) per added response instead of re-sorting the whole history each step.
"""

from __future__ import annotations

from collections import deque

import numpy as np


class SocialContext:
    def __init__(self, dim: int, k: int = 8) -> None:
        self.dim, self.k = dim, k
        self.recent: deque[np.ndarray] = deque(maxlen=k)
        self.recent_texts: deque[str] = deque(maxlen=k)
        self.counts: dict[str, int] = {}
        self.emb: dict[str, np.ndarray] = {}
        self.top: dict[str, int] = {}  # text -> count, the current k most repeated

    def add(self, embeddings: np.ndarray, texts: list[str]) -> None:
        for e, text in zip(embeddings, texts):
            self.recent.append(e)
            self.recent_texts.append(text)
            c = self.counts.get(text, 0) + 1
            self.counts[text] = c
            if text not in self.emb:
                self.emb[text] = e
            if text in self.top:
                self.top[text] = c
            elif len(self.top) < self.k:
                self.top[text] = c
            else:
                weakest = min(self.top, key=self.top.__getitem__)
                if c > self.top[weakest]:
                    del self.top[weakest]
                    self.top[text] = c

    def popular(self) -> list[str]:
        return sorted(self.top, key=self.top.__getitem__, reverse=True)

    def text(self) -> str:
        """The same context as text, for LLM policies: recent responses, then the most repeated."""
        recent = [t for t in self.recent_texts if t]
        popular = [t for t in self.popular() if t]
        return "最新: " + " | ".join(recent) + "\n热门: " + " | ".join(popular)

    def vector(self) -> np.ndarray:
        """Mean embedding of the k most recent and the k most popular responses (zeros when none)."""
        rows = list(self.recent) + [self.emb[t] for t in self.top]
        if not rows:
            return np.zeros(self.dim, dtype=np.float32)
        return np.mean(rows, axis=0).astype(np.float32)
