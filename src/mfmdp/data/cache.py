"""Columnar Parquet cache of loaded events (`mfmdp data convert PATH OUT`), reused by `load(OUT)`.

Layout of OUT: `responses.parquet` (one row per response of every event, events contiguous, in load
order) and `index.json` (per event: id, format, row offset and count, topic, signals, metadata,
skipped counts; plus the source path and the mtime/size of every source file, so that a stale cache
is detected and the source reloaded instead). Events read from a cache are `CachedEvent`s: their
`table` is built straight from the columns and `responses` only materialises on first access, so
the hot path never builds per-response Python objects.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import asdict
from datetime import datetime, timezone
from functools import cached_property
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from mfmdp.core.schema import DIMENSIONS, Labels
from mfmdp.data.assemble import PROFILE_FIELDS
from mfmdp.data.dates import parse_time
from mfmdp.data.errors import DataFormatError
from mfmdp.core.records import BEHAVIORS, PROFILE_FEATURES, Event, Profile, Response, ResponseTable, Signal, SourcePost

log = logging.getLogger(__name__)

MARKER = "mfmdp-cache"
VERSION = 1
INDEX = "index.json"
RESPONSES = "responses.parquet"
_INT_PROFILE = ("followers", "friends", "statuses", "favourites", "bi_followers", "verified_type")


def is_cache(path: Path) -> bool:
    index = Path(path) / INDEX
    if not index.is_file():
        return False
    try:
        with open(index, encoding="utf-8") as f:
            head = f.read(200)
    except OSError:
        return False
    return MARKER in head


def source_of(path: Path) -> str | None:
    """The source path a cache was converted from (None when unknown)."""
    try:
        with open(Path(path) / INDEX, encoding="utf-8") as f:
            return json.load(f).get("source")
    except (OSError, json.JSONDecodeError) as e:
        raise DataFormatError(Path(path) / INDEX, f"unreadable cache index: {e}") from None


def is_within(path: Path, folder: Path) -> bool:
    """Whether resolved `path` is `folder` or lies under it."""
    return path == folder or folder in path.parents


def names_itself(cache: Path, source: str | os.PathLike | None) -> bool:
    """Whether a cache's recorded source is the cache folder itself (or inside it): following it would
    loop forever. Older versions wrote such caches for `mfmdp data convert X X`."""
    return source is not None and is_within(Path(source).resolve(), Path(cache).resolve())


def original_source(path: str | os.PathLike) -> Path:
    """What a cache at `path` should record as its source: a cache's own source, else `path` itself."""
    path = Path(path)
    if is_cache(path):
        src = source_of(path)
        if src is not None and not names_itself(path, src):
            return Path(src)
    return path


def check_cache_target(out: str | os.PathLike, source: str | os.PathLike | None = None) -> None:
    """ValueError unless writing a cache to `out` is safe: `out` is absent, an empty folder or an mfmdp
    cache, and neither is nor contains nor lies inside `source` (files the user owns are never replaced,
    and a cache inside its source would be read back as data)."""
    out = Path(out).resolve()
    if source is not None:
        src = Path(source).resolve()
        if src == out:
            raise ValueError(f"{out}: is the source data itself; write the cache to another folder")
        if is_within(src, out):
            raise ValueError(f"{out}: contains the source {src}; write the cache to a folder outside it")
        if src.is_dir() and is_within(out, src):
            raise ValueError(f"{out}: lies inside the source folder {src}, where it would be read back as data; "
                             "write the cache to a folder outside it")
    if out.exists() and not (out.is_dir() and (is_cache(out) or not any(out.iterdir()))):
        raise ValueError(f"{out}: exists and is neither empty nor an mfmdp cache; refusing to write over it "
                         "(choose a new folder)")


# ------------------------------------------------------------------------------------ source files
def source_fingerprint(source: Path) -> list[list]:
    """[relative path, mtime_ns, size] of every file under `source` (or the file itself)."""
    source = Path(source)
    if source.is_file():
        st = source.stat()
        return [[source.name, st.st_mtime_ns, st.st_size]]
    out = []
    for root, dirs, files in os.walk(source):
        dirs.sort()
        for name in sorted(files):
            p = Path(root) / name
            st = p.stat()
            out.append([str(p.relative_to(source)), st.st_mtime_ns, st.st_size])
    return out


def stale_reason(index: dict, cache: Path | None = None) -> str | None:
    """Why the cache no longer matches its source, or None when it does (or the source is gone)."""
    src = Path(index["source"])
    if not src.exists():
        return None  # a cache is allowed to outlive its source (e.g. copied to another machine)
    if cache is not None and names_itself(cache, src):
        return None  # a cache that names itself has no other source to fall back to
    now = source_fingerprint(src)
    if now != index["source_files"]:
        old = {p: (m, s) for p, m, s in index["source_files"]}
        new = {p: (m, s) for p, m, s in now}
        changed = sorted(p for p in set(old) | set(new) if old.get(p) != new.get(p))
        return f"{len(changed)} source file(s) changed since conversion, e.g. {changed[0]}"
    return None


# ------------------------------------------------------------------------------------------ writing
def _json_safe(obj: object) -> object:
    return json.loads(json.dumps(obj, ensure_ascii=False, default=str))


def _profile_json(p: Profile | None) -> dict | None:
    if p is None:
        return None
    d = {k: v for k, v in asdict(p).items() if v is not None}
    if "created_at" in d:
        d["created_at"] = d["created_at"].isoformat()
    return d


def _event_columns(events: list[Event]) -> dict[str, list]:
    cols: dict[str, list] = {k: [] for k in ("id", "time", "user_id", "text", "behavior", "parent", "reposts",
                                             "comments", "likes", "has_profile")}
    for f in PROFILE_FIELDS:
        cols[f"profile.{f}"] = []
    with_labels = any(isinstance(e.metadata.get("labels"), Labels) for e in events)
    if with_labels:
        for d in DIMENSIONS:
            cols[f"labels.{d}"] = []
    for e in events:
        for r in e.responses:
            cols["id"].append(r.id)
            cols["time"].append(r.time.timestamp())
            cols["user_id"].append(r.user_id)
            cols["text"].append(r.text)
            cols["behavior"].append(BEHAVIORS.index(r.behavior))
            cols["parent"].append(r.parent)
            cols["reposts"].append(r.reposts)
            cols["comments"].append(r.comments)
            cols["likes"].append(r.likes)
            p = r.profile
            cols["has_profile"].append(p is not None)
            for f in PROFILE_FIELDS:
                v = getattr(p, f) if p is not None else None
                cols[f"profile.{f}"].append(v.timestamp() if isinstance(v, datetime) else v)
        if with_labels:
            lab = e.metadata.get("labels")
            for d in DIMENSIONS:
                if isinstance(lab, Labels) and lab.n == len(e.responses):
                    cols[f"labels.{d}"].extend(lab.codes[d].tolist())
                else:
                    cols[f"labels.{d}"].extend([-1] * len(e.responses))
    return cols


def _arrow_table(cols: dict[str, list]):
    import pyarrow as pa

    types = {"id": pa.string(), "time": pa.float64(), "user_id": pa.string(), "text": pa.string(),
             "behavior": pa.int8(), "parent": pa.string(), "reposts": pa.int64(), "comments": pa.int64(),
             "likes": pa.int64(), "has_profile": pa.bool_()}
    for f in PROFILE_FIELDS:
        types[f"profile.{f}"] = (pa.int64() if f in _INT_PROFILE else pa.bool_() if f == "verified"
                                 else pa.float64() if f == "created_at" else pa.string())
    for d in DIMENSIONS:
        types[f"labels.{d}"] = pa.int8()
    return pa.table({k: pa.array(v, type=types[k]) for k, v in cols.items()})


def write_cache(events: Iterable[Event], out: str | os.PathLike, source: str | os.PathLike | None = None) -> Path:
    """Write `events` as a cache folder `out`. `source`: where they came from.

    Only the cache's own files are replaced (atomically); anything else in `out` (label stores, LLM and
    encoder caches) is kept. ValueError when `out` is not safe to write (see `check_cache_target`)."""
    import pyarrow.parquet as pq

    events = list(events)
    out = Path(out)
    check_cache_target(out, source)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        table = _arrow_table(_event_columns(events))
        pq.write_table(table, tmp / RESPONSES, compression="zstd")
        src = Path(source).resolve() if source is not None else None
        index = {"format": MARKER, "version": VERSION, "source": str(src) if src else None,
                 "source_files": source_fingerprint(src) if src and src.exists() else [],
                 "rows": table.num_rows, "events": _index_entries(events)}
        with open(tmp / INDEX, "w", encoding="utf-8") as f:
            json.dump(index, f, ensure_ascii=False)
        _install(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # our own temporary folder (gone already when renamed)
    return out


def _index_entries(events: list[Event]) -> list[dict]:
    entries, offset = [], 0
    for e in events:
        meta = {k: v for k, v in e.metadata.items() if k != "labels"}
        entries.append({
            "id": e.id, "format": e.format, "offset": offset, "count": len(e.responses),
            "has_labels": isinstance(e.metadata.get("labels"), Labels),
            "topic": {"id": e.topic.id, "time": e.topic.time.isoformat(), "user_id": e.topic.user_id,
                      "text": e.topic.text, "profile": _profile_json(e.topic.profile)},
            "signals": [{"time": s.time.isoformat(), "source": s.source, "text": s.text} for s in e.signals],
            "metadata": _json_safe(meta), "skipped": dict(e.skipped), "path": e.path,
        })
        offset += len(e.responses)
    return entries


def _install(tmp: Path, out: Path) -> None:
    """Move the freshly written cache files from `tmp` into `out`, keeping everything else there."""
    if out.is_dir() and not any(out.iterdir()):
        out.rmdir()
    if not out.exists():
        os.replace(tmp, out)
        return
    os.replace(tmp / RESPONSES, out / RESPONSES)
    os.replace(tmp / INDEX, out / INDEX)  # last: the index is what makes the new rows visible


# ------------------------------------------------------------------------------------------ reading
class LazyResponses(Sequence):
    """A read-only list of Responses built on first access (the cache's hot path never needs them)."""

    def __init__(self, n: int, build: Callable[[], list[Response]]):
        self._n, self._build, self._items = n, build, None

    def _list(self) -> list[Response]:
        if self._items is None:
            self._items, self._build = self._build(), None
        return self._items

    def __len__(self) -> int:
        return self._n

    def __getitem__(self, i):
        return self._list()[i]

    def __iter__(self):
        return iter(self._list())

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Sequence) and list(self) == list(other)

    def __repr__(self) -> str:
        state = "built" if self._items is not None else "not built yet"
        return f"LazyResponses({self._n} responses, {state})"


def profile_feature_matrix(cols: dict[str, np.ndarray], has_profile: np.ndarray) -> np.ndarray:
    """Vectorised `records.profile_features` over profile columns (nullable values as float NaN)."""
    n = len(has_profile)

    def lg(x: np.ndarray) -> np.ndarray:
        x = x.astype(np.float64)
        return np.where(np.isnan(x), 0.0, np.log1p(np.maximum(np.nan_to_num(x), 0.0)) / 10.0)

    vt = cols["verified_type"].astype(np.float64)
    gender = cols["gender"]
    desc = cols["description"]
    feats = {
        "has_profile": np.ones(n),
        "log_followers": lg(cols["followers"]),
        "log_friends": lg(cols["friends"]),
        "log_statuses": lg(cols["statuses"]),
        "verified": np.asarray([v is not None and bool(v) for v in cols["verified"]], dtype=np.float64),
        "verified_person": (vt == 0).astype(np.float64),
        "verified_org": ((vt >= 1) & (vt <= 7)).astype(np.float64),
        "gender_m": (gender == "m").astype(np.float64),
        "gender_f": (gender == "f").astype(np.float64),
        "has_description": np.asarray([bool(d) for d in desc], dtype=np.float64),
    }
    out = np.stack([feats[k] for k in PROFILE_FEATURES], axis=1).astype(np.float32)
    out[~has_profile] = 0.0
    return out


class CachedEvent(Event):
    """An Event whose columnar `table` comes straight from the cache's Parquet columns.

    `_rows` is this event's zero-copy slice of the cached Arrow table; numpy columns are made from it
    on first use, so loading a cache costs one Parquet read however many events it holds.
    """

    _rows: object  # pyarrow.Table slice

    @cached_property
    def _columns(self) -> dict[str, np.ndarray]:
        return _numpy_columns(self._rows)

    @cached_property
    def table(self) -> ResponseTable:
        c = self._columns
        has = c["has_profile"]
        return ResponseTable(
            ids=c["id"], times=c["time"], user_ids=c["user_id"], texts=c["text"],
            behavior=c["behavior"].astype(np.int8), parents=c["parent"],
            profiles=profile_feature_matrix({f: c[f"profile.{f}"] for f in PROFILE_FIELDS}, has)
            if has.any() else np.zeros((len(has), len(PROFILE_FEATURES)), dtype=np.float32),
            likes=c["likes"].astype(np.float64),
        )


def _nullable(v):
    return None if v is None or (isinstance(v, float) and math.isnan(v)) else v


def _build_responses(c: dict) -> list[Response]:
    n = len(c["id"])
    utc = timezone.utc
    fromts = datetime.fromtimestamp
    has = c["has_profile"]
    behaviors = [BEHAVIORS[b] for b in c["behavior"].tolist()]
    times = c["time"].tolist()
    ints = {k: [_nullable(v) for v in c[k].tolist()] for k in ("reposts", "comments", "likes")}
    out = []
    for i in range(n):
        prof = None
        if has[i]:
            kw = {}
            for f in PROFILE_FIELDS:
                v = _nullable(c[f"profile.{f}"][i])
                if v is not None:
                    if f in _INT_PROFILE:
                        v = int(v)
                    elif f == "created_at":
                        v = fromts(v, utc)
                    elif f == "verified":
                        v = bool(v)
                kw[f] = v
            prof = Profile(**kw)
        likes = ints["likes"][i]
        out.append(Response(
            c["id"][i], fromts(times[i], utc), c["user_id"][i], c["text"][i], behaviors[i], c["parent"][i],
            None if ints["reposts"][i] is None else int(ints["reposts"][i]),
            None if ints["comments"][i] is None else int(ints["comments"][i]),
            None if likes is None else int(likes), prof))
    return out


def _numpy_columns(table) -> dict[str, np.ndarray]:
    import pyarrow as pa

    out = {}
    for name in table.column_names:
        col = table.column(name)
        if pa.types.is_string(col.type) or pa.types.is_boolean(col.type) and col.null_count:
            out[name] = col.to_numpy(zero_copy_only=False)
        elif pa.types.is_boolean(col.type):
            out[name] = col.to_numpy(zero_copy_only=False).astype(bool)
        else:  # integers with nulls become float NaN
            out[name] = col.to_numpy(zero_copy_only=False) if not col.null_count else \
                col.cast(pa.float64()).fill_null(float("nan")).to_numpy()
    return out


def _profile_from_json(d: dict | None) -> Profile | None:
    if d is None:
        return None
    d = dict(d)
    if d.get("created_at"):
        d["created_at"] = parse_time(d["created_at"])
    return Profile(**d)


def load_cache(path: str | os.PathLike, check_stale: bool = True) -> list[Event]:
    """Events of a cache folder; a stale cache (source changed) is reported and the source reloaded."""
    import pyarrow.parquet as pq

    path = Path(path)
    try:
        with open(path / INDEX, encoding="utf-8") as f:
            index = json.load(f)
    except (OSError, json.JSONDecodeError) as e:
        raise DataFormatError(path / INDEX, f"unreadable cache index: {e}") from None
    if index.get("format") != MARKER or index.get("version") != VERSION:
        raise DataFormatError(path / INDEX, f"not an mfmdp cache of version {VERSION}", field="version")
    if check_stale and index.get("source"):
        reason = stale_reason(index, path)
        if reason is not None:
            from mfmdp.data.loading import load

            log.warning("cache %s is stale (%s): loading the source %s instead; re-run `mfmdp data convert`",
                        path, reason, index["source"])
            return load(index["source"], use_cache=False)
    rows = pq.read_table(path / RESPONSES)
    total = rows.num_rows
    if index.get("rows", total) != total:
        raise DataFormatError(path / INDEX, f"the index expects {index['rows']} rows, {RESPONSES} has {total} "
                              "(an interrupted conversion?); run `mfmdp data convert` again", field="rows")
    events: list[Event] = []
    for i, e in enumerate(index["events"]):
        a, n = e["offset"], e["count"]
        if a + n > total:
            raise DataFormatError(path / INDEX, f"rows {a}..{a + n} beyond the {total} cached rows", f"events[{i}]",
                                  "offset")
        t = e["topic"]
        ev = CachedEvent(
            id=e["id"], format=e["format"],
            topic=SourcePost(t["id"], parse_time(t["time"]), t["user_id"], t["text"], _profile_from_json(t["profile"])),
            responses=[],
            signals=[Signal(parse_time(s["time"]), s["source"], s["text"]) for s in e["signals"]],
            metadata=dict(e["metadata"]), skipped=dict(e["skipped"]), path=e.get("path"),
        )
        ev._rows = rows.slice(a, n)
        ev.responses = LazyResponses(n, lambda ev=ev: _build_responses(ev._columns))
        if e.get("has_labels"):
            labels = _numpy_columns(ev._rows.select([f"labels.{d}" for d in DIMENSIONS]))
            ev.metadata["labels"] = Labels({d: labels[f"labels.{d}"].astype(np.int8) for d in DIMENSIONS})
        events.append(ev)
    return events
