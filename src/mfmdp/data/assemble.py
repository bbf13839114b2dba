"""Finish an event the same way for every loader: sort by (time, id), de-duplicate ids, count skips.

Loaders collect raw responses in file order; `assemble_event` applies the shared rules so that
every source yields events with identical invariants.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import fields
from datetime import datetime

from mfmdp.data.dates import ImplausibleTime, parse_time
from mfmdp.data.errors import DataFormatError
from mfmdp.core.records import BARE_REPOST_TEXT, Event, Profile, Response, Signal, SourcePost

log = logging.getLogger(__name__)

PROFILE_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(Profile))
_INT_FIELDS = {"followers", "friends", "statuses", "favourites", "bi_followers", "verified_type"}

# Reasons a record is skipped (documented in docs/data.md).
SKIP_DUPLICATE = "duplicate_id"
SKIP_BAD_TIME = "unparseable_time"
SKIP_NO_TIME = "missing_time"
SKIP_IMPLAUSIBLE_TIME = "implausible_time"  # parses, but outside dates.PLAUSIBLE_RANGE


def as_int(value: object, path: object, record: object, field: str) -> int | None:
    """Counts arrive as ints, floats or digit strings ('163'); '' and None mean unknown."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise DataFormatError(path, f"expected an integer, got {value!r}", record, field)
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        try:
            return int(float(value.strip()))
        except ValueError:
            pass
    raise DataFormatError(path, f"expected an integer, got {value!r}", record, field)


def as_bool(value: object, path: object, record: object, field: str) -> bool | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in ("true", "false", "1", "0"):
        return value.strip().lower() in ("true", "1")
    raise DataFormatError(path, f"expected a boolean, got {value!r}", record, field)


def as_str(value: object, path: object, record: object, field: str, required: bool = False) -> str | None:
    if value is None:
        if required:
            raise DataFormatError(path, "required field is missing", record, field)
        return None
    if isinstance(value, (str, int)) and not isinstance(value, bool):
        return str(value)
    raise DataFormatError(path, f"expected a string, got {type(value).__name__} {value!r:.60}", record, field)


def profile_from_fields(values: dict, path: object, record: object, prefix: str = "profile.") -> Profile:
    """Build a Profile from a dict keyed by Profile field names (unknown keys are an error)."""
    unknown = set(values) - set(PROFILE_FIELDS)
    if unknown:
        raise DataFormatError(path, f"unknown profile field(s) {sorted(unknown)}; known: {', '.join(PROFILE_FIELDS)}",
                              record, prefix + sorted(unknown)[0])
    kw: dict = {}
    for k, v in values.items():
        f = prefix + k
        if k in _INT_FIELDS:
            kw[k] = as_int(v, path, record, f)
        elif k == "verified":
            kw[k] = as_bool(v, path, record, f)
        elif k == "created_at":
            if v is None or v == "":
                kw[k] = None
            else:
                try:
                    kw[k] = parse_time(v)
                except ValueError as e:
                    raise DataFormatError(path, str(e), record, f) from None
        else:
            kw[k] = as_str(v, path, record, f)
    if kw.get("gender") is not None and kw["gender"] not in ("m", "f"):
        kw["gender"] = None  # sources use 'n' / '' for unknown
    return Profile(**kw)


def normalise_text(text: str | None, behavior: str) -> str:
    """Empty reposts become the platform's bare-repost text; empty comments stay empty."""
    text = text or ""
    if behavior == "share" and not text.strip():
        return BARE_REPOST_TEXT
    return text


def assemble_event(
    event_id: str,
    fmt: str,
    topic: SourcePost,
    responses: list[Response],
    path: object,
    *,
    skipped: Counter | dict | None = None,
    signals: list[Signal] | None = None,
    metadata: dict | None = None,
    extras: list | None = None,
) -> tuple[Event, list | None]:
    """Sort by (time, id), keep the first of each duplicated id, raise on an empty event.

    `extras` (optional, one item per response, e.g. labels) are permuted alongside the responses and
    returned aligned with `event.responses`.
    """
    skipped = Counter(skipped or {})
    first: dict[str, int] = {}
    for i, r in enumerate(responses):  # the first occurrence in file order wins
        first.setdefault(r.id, i)
    kept = sorted(first.values(), key=lambda i: (responses[i].time, responses[i].id))
    dups = len(responses) - len(kept)
    if dups:
        skipped[SKIP_DUPLICATE] += dups
    if not kept:
        reasons = ", ".join(f"{k}={v}" for k, v in skipped.items()) or "none in the input"
        raise DataFormatError(path, f"event {event_id!r} has no usable responses (skipped: {reasons})")
    for reason, count in skipped.items():
        if count:
            log.debug("%s: event %s: skipped %d record(s): %s", path, event_id, count, reason)
    event = Event(
        id=event_id,
        format=fmt,
        topic=topic,
        responses=[responses[i] for i in kept],
        signals=sorted(signals or [], key=lambda s: s.time),
        metadata=metadata or {},
        skipped={k: v for k, v in skipped.items() if v},
        path=str(path) if path is not None else None,
    )
    return event, ([extras[i] for i in kept] if extras is not None else None)


def time_or_skip(value: object, skipped: Counter, path: object = None, record: object = None,
                 fallback=None) -> datetime | None:
    """Parse a response time; a missing, unparseable or implausible one is counted under its reason
    (and logged at debug) rather than fatal. `fallback(value)` (optional) tries a source-specific
    format first, returning None when it does not apply."""
    if value is None or (isinstance(value, str) and not value.strip()):
        reason = SKIP_NO_TIME
    else:
        try:
            return parse_time(value)
        except ImplausibleTime:
            reason = SKIP_IMPLAUSIBLE_TIME
        except ValueError:
            t = fallback(value) if fallback is not None else None
            if t is not None:
                return t
            reason = SKIP_BAD_TIME
    skipped[reason] += 1
    log.debug("%s record %s: %s %r skipped", path, record, reason, value)
    return None
