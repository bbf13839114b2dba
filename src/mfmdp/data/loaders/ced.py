"""CED / Chinese_Rumor_Dataset (Song et al. 2018): <dir>/<n>_<mid>_<uid>.json holds the reposts,
../original-microblog/<same name> the source post.

Event id = the mid in the file name. Reposts: {uid, mid, parent, kids, text, date}; an empty parent
means a direct repost of the source. Dates 'YYYY-MM-DD HH:MM:SS' are China time; the few 'MM月DD日
HH:MM' dates (no year) take the year of the source post (the next one if that would precede it).
"""

from __future__ import annotations

import re
from collections import Counter
from datetime import datetime
from pathlib import Path

from mfmdp.data.assemble import as_bool, as_int, assemble_event, time_or_skip
from mfmdp.data.dates import CHINA_TZ, parse_time
from mfmdp.data.errors import DataFormatError
from mfmdp.data.loaders.common import read_json, require
from mfmdp.core.records import BARE_REPOST_TEXT, Event, Profile, Response, SourcePost

FORMAT = "ced"
SOURCE_DIR = "original-microblog"
_NAME = re.compile(r"^(?P<n>\d+)_(?P<mid>[^_]+)_(?P<uid>.+)\.json$")
_MONTH_DAY = re.compile(r"^\s*(\d{1,2})月(\d{1,2})日\s+(\d{1,2}):(\d{2})(?::(\d{2}))?\s*$")


def source_file(path: Path) -> Path:
    return path.parent.parent / SOURCE_DIR / path.name


def looks_like(path: Path, obj: object) -> bool:
    return (isinstance(obj, list) and bool(_NAME.match(path.name)) and path.parent.name != SOURCE_DIR
            and source_file(path).is_file())


def _month_day(text: object, reference: datetime) -> datetime | None:
    """'05月24日 10:04' with the year of `reference` (China time), rolled forward if it would precede it."""
    m = _MONTH_DAY.match(text) if isinstance(text, str) else None
    if m is None:
        return None
    ref = reference.astimezone(CHINA_TZ)
    mo, d, hh, mm, ss = (int(g) if g else 0 for g in m.groups())
    try:
        dt = datetime(ref.year, mo, d, hh, mm, ss, tzinfo=CHINA_TZ)
        if dt < ref:
            dt = dt.replace(year=ref.year + 1)
    except ValueError:
        return None
    return parse_time(dt)


def _profile_time(created: object) -> datetime | None:
    """A poster's account creation time (unix seconds); profile metadata only, never fatal."""
    if not isinstance(created, (int, float)) or isinstance(created, bool):
        return None
    try:
        return parse_time(created)
    except ValueError:
        return None


def _source(path: Path, mid: str, uid: str) -> tuple[SourcePost, dict]:
    spath = source_file(path)
    obj = read_json(spath)
    if not isinstance(obj, dict):
        raise DataFormatError(spath, f"expected a JSON object, got {type(obj).__name__}")
    t_raw = require(obj, "time", spath, "source", (int, float, str))
    try:
        t0 = parse_time(t_raw)
    except ValueError as e:
        raise DataFormatError(spath, str(e), "source", "time") from None
    u = obj.get("user") or {}
    if u == "empty":  # how CED marks a deleted/unknown poster
        u = {}
    if not isinstance(u, dict):
        raise DataFormatError(spath, f"expected an object, got {type(u).__name__}", "source", "user")
    created = u.get("time")
    profile = Profile(
        followers=as_int(u.get("followers"), spath, "source", "user.followers"),
        friends=as_int(u.get("friends"), spath, "source", "user.friends"),
        statuses=as_int(u.get("messages"), spath, "source", "user.messages"),
        gender=u.get("gender") if u.get("gender") in ("m", "f") else None,
        verified=as_bool(u.get("verified"), spath, "source", "user.verified"),
        verified_type=as_int(u.get("verified_type"), spath, "source", "user.verified_type"),
        location=u.get("location") if isinstance(u.get("location"), str) else None,
        created_at=_profile_time(created),
    ) if u else None
    topic = SourcePost(mid, t0, uid, str(obj.get("text") or ""), profile)
    meta = {
        "reposts": as_int(obj.get("reposts"), spath, "source", "reposts"),
        "comments": as_int(obj.get("comments"), spath, "source", "comments"),
        "likes": as_int(obj.get("likes"), spath, "source", "likes"),
        "source_file": str(spath),
    }
    return topic, meta


def load(path: Path, obj: object | None = None) -> Event:
    m = _NAME.match(path.name)
    if m is None:
        raise DataFormatError(path, "CED response files are named <n>_<mid>_<uid>.json")
    mid, uid = m["mid"], m["uid"]
    if not source_file(path).is_file():
        raise DataFormatError(path, f"CED source post {source_file(path)} is missing")
    obj = read_json(path) if obj is None else obj
    if not isinstance(obj, list):
        raise DataFormatError(path, f"expected a JSON list of reposts, got {type(obj).__name__}")
    topic, meta = _source(path, mid, uid)
    skipped: Counter = Counter()
    responses: list[Response] = []
    for i, r in enumerate(obj):
        where = f"[{i}]"
        rid = require(r, "mid", path, where)
        t = time_or_skip(r.get("date"), skipped, path, where, fallback=lambda d: _month_day(d, topic.time))
        if t is None:
            continue
        text = r.get("text") or ""
        if not isinstance(text, str):
            raise DataFormatError(path, f"expected str, got {type(text).__name__}", where, "text")
        parent = r.get("parent") or mid
        responses.append(Response(rid, t, str(r.get("uid") or ""), text if text.strip() else BARE_REPOST_TEXT,
                                  "share", parent=str(parent)))
    label = path.parent.name
    meta.update({"label": label.replace("-repost", ""), "rumor": label.startswith("rumor")})
    event, _ = assemble_event(mid, FORMAT, topic, responses, path, skipped=skipped, metadata=meta)
    return event
