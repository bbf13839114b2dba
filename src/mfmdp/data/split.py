"""Train/validation/test splits by event date, with near-duplicate topics kept on one side.

Near-duplicates (template series such as daily case-count bulletins) are source posts whose
character 4-gram sets have Jaccard similarity above a threshold (default 0.5); they are merged with
union-find and a group is always assigned whole. Groups are ordered by their earliest source-post
time (ties broken by a seeded shuffle) and filled into train, then validation, then test, so that
train < validation < test in time. With `per_format`, each source format is split on its own dates
(useful when sets from different years are mixed). The result is a JSON file later runs reuse.
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Sequence

import numpy as np

from mfmdp.core.atomic import atomic_write_json
from mfmdp.core.records import Event
from mfmdp.data.errors import DataFormatError

SPLITS = ("train", "validation", "test")


def char_ngrams(text: str, n: int = 4) -> frozenset[str]:
    t = "".join(text.split())
    if len(t) < n:
        return frozenset([t]) if t else frozenset()
    return frozenset(t[i:i + n] for i in range(len(t) - n + 1))


class UnionFind:
    def __init__(self, n: int):
        self.parent = list(range(n))

    def find(self, i: int) -> int:
        while self.parent[i] != i:
            self.parent[i] = self.parent[self.parent[i]]
            i = self.parent[i]
        return i

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


def near_duplicate_groups(texts: Sequence[str], threshold: float = 0.5, n: int = 4) -> list[list[int]]:
    """Groups of indices whose texts are connected by 4-gram Jaccard > threshold (singletons included)."""
    grams = [char_ngrams(t, n) for t in texts]
    uf = UnionFind(len(texts))
    postings: dict[str, list[int]] = defaultdict(list)
    for i, g in enumerate(grams):
        for gram in g:
            postings[gram].append(i)
    for i, g in enumerate(grams):  # candidates share at least one gram: avoids the all-pairs loop
        if not g:
            continue
        shared: dict[int, int] = defaultdict(int)
        for gram in g:
            for j in postings[gram]:
                if j > i:
                    shared[j] += 1
        for j, inter in shared.items():
            if inter / (len(g) + len(grams[j]) - inter) > threshold:
                uf.union(i, j)
    groups: dict[int, list[int]] = defaultdict(list)
    for i in range(len(texts)):
        groups[uf.find(i)].append(i)
    return list(groups.values())


@dataclass
class Split:
    assignments: dict[str, str]  # event id -> train | validation | test
    seed: int = 0
    fractions: tuple[float, float, float] = (0.7, 0.15, 0.15)
    threshold: float = 0.5
    per_format: bool = False
    groups: list[list[str]] = field(default_factory=list)  # near-duplicate groups with more than one event
    source: str | None = None

    def of(self, event_id: str) -> str:
        try:
            return self.assignments[event_id]
        except KeyError:
            raise KeyError(f"event {event_id!r} is not in this split") from None

    def ids(self, split: str) -> list[str]:
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; expected {'|'.join(SPLITS)}")
        return [e for e, s in self.assignments.items() if s == split]

    def select(self, events: Sequence[Event], split: str) -> list[Event]:
        wanted = set(self.ids(split))
        return [e for e in events if e.id in wanted]

    def counts(self) -> dict[str, int]:
        return {s: sum(1 for v in self.assignments.values() if v == s) for s in SPLITS}

    def to_json(self) -> dict:
        return {"seed": self.seed, "fractions": list(self.fractions), "threshold": self.threshold,
                "per_format": self.per_format, "source": self.source, "counts": self.counts(),
                "assignments": self.assignments, "groups": self.groups}


def _check_fractions(fractions: Sequence[float]) -> tuple[float, float, float]:
    if len(fractions) != 3 or any(f < 0 for f in fractions) or not np.isclose(sum(fractions), 1.0, atol=1e-6):
        raise ValueError(f"fractions must be three non-negative numbers summing to 1, got {list(fractions)}")
    return tuple(float(f) for f in fractions)  # type: ignore[return-value]


def _assign_by_date(events: Sequence[Event], groups: list[list[int]], fractions, rng) -> dict[str, str]:
    starts = np.array([min(events[i].topic.time.timestamp() for i in g) for g in groups])
    ties = rng.permutation(len(groups))
    order = np.lexsort((ties, starts))
    bounds = np.cumsum(fractions)[:2] * len(events)
    out: dict[str, str] = {}
    done = 0
    for gi in order:
        g = groups[gi]
        # a group goes where its first event would fall; it is never cut
        split = SPLITS[int(np.searchsorted(bounds, done, side="right"))]
        for i in g:
            out[events[i].id] = split
        done += len(g)
    return out


def make_split(events: Sequence[Event], seed: int = 0, fractions: Sequence[float] = (0.7, 0.15, 0.15),
               threshold: float = 0.5, per_format: bool = False, source: str | None = None) -> Split:
    fractions = _check_fractions(fractions)
    ids = [e.id for e in events]
    if len(set(ids)) != len(ids):
        dup = next(i for i in ids if ids.count(i) > 1)
        raise DataFormatError(source, f"event id {dup!r} occurs more than once: ids must be unique to split")
    rng = np.random.default_rng(seed)
    groups = near_duplicate_groups([e.topic.text for e in events], threshold)
    buckets: dict[str, list[list[int]]] = defaultdict(list)
    for g in groups:  # a group spanning formats is split with its first event's format
        buckets[events[g[0]].format if per_format else ""].append(g)
    assignments: dict[str, str] = {}
    for key in sorted(buckets):
        gs = buckets[key]
        members = sorted(i for g in gs for i in g)
        local = {old: new for new, old in enumerate(members)}
        sub = [events[i] for i in members]
        assignments.update(_assign_by_date(sub, [[local[i] for i in g] for g in gs], fractions, rng))
    assignments = {e.id: assignments[e.id] for e in events}
    multi = [[events[i].id for i in g] for g in groups if len(g) > 1]
    return Split(assignments, seed, fractions, threshold, per_format, multi, source)


def save_split(split: Split, path: str | os.PathLike) -> Path:
    path = Path(path)
    doc = split.to_json() | {"created": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    atomic_write_json(path, doc, indent=1)
    return path


def load_split(path: str | os.PathLike) -> Split:
    path = Path(path)
    try:
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
    except OSError as e:
        raise DataFormatError(path, f"cannot read split file: {e.strerror}") from None
    except json.JSONDecodeError as e:
        raise DataFormatError(path, f"malformed JSON: {e.msg} at line {e.lineno}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("assignments"), dict):
        raise DataFormatError(path, "required field is missing", field="assignments")
    for eid, s in doc["assignments"].items():
        if s not in SPLITS:
            raise DataFormatError(path, f"unknown split {s!r}; expected {'|'.join(SPLITS)}", f"event {eid}",
                                  "assignments")
    return Split(dict(doc["assignments"]), int(doc.get("seed", 0)), tuple(doc.get("fractions", (0.7, 0.15, 0.15))),
                 float(doc.get("threshold", 0.5)), bool(doc.get("per_format", False)), doc.get("groups", []),
                 doc.get("source"))
