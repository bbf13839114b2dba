"""The generic event format: JSONL (one record per line) or CSV, many events per file.

Every record carries `event_id` and a `kind`:
- "source"   (at most one per event): id, time, user_id, text, optional profile, metadata;
- "response" (the default): id, time, user_id, text, behavior ("share"|"comment"), optional parent,
  reposts, comments, likes, profile (Profile field names), labels ({dimension: label name});
- "signal":  time, source, text (an exogenous message: official clarification, debunk, ...).
Times are ISO-8601 (an offset is recommended; without one China time is assumed, as for Weibo) or
unix seconds. CSV uses the same columns with nested fields flattened: `profile.followers`,
`labels.state`, `metadata.<key>` (JSON-encoded when not a string).
Labels are returned in `event.metadata["labels"]` as a `Labels` aligned with `event.responses`.
"""

from __future__ import annotations

import csv
import json
import logging
import os
from collections import Counter
from dataclasses import asdict
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from mfmdp.core.atomic import atomic_path
from mfmdp.core.records import BEHAVIORS, Event, Response, Signal, SourcePost
from mfmdp.core.schema import DIMENSIONS, Labels, label_index
from mfmdp.data.assemble import (PROFILE_FIELDS, as_int, as_str, assemble_event, normalise_text, profile_from_fields,
                                 time_or_skip)
from mfmdp.data.dates import parse_time
from mfmdp.data.errors import DataFormatError
from mfmdp.data.jsonl import iter_jsonl

log = logging.getLogger(__name__)

FORMAT = "generic"
SUFFIXES = (".jsonl", ".ndjson", ".csv")
KINDS = ("source", "response", "signal")
BEHAVIOR_ALIASES = {"share": "share", "repost": "share", "retweet": "share", "comment": "comment", "reply": "comment"}
_KNOWN_KEYS = {"event_id", "kind", "id", "time", "user_id", "text", "behavior", "parent", "reposts", "comments",
               "likes", "profile", "labels", "metadata", "source"}
CSV_COLUMNS: tuple[str, ...] = (
    ("event_id", "kind", "id", "time", "user_id", "text", "behavior", "parent", "reposts", "comments", "likes",
     "source")
    + tuple(f"profile.{f}" for f in PROFILE_FIELDS)
    + tuple(f"labels.{d}" for d in DIMENSIONS)
)


# ----------------------------------------------------------------------------------------- writing
def _profile_dict(profile) -> dict | None:
    if profile is None:
        return None
    d = {k: v for k, v in asdict(profile).items() if v is not None}
    if "created_at" in d:
        d["created_at"] = d["created_at"].isoformat()
    return d


def _labels_of(event: Event) -> Labels | None:
    labels = event.metadata.get("labels")
    if isinstance(labels, Labels) and labels.n == len(event.responses):
        return labels
    return None


def event_records(event: Event) -> Iterator[dict]:
    """The generic records of one event: its source, its signals, then its responses."""
    t = event.topic
    src = {"event_id": event.id, "kind": "source", "id": t.id, "time": t.time.isoformat(), "user_id": t.user_id,
           "text": t.text}
    if t.profile is not None:
        src["profile"] = _profile_dict(t.profile)
    meta = {k: v for k, v in event.metadata.items() if k != "labels"}
    if meta:
        src["metadata"] = json.loads(json.dumps(meta, ensure_ascii=False, default=str))
    yield src
    for s in event.signals:
        yield {"event_id": event.id, "kind": "signal", "time": s.time.isoformat(), "source": s.source, "text": s.text}
    labels = _labels_of(event)
    names = {d: labels.names(d) for d in DIMENSIONS} if labels is not None else None
    for i, r in enumerate(event.responses):
        rec = {"event_id": event.id, "kind": "response", "id": r.id, "time": r.time.isoformat(),
               "user_id": r.user_id, "text": r.text, "behavior": r.behavior}
        for k in ("parent", "reposts", "comments", "likes"):
            v = getattr(r, k)
            if v is not None:
                rec[k] = v
        if r.profile is not None:
            rec["profile"] = _profile_dict(r.profile)
        if names is not None:
            lab = {d: names[d][i] for d in DIMENSIONS if names[d][i] is not None}
            if lab:
                rec["labels"] = lab
        yield rec


def _flatten(rec: dict) -> dict:
    row: dict = {}
    for k, v in rec.items():
        if k in ("profile", "labels", "metadata") and isinstance(v, dict):
            for kk, vv in v.items():
                row[f"{k}.{kk}"] = vv if (k != "metadata" or isinstance(vv, str)) else json.dumps(vv, ensure_ascii=False)
        else:
            row[k] = v
    return row


def write_events(events: Iterable[Event], path: str | os.PathLike) -> Path:
    """Write events in the generic format; `.csv` gives CSV, anything else JSONL. Atomic (temp + rename)."""
    path = Path(path)
    with atomic_path(path) as tmp:
        _write_records(events, path.suffix.lower() == ".csv", tmp)
    return path


def _write_records(events: Iterable[Event], as_csv: bool, tmp: Path) -> None:
    if as_csv:
        rows = [_flatten(rec) for ev in events for rec in event_records(ev)]
        extra = sorted({k for row in rows for k in row} - set(CSV_COLUMNS))
        with open(tmp, "w", encoding="utf-8", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(CSV_COLUMNS) + extra)
            w.writeheader()
            for row in rows:
                w.writerow({k: ("" if v is None else v) for k, v in row.items()})
    else:
        with open(tmp, "w", encoding="utf-8") as f:
            for ev in events:
                for rec in event_records(ev):
                    f.write(json.dumps(rec, ensure_ascii=False))
                    f.write("\n")


# ----------------------------------------------------------------------------------------- reading


def _unflatten(row: dict, path: Path, lineno: int) -> dict:
    rec: dict = {}
    for k, v in row.items():
        if k is None:
            raise DataFormatError(path, "more values than header columns", f"line {lineno}")
        if v is None or v == "":
            if k == "text":
                rec[k] = ""
            continue
        if "." in k:
            head, sub = k.split(".", 1)
            if head == "metadata":
                try:
                    v = json.loads(v)
                except json.JSONDecodeError:
                    pass  # a plain string value
            rec.setdefault(head, {})[sub] = v
        else:
            rec[k] = v
    return rec


def _iter_csv(path: Path) -> Iterator[tuple[int, dict]]:
    with open(path, encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        if reader.fieldnames is None or "event_id" not in reader.fieldnames:
            raise DataFormatError(path, "CSV header lacks the required column", "header", "event_id")
        for row in reader:
            yield reader.line_num, _unflatten(row, path, reader.line_num)


def iter_records(path: str | os.PathLike) -> Iterator[tuple[int, dict]]:
    """(line number, record) pairs of a generic JSONL or CSV file."""
    path = Path(path)
    return _iter_csv(path) if path.suffix.lower() == ".csv" else iter_jsonl(path)


class _Pending:
    """One event's records while a file is read."""

    def __init__(self) -> None:
        self.topic: SourcePost | None = None
        self.metadata: dict = {}
        self.responses: list[Response] = []
        self.labels: list[dict | None] = []
        self.signals: list[Signal] = []
        self.skipped: Counter = Counter()


def _labels_codes(lab: object, path: Path, where: str) -> dict | None:
    if lab is None:
        return None
    if not isinstance(lab, dict):
        raise DataFormatError(path, f"expected an object {{dimension: label}}, got {type(lab).__name__}", where, "labels")
    out = {}
    for dim, name in lab.items():
        try:
            out[dim] = label_index(dim, name)
        except ValueError as e:
            raise DataFormatError(path, str(e), where, f"labels.{dim}") from None
    return out


def _required_time(rec: dict, path: Path, where: str):
    if "time" not in rec or rec["time"] is None:
        raise DataFormatError(path, "required field is missing", where, "time")
    return rec["time"]


def _parse_record(rec: dict, pend: _Pending, path: Path, where: str) -> None:
    kind = rec.get("kind") or "response"
    if kind not in KINDS:
        raise DataFormatError(path, f"unknown kind {kind!r}; expected one of {'|'.join(KINDS)}", where, "kind")
    profile = rec.get("profile")
    if profile is not None and not isinstance(profile, dict):
        raise DataFormatError(path, f"expected an object, got {type(profile).__name__}", where, "profile")
    if kind == "signal":
        t_raw = _required_time(rec, path, where)
        try:
            t = parse_time(t_raw)
        except ValueError as e:
            raise DataFormatError(path, str(e), where, "time") from None
        text = as_str(rec.get("text"), path, where, "text", required=True)
        pend.signals.append(Signal(t, as_str(rec.get("source"), path, where, "source") or "", text))
        return
    rid = as_str(rec.get("id"), path, where, "id", required=True)
    user = as_str(rec.get("user_id"), path, where, "user_id") or ""
    text = as_str(rec.get("text"), path, where, "text") or ""
    prof = profile_from_fields(profile, path, where) if profile else None
    if kind == "source":
        if pend.topic is not None:
            raise DataFormatError(path, "a second source record for this event", where, "kind")
        t_raw = _required_time(rec, path, where)
        try:
            t = parse_time(t_raw)
        except ValueError as e:
            raise DataFormatError(path, str(e), where, "time") from None
        meta = rec.get("metadata") or {}
        if not isinstance(meta, dict):
            raise DataFormatError(path, f"expected an object, got {type(meta).__name__}", where, "metadata")
        pend.topic = SourcePost(rid, t, user, text, prof)
        pend.metadata.update(meta)
        return
    raw_b = rec.get("behavior") or "comment"
    behavior = BEHAVIOR_ALIASES.get(str(raw_b).strip().lower()) if isinstance(raw_b, str) else None
    if behavior is None:
        raise DataFormatError(path, f"unknown behavior {raw_b!r}; expected {'|'.join(BEHAVIORS)}", where, "behavior")
    t = time_or_skip(rec.get("time"), pend.skipped, path, where)
    if t is None:
        return
    pend.responses.append(Response(
        id=rid, time=t, user_id=user, text=normalise_text(text, behavior), behavior=behavior,
        parent=as_str(rec.get("parent"), path, where, "parent") or None,
        reposts=as_int(rec.get("reposts"), path, where, "reposts"),
        comments=as_int(rec.get("comments"), path, where, "comments"),
        likes=as_int(rec.get("likes"), path, where, "likes"),
        profile=prof,
    ))
    pend.labels.append(_labels_codes(rec.get("labels"), path, where))


def load_generic(path: str | os.PathLike) -> list[Event]:
    """All events of one generic JSONL/CSV file, in order of first appearance."""
    path = Path(path)
    pending: dict[str, _Pending] = {}
    unknown: set[str] = set()
    for lineno, rec in iter_records(path):
        where = f"line {lineno}"
        eid = rec.get("event_id")
        if eid is None or eid == "":
            raise DataFormatError(path, "required field is missing", where, "event_id")
        eid = as_str(eid, path, where, "event_id")
        unknown |= set(rec) - _KNOWN_KEYS
        _parse_record(rec, pending.setdefault(eid, _Pending()), path, where)
    if unknown:
        log.warning("%s: ignored unknown field(s): %s", path, ", ".join(sorted(unknown)))
    if not pending:
        raise DataFormatError(path, "no records: the file is empty")
    events = []
    for eid, p in pending.items():
        topic = p.topic
        if topic is None:  # responses without a source record: keep them, say the source is unknown
            if not p.responses:
                reasons = ", ".join(f"{k}={v}" for k, v in p.skipped.items()) or "none in the input"
                raise DataFormatError(path, f"event {eid!r} has no usable responses (skipped: {reasons})")
            first = min(r.time for r in p.responses)
            topic = SourcePost(eid, first, "", "")
            p.metadata.setdefault("source_missing", True)
        ev, labels = assemble_event(eid, FORMAT, topic, p.responses, path, skipped=p.skipped, signals=p.signals,
                                    metadata=p.metadata, extras=p.labels)
        if any(lab for lab in labels):
            ev.metadata["labels"] = _labels_from(labels)
        events.append(ev)
    return events


def _labels_from(per_response: list[dict | None]) -> Labels:
    n = len(per_response)
    codes = {d: np.full(n, -1, dtype=np.int8) for d in DIMENSIONS}
    for i, lab in enumerate(per_response):
        if lab:
            for d, c in lab.items():
                codes[d][i] = c
    return Labels(codes)


def looks_generic(path: Path) -> bool:
    """A .jsonl/.ndjson/.csv file whose first record has an `event_id` (cheap: reads one line)."""
    if path.suffix.lower() not in SUFFIXES or not path.is_file():
        return False
    with open(path, encoding="utf-8", errors="replace") as f:
        first = f.readline()
        if path.suffix.lower() == ".csv":
            return "event_id" in next(csv.reader([first]), [])
        while first and not first.strip():
            first = f.readline()
    try:
        rec = json.loads(first)
    except json.JSONDecodeError:
        return False
    return isinstance(rec, dict) and "event_id" in rec

