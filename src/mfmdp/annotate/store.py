"""Annotating many events fast, and keeping the labels beside the cached event data.

Two Parquet files per annotator inside a data cache folder (the one `mfmdp data convert` writes):
- `labels__<annotator>.parquet`: one row per response, in the cache's row order: event_id, id,
  labels.<dimension> (int8 label code, -1 unknown; behavior copied from the data) and confidence.
  This is what the simulator and the evaluation read (`read_labels`).
- `label_store/<annotator>__<fingerprint>.parquet`: labels by text hash (64-bit blake2b of the text,
  and of the topic for annotators whose labels depend on it). Identical texts (bare reposts, slogans)
  are labelled once, and a rerun with the same annotator labels nothing at all.
The fingerprint changes whenever the annotator's rules or model change, so stale labels are never reused.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from mfmdp.annotate.base import Annotator
from mfmdp.annotate.registry import fingerprint
from mfmdp.core.atomic import atomic_path
from mfmdp.core.schema import DIMENSIONS, TEXT_DIMENSIONS, Labels

log = logging.getLogger(__name__)

LABELS_PREFIX = "labels__"
STORE_DIR = "label_store"
_CHUNK = 4096  # texts per annotate() call: progress granularity and bounded memory


def annotator_slug(annotator: Annotator | str) -> str:
    """File-name-safe name of an annotator's labels, from its `label_key` (see registry) or its name:
    "offline", "offline_nosnownlp", "distilled_annotator-1a2b3c4d", "llm_openai_gpt-4o-mini"."""
    name = annotator if isinstance(annotator, str) else getattr(annotator, "label_key", None) or annotator.name
    kind, _, rest = name.partition(":")
    if kind == "distilled" and rest:  # the folder's name, and a hash of its path: two models never collide
        directory = Path(rest.rstrip("/")).resolve()
        rest = f"{directory.name}-{hashlib.blake2b(str(directory).encode(), digest_size=4).hexdigest()}"
    slug = kind if not rest else f"{kind}_{rest}"
    return re.sub(r"[^A-Za-z0-9._-]+", "_", slug).strip("_") or "annotator"


def text_keys(texts: Sequence[str], topics: Sequence[str] | None = None) -> np.ndarray:
    """uint64 key per text (and topic, when given)."""
    out = np.empty(len(texts), dtype=np.uint64)
    for i, t in enumerate(texts):
        data = t.encode("utf-8") if topics is None else f"{topics[i]}\x1f{t}".encode("utf-8")
        out[i] = int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "little")
    return out


class LabelStore:
    """Persistent text-hash -> labels table of one annotator (see module doc)."""

    def __init__(self, directory: str | os.PathLike, annotator: Annotator):
        self.directory = Path(directory)
        fp = hashlib.sha256(fingerprint(annotator).encode()).hexdigest()[:12]
        self.path = self.directory / f"{annotator_slug(annotator)}__{fp}.parquet"
        self.keys = np.empty(0, dtype=np.uint64)
        self.codes = {d: np.empty(0, dtype=np.int8) for d in TEXT_DIMENSIONS}
        self.confidence = np.empty(0, dtype=np.float32)
        self._new: list[tuple[np.ndarray, Labels]] = []
        self._index = None
        if self.path.is_file():
            self._read()

    def __len__(self) -> int:
        return len(self.keys) + sum(len(k) for k, _ in self._new)

    def _read(self) -> None:
        import pyarrow.parquet as pq

        try:
            table = pq.read_table(self.path)
            self.keys = table.column("key").to_numpy().astype(np.uint64)
            self.codes = {d: table.column(d).to_numpy().astype(np.int8) for d in TEXT_DIMENSIONS}
            self.confidence = table.column("confidence").to_numpy().astype(np.float32)
        except Exception as err:  # a damaged store only costs a re-annotation
            log.warning("label store %s unreadable (%s): starting empty", self.path, err)
            self.keys = np.empty(0, dtype=np.uint64)

    def _merge(self) -> None:
        if self._new:
            self.keys = np.concatenate([self.keys] + [k for k, _ in self._new])
            for d in TEXT_DIMENSIONS:
                self.codes[d] = np.concatenate([self.codes[d]] + [lab.codes[d] for _, lab in self._new])
            self.confidence = np.concatenate([self.confidence] + [lab.confidence for _, lab in self._new])
            self._new = []
            self._index = None

    def lookup(self, keys: np.ndarray) -> tuple[np.ndarray, Labels]:
        """(found mask, labels) for `keys`; rows not found have code -1."""
        import pandas as pd

        self._merge()
        if self._index is None:
            self._index = pd.Index(self.keys)
            if not self._index.is_unique:
                keep = ~self._index.duplicated(keep="last")
                self.keys = self.keys[keep]
                self.codes = {d: c[keep] for d, c in self.codes.items()}
                self.confidence = self.confidence[keep]
                self._index = pd.Index(self.keys)
        pos = self._index.get_indexer(keys) if len(self.keys) else np.full(len(keys), -1)
        found = pos >= 0
        safe = np.where(found, pos, 0)
        n = len(keys)
        codes = {}
        for d in TEXT_DIMENSIONS:
            col = self.codes[d][safe] if len(self.keys) else np.full(n, -1, np.int8)
            codes[d] = np.where(found, col, -1).astype(np.int8)
        conf = self.confidence[safe] if len(self.keys) else np.zeros(n, np.float32)
        return found, Labels(codes, np.where(found, conf, 0).astype(np.float32))

    def add(self, keys: np.ndarray, labels: Labels) -> None:
        if len(keys) != labels.n:
            raise ValueError(f"{len(keys)} keys for {labels.n} labels")
        if len(keys):
            self._new.append((np.asarray(keys, dtype=np.uint64), labels))
            self._index = None

    def save(self) -> Path:
        import pyarrow as pa
        import pyarrow.parquet as pq

        self._merge()
        self.directory.mkdir(parents=True, exist_ok=True)
        cols = {"key": pa.array(self.keys, type=pa.uint64())}
        for d in TEXT_DIMENSIONS:
            cols[d] = pa.array(self.codes[d], type=pa.int8())
        cols["confidence"] = pa.array(self.confidence, type=pa.float32())
        with atomic_path(self.path) as tmp:
            pq.write_table(pa.table(cols), tmp, compression="zstd")
        return self.path


def unlabelled(labels: Labels) -> np.ndarray:
    """Mask of the items with no label on any text dimension: the annotator failed on them."""
    return np.logical_and.reduce([labels.codes[d] < 0 for d in TEXT_DIMENSIONS])


def uses_topic(annotator: Annotator) -> bool:
    """Whether labels depend on the topic (then the topic is part of the dedup and store keys)."""
    return bool(getattr(annotator, "uses_topic", True))


def annotate_texts(
    annotator: Annotator,
    texts: Sequence[str],
    topics: Sequence[str],
    store: LabelStore | None = None,
    progress: Callable[[int], None] | None = None,
) -> Labels:
    """Label texts (one topic each), each distinct (topic,) text once, reusing and filling `store`.

    Behavior codes are left -1: the caller copies them from the data. `progress(k)` is called with
    the number of distinct texts just labelled.
    """
    if len(topics) != len(texts):
        raise ValueError(f"{len(topics)} topics for {len(texts)} texts")
    topical = uses_topic(annotator)
    index: dict = {}
    inverse = np.empty(len(texts), dtype=np.int64)
    uniq_texts: list[str] = []
    uniq_topics: list[str] = []
    for i, t in enumerate(texts):
        t = t or ""
        key = (topics[i], t) if topical else t
        j = index.get(key)
        if j is None:
            j = index[key] = len(uniq_texts)
            uniq_texts.append(t)
            uniq_topics.append(topics[i])
        inverse[i] = j
    keys = text_keys(uniq_texts, uniq_topics if topical else None)
    if store is not None:
        found, labels = store.lookup(keys)
    else:
        found, labels = np.zeros(len(keys), bool), Labels.empty(len(keys))
        labels.confidence = np.zeros(len(keys), np.float32)
    missing = np.flatnonzero(~found)
    if progress is not None and found.any():
        progress(int(found.sum()))
    if len(missing):
        # Group by topic so each annotate() call has one topic (the protocol's contract).
        order = sorted(missing.tolist(), key=lambda j: uniq_topics[j]) if topical else missing.tolist()
        for start in range(0, len(order), _CHUNK):
            chunk = order[start : start + _CHUNK]
            by_topic: dict[str, list[int]] = {}
            for j in chunk:
                by_topic.setdefault(uniq_topics[j] if topical else "", []).append(j)
            for topic, idx in by_topic.items():
                out = annotator.annotate([uniq_texts[j] for j in idx], topic)
                if out.n != len(idx):
                    raise ValueError(f"annotator {annotator.name!r} returned {out.n} labels for {len(idx)} texts")
                idx_arr = np.asarray(idx)
                for d in TEXT_DIMENSIONS:
                    labels.codes[d][idx_arr] = out.codes[d]
                labels.confidence[idx_arr] = out.confidence
            if progress is not None:
                progress(len(chunk))
        if store is not None:  # items the annotator failed on are asked again next run, never stored
            labelled = missing[~unlabelled(labels.take(missing))]
            store.add(keys[labelled], labels.take(labelled))
    result = labels.take(inverse)
    result.codes["behavior"] = np.full(len(texts), -1, np.int8)
    return result


def annotate_events(
    events: Sequence,
    annotator: Annotator,
    store: LabelStore | None = None,
    show_progress: bool = True,
) -> list[Labels]:
    """Labels per event (aligned with event.table rows), behavior copied from the data."""
    texts: list[str] = []
    topics: list[str] = []
    bounds = [0]
    for e in events:
        t = e.table
        texts.extend("" if x is None else str(x) for x in t.texts)
        topics.extend([e.topic.text or ""] * len(t))
        bounds.append(len(texts))
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    with Progress(
        TextColumn("[bold]annotating[/] {task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        disable=not show_progress,
        transient=True,
    ) as bar:
        task = bar.add_task(f"{annotator.name} (distinct texts)", total=None)
        seen = [0]

        def advance(k: int) -> None:
            seen[0] += k
            bar.update(task, advance=k)

        labels = annotate_texts(annotator, texts, topics, store, advance)
    if store is not None:
        store.save()
    out = []
    for k, e in enumerate(events):
        lab = labels.take(np.arange(bounds[k], bounds[k + 1]))
        lab.codes["behavior"] = np.asarray(e.table.behavior, dtype=np.int8).copy()
        out.append(lab)
    return out


def labels_path(cache_dir: str | os.PathLike, annotator: Annotator | str) -> Path:
    return Path(cache_dir) / f"{LABELS_PREFIX}{annotator_slug(annotator)}.parquet"


def write_labels(
    cache_dir: str | os.PathLike, annotator: Annotator, events: Sequence, labels: Sequence[Labels]
) -> Path:
    """Write `labels__<annotator>.parquet` beside the event data (atomic replace)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    if len(events) != len(labels):
        raise ValueError(f"{len(labels)} label sets for {len(events)} events")
    event_ids, ids = [], []
    for e, lab in zip(events, labels):
        if lab.n != len(e.table):
            raise ValueError(f"event {e.id}: {lab.n} labels for {len(e.table)} responses")
        event_ids.extend([e.id] * lab.n)
        ids.extend(str(x) for x in e.table.ids)
    cols = {"event_id": pa.array(event_ids, pa.string()), "id": pa.array(ids, pa.string())}
    for d in DIMENSIONS:
        cols[f"labels.{d}"] = pa.array(
            np.concatenate([lab.codes[d] for lab in labels]) if labels else np.empty(0, np.int8), pa.int8()
        )
    cols["confidence"] = pa.array(
        np.concatenate([lab.confidence for lab in labels]).astype(np.float32) if labels else np.empty(0, np.float32),
        pa.float32(),
    )
    meta = {"annotator": annotator.name, "fingerprint": fingerprint(annotator), "dimensions": {d: list(v) for d, v in DIMENSIONS.items()}}
    table = pa.table(cols).replace_schema_metadata({"mfmdp.labels": json.dumps(meta, ensure_ascii=False)})
    path = labels_path(cache_dir, annotator)
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp, compression="zstd")
    return path


def read_labels(path: str | os.PathLike) -> dict[str, Labels]:
    """Labels per event id from a `labels__*.parquet` file (or a cache folder with exactly one)."""
    import pyarrow.parquet as pq

    path = Path(path)
    if path.is_dir():
        found = sorted(path.glob(f"{LABELS_PREFIX}*.parquet"))
        if len(found) != 1:
            raise FileNotFoundError(
                f"{path}: expected one {LABELS_PREFIX}*.parquet file, found {len(found)}; name the file"
            )
        path = found[0]
    table = pq.read_table(path)
    missing = [f"labels.{d}" for d in DIMENSIONS if f"labels.{d}" not in table.column_names]
    if missing or "event_id" not in table.column_names:
        raise ValueError(f"{path}: not a labels file (missing columns: {', '.join(missing or ['event_id'])})")
    event_ids = table.column("event_id").to_numpy(zero_copy_only=False)
    codes = {d: table.column(f"labels.{d}").to_numpy().astype(np.int8) for d in DIMENSIONS}
    conf = table.column("confidence").to_numpy().astype(np.float32)
    return {event: Labels({d: c[s:e].copy() for d, c in codes.items()}, conf[s:e].copy())
            for event, s, e in _event_runs(event_ids)}


def read_label_ids(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Response ids per event id of a `labels__*.parquet` file (to check its rows still fit the data)."""
    import pyarrow.parquet as pq

    table = pq.read_table(path, columns=["event_id", "id"])
    ids = table.column("id").to_numpy(zero_copy_only=False)
    return {event: ids[s:e] for event, s, e in _event_runs(table.column("event_id").to_numpy(zero_copy_only=False))}


def _event_runs(event_ids: np.ndarray) -> list[tuple[str, int, int]]:
    """(event id, start, end) of each run of equal event ids (rows of one event are contiguous)."""
    if len(event_ids) == 0:
        return []
    change = np.flatnonzero(event_ids[1:] != event_ids[:-1]) + 1
    starts = np.concatenate([[0], change])
    ends = np.concatenate([change, [len(event_ids)]])
    return [(str(event_ids[s]), int(s), int(e)) for s, e in zip(starts, ends)]


def event_labels(events: Sequence, annotator: Annotator | str | None, data_path: Path | None = None,
                 progress: bool = True, store_dir: str | os.PathLike | None = None) -> list[Labels]:
    """Labels per event, behavior always from the data. `annotator` None or "truth": the labels stored
    with the events (synthetic ground truth or a generic file's `labels`). Otherwise a
    `labels__<annotator>.parquet` beside cached data when it matches the data, else the annotator runs,
    reusing and filling the label store in `store_dir` when given."""
    if annotator is None or annotator == "truth":
        return [_stored_labels(e) for e in events]
    if isinstance(annotator, str):
        from mfmdp.annotate.registry import get_annotator

        annotator = get_annotator(annotator)
    path = labels_path(data_path, annotator) if data_path is not None and Path(data_path).is_dir() else None
    if path is not None and path.is_file():
        # Label files outlive cache rebuilds: use one only when its rows are exactly these responses.
        stored, ids = read_labels(path), read_label_ids(path)
        if all(e.id in ids and np.array_equal(ids[e.id], np.asarray(e.table.ids)) for e in events):
            log.info("labels from %s", path)
            return [_with_behavior(stored[e.id], e) for e in events]
        log.warning("%s does not match the data's responses (the data changed since labelling): annotating "
                    "again", path)
    store = LabelStore(store_dir, annotator) if store_dir is not None else None
    return annotate_events(events, annotator, store=store, show_progress=progress)


def _stored_labels(event) -> Labels:
    lab = event.metadata.get("labels")
    if not isinstance(lab, Labels):
        raise ValueError(f"event {event.id!r} ({event.path or 'no file'}): no stored labels; use an annotator "
                         f"(--annotator offline) instead of 'truth'")
    return _with_behavior(lab, event)


def _with_behavior(labels: Labels, event) -> Labels:
    """A copy of `labels` whose behavior is the data's (an action the data shows, never guessed)."""
    lab = labels.take(np.arange(labels.n))
    lab.codes["behavior"] = np.asarray(event.table.behavior, dtype=np.int8).copy()
    return lab
