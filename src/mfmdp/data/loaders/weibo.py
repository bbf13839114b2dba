"""The paper's WEIBO corpus (Ma et al. 2016) as used by MF-LLM: a JSON list per event, element 0 the
source post, the rest its responses (all reposts in that corpus), each carrying its author's profile:
uid, mid, parent, t (unix seconds), text, original_text, reposts_count, comments_count,
attitudes_count, followers_count, friends_count, bi_followers_count, statuses_count,
favourites_count, gender, verified, verified_type, verified_reason, user_description,
user_location, user_created_at, screen_name. Event id = the source post's mid.
A response may carry `behavior` ("share"|"comment") to override the corpus default (share).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from mfmdp.data.assemble import as_bool, as_int, assemble_event, normalise_text, time_or_skip
from mfmdp.data.dates import parse_time
from mfmdp.data.errors import DataFormatError
from mfmdp.data.loaders.common import read_json, require
from mfmdp.core.records import BEHAVIORS, Event, Profile, Response, SourcePost

FORMAT = "weibo"


def looks_like(obj: object) -> bool:
    return (isinstance(obj, list) and len(obj) > 0 and isinstance(obj[0], dict)
            and "mid" in obj[0] and any(k in obj[0] for k in ("t", "original_text", "reposts_count")))


def _profile(r: dict, path: Path, where: str) -> Profile | None:
    if not any(k in r for k in ("followers_count", "verified", "gender", "statuses_count")):
        return None
    created = r.get("user_created_at")
    try:
        created_at = parse_time(created) if created not in (None, "") else None
    except ValueError:
        created_at = None  # profile metadata only; never fatal
    g = r.get("gender")
    loc = r.get("user_location") or " ".join(str(r[k]) for k in ("province", "city") if r.get(k)) or None
    return Profile(
        followers=as_int(r.get("followers_count"), path, where, "followers_count"),
        friends=as_int(r.get("friends_count"), path, where, "friends_count"),
        statuses=as_int(r.get("statuses_count"), path, where, "statuses_count"),
        favourites=as_int(r.get("favourites_count"), path, where, "favourites_count"),
        bi_followers=as_int(r.get("bi_followers_count"), path, where, "bi_followers_count"),
        gender=g if g in ("m", "f") else None,
        verified=as_bool(r.get("verified"), path, where, "verified"),
        verified_type=as_int(r.get("verified_type"), path, where, "verified_type"),
        verified_reason=r.get("verified_reason") or None,
        description=r.get("user_description") or None,
        location=loc,
        screen_name=r.get("screen_name") or None,
        created_at=created_at,
    )


def load(path: Path, obj: object | None = None) -> Event:
    obj = read_json(path) if obj is None else obj
    if not isinstance(obj, list) or not obj:
        raise DataFormatError(path, "expected a non-empty JSON list (element 0 = the source post)")
    src = obj[0]
    mid = str(require(src, "mid", path, "[0]", (str, int)))
    t_raw = require(src, "t", path, "[0]", (int, float, str))
    try:
        t0 = parse_time(t_raw)
    except ValueError as e:
        raise DataFormatError(path, str(e), "[0]", "t") from None
    topic = SourcePost(mid, t0, str(src.get("uid") or ""), str(src.get("text") or ""), _profile(src, path, "[0]"))
    skipped: Counter = Counter()
    responses: list[Response] = []
    for i, r in enumerate(obj[1:], 1):
        where = f"[{i}]"
        rid = str(require(r, "mid", path, where, (str, int)))
        t = time_or_skip(r.get("t"), skipped, path, where)
        if t is None:
            continue
        text = r.get("text") or ""
        if not isinstance(text, str):
            raise DataFormatError(path, f"expected str, got {type(text).__name__}", where, "text")
        behavior = r.get("behavior", "share")
        if behavior not in BEHAVIORS:
            raise DataFormatError(path, f"unknown behavior {behavior!r}; expected share|comment", where, "behavior")
        responses.append(Response(
            rid, t, str(r.get("uid") or ""), normalise_text(text, behavior), behavior,
            parent=str(r.get("parent") or mid),
            reposts=as_int(r.get("reposts_count"), path, where, "reposts_count"),
            comments=as_int(r.get("comments_count"), path, where, "comments_count"),
            likes=as_int(r.get("attitudes_count"), path, where, "attitudes_count"),
            profile=_profile(r, path, where),
        ))
    meta = {k: src[k] for k in ("label", "rumor") if k in src}
    event, _ = assemble_event(mid, FORMAT, topic, responses, path, skipped=skipped, metadata=meta)
    return event
