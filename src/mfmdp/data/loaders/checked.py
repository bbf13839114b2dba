"""CHECKED (Yang et al. 2021): one JSON object per source microblog with comments[] and reposts[].

Event id = the object's `id`. Times 'YYYY-MM-DD HH:MM' are China time. Comments scraped as
'：text' lose the leading colon (a scraping artefact). User ids are hashed: no profiles.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from mfmdp.data.assemble import as_int, assemble_event, time_or_skip
from mfmdp.data.dates import parse_time
from mfmdp.data.errors import DataFormatError
from mfmdp.data.loaders.common import read_json, require
from mfmdp.core.records import BARE_REPOST_TEXT, Event, Response, SourcePost

FORMAT = "checked"


def looks_like(obj: object) -> bool:
    return isinstance(obj, dict) and "id" in obj and "date" in obj and ("comments" in obj or "reposts" in obj)


def _responses(items: list, behavior: str, path: Path, skipped: Counter, out: list[Response]) -> None:
    share = behavior == "share"
    for i, r in enumerate(items):
        where = f"reposts[{i}]" if share else f"comments[{i}]"
        if not isinstance(r, dict):
            raise DataFormatError(path, f"expected a JSON object, got {type(r).__name__}", where)
        rid = r.get("id")
        if not isinstance(rid, str) or not rid:
            require(r, "id", path, where)  # raises with the precise reason
            raise DataFormatError(path, "empty id", where, "id")
        t = time_or_skip(r.get("date"), skipped, path, where)
        if t is None:
            continue
        text = r.get("text") or ""
        if not isinstance(text, str):
            raise DataFormatError(path, f"expected str, got {type(text).__name__}", where, "text")
        if share:
            if not text.strip():
                text = BARE_REPOST_TEXT
        elif text[:1] in ("：", ":"):
            text = text[1:]
        user = r.get("user_id")
        out.append(Response(rid, t, "" if user is None else str(user), text, behavior))


def load(path: Path, obj: object | None = None) -> Event:
    obj = read_json(path) if obj is None else obj
    if not isinstance(obj, dict):
        raise DataFormatError(path, f"expected a CHECKED JSON object, got {type(obj).__name__}")
    eid = require(obj, "id", path, "source")
    date = require(obj, "date", path, "source")
    try:
        t0 = parse_time(date)
    except ValueError as e:
        raise DataFormatError(path, str(e), "source", "date") from None
    comments = require(obj, "comments", path, "source", list)
    reposts = require(obj, "reposts", path, "source", list)
    skipped: Counter = Counter()
    responses: list[Response] = []
    _responses(comments, "comment", path, skipped, responses)
    _responses(reposts, "share", path, skipped, responses)
    for r in responses:
        r.parent = eid
    topic = SourcePost(eid, t0, str(obj.get("user_id") or ""), str(obj.get("text") or ""))
    meta = {"label": obj.get("label"), "rumor": obj.get("label") == "fake"}
    for src, dst in (("comment_num", "comments"), ("repost_num", "reposts"), ("like_num", "likes")):
        meta[dst] = as_int(obj.get(src), path, "source", src)
    if obj.get("analysis"):
        meta["analysis"] = obj["analysis"]
    event, _ = assemble_event(eid, FORMAT, topic, responses, path, skipped=skipped, metadata=meta)
    return event
