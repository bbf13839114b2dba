"""Writers of tiny source files in every supported format, for the data tests (no real data needed)."""

from __future__ import annotations

import json
from pathlib import Path


def dump(path: Path, obj: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, ensure_ascii=False), encoding="utf-8")
    return path


def checked_event(eid: str = "abc123", comments=None, reposts=None) -> dict:
    if comments is None:
        comments = [
            {"id": "c2", "date": "2020-03-09 12:36", "user_id": "u2", "text": "：神神叨叨的。", "pic_url": ""},
            {"id": "c1", "date": "2020-03-09 11:26", "user_id": "u1", "text": "：抓到自己身上了", "pic_url": ""},
            {"id": "c3", "date": "2020-03-09 11:26", "user_id": "u3", "text": "", "pic_url": ""},
        ]
    if reposts is None:
        reposts = [
            {"id": "r1", "date": "2020-03-11 10:07", "user_id": "u4", "text": "转发微博", "pic_url": []},
            {"id": "r2", "date": "2020-03-10 12:33", "user_id": "u5", "text": "", "pic_url": []},
            {"id": "c1", "date": "2020-03-09 11:26", "user_id": "u1", "text": "dup", "pic_url": []},
        ]
    return {"label": "fake", "id": eid, "date": "2020-03-09 11:25", "user_id": "src", "text": "源微博 正文",
            "pic_url": [], "comment_num": "163", "repost_num": "91", "like_num": "530",
            "comments": comments, "reposts": reposts}


def write_ced(root: Path, mid: str = "zvUcLCeTm", uid: str = "3186420187", n: int = 7, responses=None,
              label: str = "rumor") -> Path:
    name = f"{n}_{mid}_{uid}.json"
    if responses is None:
        responses = [
            {"kids": [], "uid": "a", "parent": "zw1", "text": "忍无可忍", "mid": "m3", "date": "2013-05-24 10:04:34"},
            {"kids": [], "uid": "b", "parent": "", "text": "", "mid": "m1", "date": "2013-05-10 05:12:02"},
            {"kids": [], "uid": "c", "parent": "", "text": "看看", "mid": "m2", "date": "05月11日 08:00"},
            {"kids": [], "uid": "d", "parent": "", "text": "坏日期", "mid": "m4", "date": "sometime"},
        ]
    dump(root / "original-microblog" / name, {
        "multi": None, "text": "北大猛男", "has_url": False, "comments": 78, "pics": 1, "source": "web",
        "likes": 11, "time": 1368078370, "reposts": 532,
        "user": {"verified": False, "description": True, "gender": "f", "messages": 2911, "followers": 1096,
                 "location": "新疆", "time": 1355300133, "friends": 1118, "verified_type": -1}})
    return dump(root / f"{label}-repost" / name, responses)


def weibo_user(uid: str, verified_type: int = -1, followers: int = 10) -> dict:
    return {"id": int(uid), "screen_name": f"user{uid}", "statuses_count": 5, "verified": verified_type >= 0,
            "verified_type": verified_type, "verified_reason": "官方" if verified_type > 0 else "",
            "description": "hi", "gender": "m", "followers_count": followers, "follow_count": 3}


def write_covid(root: Path, mid: str = "4463962899193527", label: str = "rumor", detail: bool = True,
                self_in_reposts: bool = True) -> Path:
    folder = root / label / mid
    src = {"created_at": "Thu Jan 23 18:25:54 +0800 2020", "id": mid, "mid": mid, "text": "源 <b>微博</b>",
           "user": weibo_user("1"), "reposts_count": 3, "comments_count": 2, "attitudes_count": 9}
    if detail:
        dump(folder / "detail.json", src)
    comments = [
        {"created_at": "Thu Jan 23 18:31:15 +0800 2020", "id": "c1", "text": "又有消息<span class=\"url-icon\">"
         "<img alt=[允悲] src=\"x.png\"></span>", "like_count": 2, "user": weibo_user("2"),
         "comments": [{"created_at": "Thu Jan 23 19:00:00 +0800 2020", "id": "c1r", "text": "回复",
                       "user": weibo_user("3")}]},
        {"created_at": "Thu Jan 23 18:30:00 +0800 2020", "id": "c2", "text": "官方辟谣", "like_count": 0,
         "user": weibo_user("4", verified_type=1, followers=100000), "comments": False},
    ]
    reposts = [
        {"created_at": "Thu Jan 23 20:00:00 +0800 2020", "id": "p1", "text": "<a href='/n/x'>@x</a>:转",
         "raw_text": "//@x:转", "attitudes_count": 1, "reposts_count": 0, "comments_count": 0, "user": weibo_user("5")},
        {"created_at": "Thu Jan 23 20:05:00 +0800 2020", "id": "p2", "text": "", "raw_text": "",
         "user": weibo_user("6")},
    ]
    if self_in_reposts:
        reposts.insert(0, src)
    dump(folder / "comments.json", comments)
    dump(folder / "reposts.json", reposts)
    dump(folder / "comm_edges.json", [[mid, "c1"], [mid, "c2"]])
    dump(folder / "repo_edges.json", [[mid, "p1"], ["p1", "p2"]])
    return folder


def weibo_event(mid: str = "3495745049431351") -> list[dict]:
    def post(m, t, text, **kw):
        base = {"uid": f"u{m}", "mid": m, "parent": kw.pop("parent", ""), "t": t, "text": text,
                "original_text": "源", "reposts_count": 1, "comments_count": 0, "attitudes_count": 2,
                "followers_count": 100, "friends_count": 10, "bi_followers_count": 1, "statuses_count": 50,
                "favourites_count": 0, "gender": "f", "verified": False, "verified_type": -1,
                "verified_reason": "", "user_description": "desc", "user_location": "北京",
                "user_created_at": "2011-01-01 00:00:00", "screen_name": f"n{m}"}
        base.update(kw)
        return base

    return [post(mid, 1350000000, "源微博"),
            post("r2", 1350000300, "转发理由", parent=mid),
            post("r1", 1350000100, "", parent=mid, verified=True, verified_type=3),
            post("r3", 1350000300, "同时刻", parent="r2")]
