"""LLM summariser for the synopsis r_t (MF-LLM's text channel), a drop-in for EmbeddingSynopsis.

After each step it asks a chat model (prompt file mfmdp/prompts/summarise.txt) to update the running
summary from the previous summary and a sample of the step's responses; `.text` is that summary (what
LLM policies read as StepContext.synopsis_text). The vector `.r` that f_psi consumes is, by default,
the same EMA of cached response embeddings as the offline synopsis (`vector="ema"`), so a transition
model trained offline stays valid; `vector="summary"` instead encodes the summary text with a
TextEncoder (f_psi must then be trained with this summariser too). Summaries are cached in sqlite
(keyed by model, prompt version, topic, previous summary and responses) when a cache_dir is given.
When a summariser like this ran, the simulator names the macro-only baseline "mf_llm".
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Sequence

import numpy as np

from mfmdp.core.records import BARE_REPOST_TEXT
from mfmdp.llm.base import user
from mfmdp.llm.cache import SqliteCache, cache_key
from mfmdp.llm.prompts import load_prompt
from mfmdp.meanfield.synopsis import EmbeddingSynopsis

log = logging.getLogger(__name__)


class LLMSynopsis:
    is_llm = True  # the simulator's cue for naming the macro-only baseline "mf_llm"

    def __init__(self, model, dim: int, decay: float = 0.8, topic: str = "", max_chars: int = 150,
                 sample_size: int = 12, vector: str = "ema", encoder=None, cache_dir: str | Path | None = None,
                 prompt_path: str | None = None) -> None:
        if vector not in ("ema", "summary"):
            raise ValueError(f"vector must be 'ema' or 'summary', got {vector!r}")
        if vector == "summary" and (encoder is None or encoder.dim != dim):
            raise ValueError("vector='summary' needs a TextEncoder whose dim equals the synopsis dim")
        self.model = model
        self.dim = int(dim)
        self.topic = topic
        self.max_chars = int(max_chars)
        self.sample_size = int(sample_size)
        self.vector = vector
        self.encoder = encoder
        self.prompt = load_prompt("summarise", prompt_path)
        self.cache = SqliteCache(Path(cache_dir) / "llm_summaries.sqlite", "summaries") if cache_dir else None
        self._ema = EmbeddingSynopsis(dim, decay=decay)
        self.calls = 0
        self.reset()

    def reset(self, r0: np.ndarray | None = None, text: str = "") -> None:
        self._ema.reset(r0)
        self._text = text
        self._r_summary: np.ndarray | None = None

    @property
    def r(self) -> np.ndarray:
        if self.vector == "summary":
            return self._r_summary if self._r_summary is not None else np.zeros(self.dim, np.float32)
        return self._ema.r

    @property
    def text(self) -> str:
        return self._text

    def _sample(self, texts: Sequence[str]) -> list[str]:
        """Up to sample_size distinct, non-trivial texts spread evenly over the step (deterministic)."""
        keep = list(dict.fromkeys(t.strip().replace("\n", " ") for t in texts
                                  if t and t.strip() and t.strip() != BARE_REPOST_TEXT))
        if len(keep) <= self.sample_size:
            return keep
        idx = np.linspace(0, len(keep) - 1, self.sample_size).round().astype(int)
        return [keep[i] for i in idx]

    def _summarise(self, responses: list[str]) -> str:
        prompt = self.prompt.render(topic=self.topic[:300] or "（未知）", previous=self._text or "（暂无）",
                                    responses="\n".join(f"- {r[:120]}" for r in responses), max_chars=self.max_chars)
        key = cache_key(self.model.name, self.prompt.id, self.topic, self._text, "\n".join(responses))
        if self.cache is not None:
            hit = self.cache.get_many([key]).get(key)
            if hit is not None:
                return hit
        out = self.model.complete(user(prompt), temperature=0.0, max_tokens=2 * self.max_chars)
        self.calls += 1
        out = (out or "").strip().replace("\n", " ")[: self.max_chars]
        if self.cache is not None and out:
            self.cache.put_many({key: out})
        return out

    def update(self, embeddings: np.ndarray, texts: Sequence[str] | None = None) -> np.ndarray:
        """Fold one step in: EMA of the embeddings, and a new summary when the step has real text."""
        self._ema.update(embeddings, texts)
        responses = self._sample(texts or [])
        if responses:
            new = self._summarise(responses)
            if new:
                self._text = new
                if self.vector == "summary":
                    self._r_summary = np.asarray(self.encoder.encode([new])[0], dtype=np.float32)
            else:
                log.warning("LLM summariser returned an empty summary; keeping the previous one")
        return self.r


def llm_synopsis_factory(model, **kw):
    """A `(dim, decay, topic) -> LLMSynopsis` factory for the simulator (one synopsis per event)."""

    def make(dim: int, decay: float = 0.8, topic: str = "") -> LLMSynopsis:
        return LLMSynopsis(model, dim, decay=decay, topic=topic, **kw)

    return make
