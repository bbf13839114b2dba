"""COVID-19 Weibo rumor dataset: one folder per source microblog (folder name = mid) holding
detail.json (the source), comments.json, reposts.json, comm_edges.json, repo_edges.json.

Texts are Weibo API HTML (stripped; reposts use raw_text). Every response has a full user object,
which becomes its Profile. Replies nested inside a comment become comments whose parent is that
comment. reposts.json often lists the source itself: it is dropped (counted as `is_source`). When
detail.json is missing the source is taken from that self-listing; with neither, the folder is
not an event (`SourceUnknown`, which `load` counts and reports as a skipped folder).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from mfmdp.data.assemble import as_bool, as_int, assemble_event, time_or_skip
from mfmdp.data.dates import parse_time
from mfmdp.data.errors import DataFormatError
from mfmdp.data.loaders.common import read_json, require, strip_html
from mfmdp.core.records import BARE_REPOST_TEXT, Event, Profile, Response, SourcePost

FORMAT = "covid19"
FILES = ("detail.json", "comments.json", "reposts.json")
SKIP_IS_SOURCE = "is_source"


class SourceUnknown(DataFormatError):
    """A folder whose source post cannot be found (no detail.json, not listed among its reposts)."""


def looks_like(path: Path) -> bool:
    return path.is_dir() and any((path / f).is_file() for f in FILES) and any(
        (path / f).is_file() for f in ("detail.json", "comm_edges.json", "repo_edges.json"))


def profile_of(user: object, path: Path, where: str) -> Profile | None:
    if not isinstance(user, dict):
        return None
    g = user.get("gender")
    return Profile(
        followers=as_int(user.get("followers_count"), path, where, "user.followers_count"),
        friends=as_int(user.get("follow_count", user.get("friends_count")), path, where, "user.follow_count"),
        statuses=as_int(user.get("statuses_count"), path, where, "user.statuses_count"),
        favourites=as_int(user.get("favourites_count"), path, where, "user.favourites_count"),
        gender=g if g in ("m", "f") else None,
        verified=as_bool(user.get("verified"), path, where, "user.verified"),
        verified_type=as_int(user.get("verified_type"), path, where, "user.verified_type"),
        verified_reason=user.get("verified_reason") or None,
        description=user.get("description") or None,
        location=user.get("location") or None,
        screen_name=user.get("screen_name") or None,
    )


def _edges(folder: Path, name: str) -> dict[str, str]:
    p = folder / name
    if not p.is_file():
        return {}
    pairs = read_json(p)
    if not isinstance(pairs, list):
        raise DataFormatError(p, f"expected a list of [parent, child] pairs, got {type(pairs).__name__}")
    out = {}
    for i, e in enumerate(pairs):
        if not (isinstance(e, list) and len(e) == 2):
            raise DataFormatError(p, "expected a [parent, child] pair", f"[{i}]")
        out[str(e[1])] = str(e[0])
    return out


def _response(r: object, path: Path, where: str, behavior: str, parent: str, skipped: Counter) -> Response | None:
    rid = str(require(r, "id", path, where, (str, int)))
    t = time_or_skip(r.get("created_at"), skipped, path, where)
    if t is None:
        return None
    raw = r.get("raw_text") if behavior == "share" else None
    text = raw if isinstance(raw, str) else r.get("text") or ""
    if not isinstance(text, str):
        raise DataFormatError(path, f"expected str, got {type(text).__name__}", where, "text")
    text = strip_html(text)
    if behavior == "share" and not text.strip():
        text = BARE_REPOST_TEXT
    user = r.get("user")
    uid = str(user.get("id", "")) if isinstance(user, dict) else ""
    likes = r.get("like_count", r.get("attitudes_count"))
    return Response(rid, t, uid, text, behavior, parent=parent,
                    reposts=as_int(r.get("reposts_count"), path, where, "reposts_count"),
                    comments=as_int(r.get("comments_count"), path, where, "comments_count"),
                    likes=as_int(likes, path, where, "like_count"),
                    profile=profile_of(user, path, where))


def _items(folder: Path, name: str) -> list:
    p = folder / name
    if not p.is_file():
        return []
    obj = read_json(p)
    if not isinstance(obj, list):
        raise DataFormatError(p, f"expected a JSON list, got {type(obj).__name__}")
    return obj


def load(folder: Path) -> Event:
    folder = Path(folder)
    mid = folder.name
    reposts = _items(folder, "reposts.json")
    detail_path = folder / "detail.json"
    if detail_path.is_file():
        detail, spath = read_json(detail_path), detail_path
    else:
        detail = next((r for r in reposts if isinstance(r, dict) and str(r.get("id")) == mid), None)
        spath = folder / "reposts.json"
        if detail is None:
            raise SourceUnknown(folder, "no detail.json and the source post is not among the reposts: source unknown")
    if not isinstance(detail, dict):
        raise DataFormatError(spath, f"expected a JSON object, got {type(detail).__name__}")
    created = require(detail, "created_at", spath, "source")
    try:
        t0 = parse_time(created)
    except ValueError as e:
        raise DataFormatError(spath, str(e), "source", "created_at") from None
    src_user = detail.get("user")
    topic = SourcePost(mid, t0, str(src_user.get("id", "")) if isinstance(src_user, dict) else "",
                       strip_html(str(detail.get("text") or "")), profile_of(src_user, spath, "source"))
    comm_parent, repo_parent = _edges(folder, "comm_edges.json"), _edges(folder, "repo_edges.json")
    skipped: Counter = Counter()
    responses: list[Response] = []
    cpath = folder / "comments.json"
    for i, c in enumerate(_items(folder, "comments.json")):
        r = _response(c, cpath, f"[{i}]", "comment", comm_parent.get(str(c.get("id")), mid), skipped)
        if r is not None:
            responses.append(r)
        for j, reply in enumerate(c.get("comments") or []):  # nested replies: a bool False when none
            rr = _response(reply, cpath, f"[{i}].comments[{j}]", "comment", r.id if r else mid, skipped)
            if rr is not None:
                responses.append(rr)
    rpath = folder / "reposts.json"
    for i, rep in enumerate(reposts):
        if isinstance(rep, dict) and str(rep.get("id")) == mid:
            skipped[SKIP_IS_SOURCE] += 1
            continue
        r = _response(rep, rpath, f"[{i}]", "share", repo_parent.get(str(rep.get("id")), mid), skipped)
        if r is not None:
            responses.append(r)
    label = folder.parent.name
    meta = {"label": label, "rumor": label == "rumor",
            "reposts": as_int(detail.get("reposts_count"), spath, "source", "reposts_count"),
            "comments": as_int(detail.get("comments_count"), spath, "source", "comments_count"),
            "likes": as_int(detail.get("attitudes_count"), spath, "source", "attitudes_count")}
    if not detail_path.is_file():
        meta["source_from"] = "reposts.json"
    event, _ = assemble_event(mid, FORMAT, topic, responses, folder, skipped=skipped, metadata=meta)
    return event
