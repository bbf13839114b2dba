"""Text for the neural policy, realised by retrieval from the TRAINING events' responses only.

Rule: an agent that chose (state y, behavior b) gets a pool response annotated with exactly (y, b)
(falling back to the same state, then to the whole pool, only when no such response exists), drawn
uniformly among the `top_k` nearest to the query by cosine similarity. The query is what the policy
sees of the crowd (its context vector, e.g. the synopsis r_{t-1}) plus the topic's embedding, so texts
fit the event. The pool's rows are grouped by (y, b) and stored contiguously: a step costs one matrix
product per requested group, with no Python loop over agents.

Retrieved texts come with the labels the pool's annotator gave them, so six of the eight evaluated
dimensions (sentiment, stance, belief, rumor, subjectivity, intent) measure the retrieval, not the
policy; state and behavior are the policy's own choices.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file, save_file

from mfmdp.core.atomic import atomic_write_json
from mfmdp.core.records import BEHAVIORS
from mfmdp.core.schema import DIMENSIONS, STATES, Labels

log = logging.getLogger(__name__)
_BLAS = None


def _one_blas_thread():
    """BLAS limited to one thread: a step's similarity scan is one matrix-vector product, and on a
    busy 2-core machine OpenBLAS threads waiting for each other made it 4x slower (measured)."""
    global _BLAS
    if _BLAS is None:
        from threadpoolctl import ThreadpoolController

        _BLAS = ThreadpoolController()
    return _BLAS.limit(limits=1, user_api="blas")

S, B = len(STATES), len(BEHAVIORS)
POOL_ARRAYS = "pool.safetensors"
POOL_META = "pool.json"


@dataclass
class RetrievalPool:
    texts: list[str]  # N, grouped: rows of group g = y*B + b lie in offsets[g]:offsets[g+1]
    labels: Labels  # N, the pool annotator's labels (state and behavior included)
    embeddings: np.ndarray  # float32 [N, D], L2-normalised text embeddings (also feed the synopsis)
    popularity: np.ndarray  # float32 [N]: how often the text occurred in the training responses
    offsets: np.ndarray  # int64 [S*B + 1]
    encoder: str = ""  # name of the encoder that made `embeddings`
    meta: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.texts)

    @property
    def dim(self) -> int:
        return int(self.embeddings.shape[1])

    # --- building -----------------------------------------------------------------------------
    @classmethod
    def build(
        cls,
        texts: list[str],
        labels: Labels,
        embeddings: np.ndarray,
        encoder: str = "",
        max_per_group: int | None = None,
        seed: int = 0,
    ) -> "RetrievalPool":
        """Pool of the given (training) responses. Rows with an unknown state or behavior are
        dropped (counted in `meta`); duplicates of (text, y, b) collapse into one row whose
        popularity is the count; groups above `max_per_group` keep their most popular rows (ties
        broken by a seeded shuffle)."""
        n = len(texts)
        embeddings = np.asarray(embeddings, dtype=np.float32)
        if labels.n != n or len(embeddings) != n:
            raise ValueError(f"pool: {n} texts, {labels.n} labels and {len(embeddings)} embeddings must match")
        y = labels.codes["state"].astype(np.int64)
        b = labels.codes["behavior"].astype(np.int64)
        known = (y >= 0) & (b >= 0)
        group = np.where(known, y * B + b, -1)
        first: dict[tuple[str, int], int] = {}
        count = np.zeros(n, dtype=np.float32)
        for i in np.flatnonzero(known):
            key = (texts[i], int(group[i]))
            k = first.setdefault(key, i)
            count[k] += 1
        keep = np.array(sorted(first.values()), dtype=np.int64)
        rng = np.random.default_rng(seed)
        chosen = []
        for g in range(S * B):
            rows = keep[group[keep] == g]
            if max_per_group is not None and len(rows) > max_per_group:
                rows = rows[rng.permutation(len(rows))]
                rows = rows[np.argsort(-count[rows], kind="stable")[:max_per_group]]
                rows.sort()
            chosen.append(rows)
        idx = np.concatenate(chosen) if chosen else np.zeros(0, dtype=np.int64)
        offsets = np.r_[0, np.cumsum([len(r) for r in chosen])].astype(np.int64)
        meta = {
            "responses": n,
            "dropped_unknown_label": int((~known).sum()),
            "duplicates_merged": int(known.sum() - len(keep)),
            "capped": int(len(keep) - len(idx)),
        }
        log.info("retrieval pool: %d rows from %d responses (%s)", len(idx), n, meta)
        return cls(
            texts=[texts[i] for i in idx],
            labels=labels.take(idx),
            embeddings=np.ascontiguousarray(embeddings[idx]),
            popularity=count[idx],
            offsets=offsets,
            encoder=encoder,
            meta=meta,
        )

    # --- querying -----------------------------------------------------------------------------
    def group_rows(self, y: int, b: int) -> slice:
        g = y * B + b
        return slice(int(self.offsets[g]), int(self.offsets[g + 1]))

    def _fallback(self, y: int, b: int) -> slice | np.ndarray:
        rows = self.group_rows(y, b)
        if rows.stop > rows.start:
            return rows
        same_state = slice(int(self.offsets[y * B]), int(self.offsets[y * B + B]))
        if same_state.stop > same_state.start:
            return same_state
        return slice(0, len(self))

    def retrieve(
        self,
        states: np.ndarray,
        behaviors: np.ndarray,
        query: np.ndarray | None,
        rng: np.random.Generator,
        top_k: int = 16,
    ) -> np.ndarray:
        """int64 [n]: a pool row per agent (see the module docstring). `query` [D] is shared by the
        step's agents; None or a zero vector draws uniformly within the (y, b) group."""
        if len(self) == 0:
            raise ValueError("retrieval pool is empty: build it from annotated training responses")
        states = np.asarray(states, dtype=np.int64)
        behaviors = np.asarray(behaviors, dtype=np.int64)
        out = np.empty(len(states), dtype=np.int64)
        q = None
        if query is not None:
            q = np.asarray(query, dtype=np.float32)
            if q.shape != (self.dim,):
                raise ValueError(f"retrieval query has shape {q.shape}, the pool's embeddings are [{self.dim}]")
            if not np.isfinite(q).all() or float(np.linalg.norm(q)) < 1e-9:
                q = None
        group = states * B + behaviors
        with _one_blas_thread():
            self._pick(group, q, rng, top_k, out)
        return out

    def _pick(self, group: np.ndarray, q, rng: np.random.Generator, top_k: int, out: np.ndarray) -> None:
        for g in np.unique(group):
            agents = np.flatnonzero(group == g)
            rows = self._fallback(int(g) // B, int(g) % B)
            lo = rows.start
            size = rows.stop - rows.start
            if q is None or size <= top_k:
                pick = rng.integers(0, size, size=len(agents))
            else:
                best = self._nearest(rows, q, top_k)
                pick = best[rng.integers(0, top_k, size=len(agents))]
            out[agents] = lo + pick

    def _nearest(self, rows: slice, q: np.ndarray, top_k: int) -> np.ndarray:
        """Offsets (within `rows`) of the top_k rows by cosine similarity to q (exact)."""
        sims = self.embeddings[rows] @ q
        return np.argpartition(-sims, top_k - 1)[:top_k]

    # --- persistence --------------------------------------------------------------------------
    def save(self, directory: str | Path) -> None:
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        arrays = {
            "embeddings": self.embeddings,
            "popularity": self.popularity.astype(np.float32),
            "offsets": self.offsets.astype(np.int64),
            "confidence": self.labels.confidence.astype(np.float32),
        }
        for dim in DIMENSIONS:
            arrays[f"label.{dim}"] = self.labels.codes[dim].astype(np.int8)
        save_file(arrays, str(d / POOL_ARRAYS))
        meta = {"encoder": self.encoder, "meta": self.meta, "texts": self.texts}
        atomic_write_json(d / POOL_META, meta, indent=None)

    @classmethod
    def load(cls, directory: str | Path) -> "RetrievalPool":
        d = Path(directory)
        for name in (POOL_ARRAYS, POOL_META):
            if not (d / name).is_file():
                raise FileNotFoundError(f"retrieval pool: {d / name} is missing")
        arrays = load_file(str(d / POOL_ARRAYS))
        meta = json.loads((d / POOL_META).read_text(encoding="utf-8"))
        labels = Labels({dim: arrays[f"label.{dim}"] for dim in DIMENSIONS}, arrays["confidence"])
        pool = cls(
            texts=list(meta["texts"]),
            labels=labels,
            embeddings=arrays["embeddings"],
            popularity=arrays["popularity"],
            offsets=arrays["offsets"],
            encoder=meta.get("encoder", ""),
            meta=meta.get("meta", {}),
        )
        if len(pool.texts) != len(pool.embeddings) or pool.offsets[-1] != len(pool.texts):
            raise ValueError(f"retrieval pool {d}: texts, embeddings and offsets disagree (corrupt files?)")
        return pool
