"""Source loaders on generated fixtures: ids, order, dedup, bare reposts, dates, profiles, skips, errors."""

from __future__ import annotations

import json
import shutil
from datetime import datetime, timezone

import pytest

from data_fixtures import checked_event, dump, weibo_event, write_ced, write_covid
from mfmdp.data import load
from mfmdp.data.errors import DataFormatError
from mfmdp.data.loading import LoadReport
from mfmdp.core.records import BARE_REPOST_TEXT


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=timezone.utc)


def _assert_sorted_unique(ev):
    keys = [(r.time, r.id) for r in ev.responses]
    assert keys == sorted(keys)
    assert len({r.id for r in ev.responses}) == len(ev.responses)
    assert all(r.time.tzinfo is not None and r.time.utcoffset().total_seconds() == 0 for r in ev.responses)


def test_checked(tmp_path):
    p = dump(tmp_path / "fake_news" / "abc123.json", checked_event())
    (ev,) = load(p)
    _assert_sorted_unique(ev)
    assert ev.id == "abc123" and ev.format == "checked"
    assert [r.id for r in ev.responses] == ["c1", "c3", "c2", "r2", "r1"]
    assert ev.skipped == {"duplicate_id": 1}
    assert ev.responses[0].time == utc(2020, 3, 9, 3, 26)  # China time -> UTC
    assert ev.responses[0].text == "抓到自己身上了"  # scraped leading colon dropped
    assert ev.responses[1].text == "" and ev.responses[1].behavior == "comment"  # empty comment stays empty
    assert ev.responses[3].text == BARE_REPOST_TEXT and ev.responses[3].behavior == "share"
    assert ev.topic.time == utc(2020, 3, 9, 3, 25) and ev.metadata["rumor"] is True
    assert ev.metadata["comments"] == 163


def test_checked_unparseable_dates_are_counted(tmp_path):
    obj = checked_event(reposts=[{"id": "r9", "date": "昨天", "user_id": "u", "text": ""}])
    (ev,) = load(dump(tmp_path / "x.json", obj))
    assert ev.skipped == {"unparseable_time": 1}
    assert len(ev) == 3


def test_missing_dates_are_counted_like_unparseable_ones(tmp_path):
    """A response without a date is skipped and counted (it used to abort the whole file)."""
    obj = checked_event(reposts=[{"id": "r9", "user_id": "u", "text": ""}, {"id": "r8", "date": None, "text": ""},
                                 {"id": "r7", "date": "昨天", "text": ""}])
    (ev,) = load(dump(tmp_path / "x.json", obj))
    assert ev.skipped == {"missing_time": 2, "unparseable_time": 1} and len(ev) == 3
    folder = write_covid(tmp_path / "covid")
    comments = json.loads((folder / "comments.json").read_text())
    del comments[1]["created_at"]
    dump(folder / "comments.json", comments)
    (ev,) = load(folder)
    assert ev.skipped.get("missing_time") == 1
    posts = weibo_event()
    del posts[1]["t"]
    (ev,) = load(dump(tmp_path / "w.json", posts))
    assert ev.skipped.get("missing_time") == 1


def test_implausible_times_are_refused_naming_the_range(tmp_path):
    """Year 5138 (unix seconds just under the millisecond cut-off) is not a date of a post."""
    obj = checked_event(reposts=[{"id": "r9", "date": 99_999_999_999, "user_id": "u", "text": ""},
                                 {"id": "r8", "date": "1970-01-01 08:00", "user_id": "u", "text": ""}])
    (ev,) = load(dump(tmp_path / "x.json", obj))
    assert ev.skipped == {"implausible_time": 2} and len(ev) == 3
    obj = checked_event()
    obj["date"] = "5138-11-16 09:46"
    with pytest.raises(DataFormatError, match=r"5138.*outside the plausible range 1990-01-01\.\.2100-01-01") as err:
        load(dump(tmp_path / "y.json", obj))
    assert err.value.field == "date"


def test_ced_pairs_source_and_infers_year(tmp_path):
    p = write_ced(tmp_path / "ced")
    (ev,) = load(p)
    _assert_sorted_unique(ev)
    assert ev.id == "zvUcLCeTm" and ev.format == "ced" and ev.metadata["rumor"] is True
    assert [r.id for r in ev.responses] == ["m1", "m2", "m3"]
    assert ev.skipped == {"unparseable_time": 1}
    assert ev.responses[1].time == utc(2013, 5, 11, 0, 0)  # '05月11日 08:00' takes the source's year
    assert ev.responses[0].text == BARE_REPOST_TEXT and ev.responses[0].parent == "zvUcLCeTm"
    assert ev.topic.user_id == "3186420187" and ev.topic.profile.followers == 1096
    assert ev.topic.time == utc(2013, 5, 9, 5, 46, 10)


def test_ced_folder_skips_source_posts_and_needs_pairs(tmp_path):
    root = tmp_path / "ced"
    write_ced(root, mid="A1", n=1)
    write_ced(root, mid="B2", n=2, label="non-rumor")
    events = load(root)
    assert sorted(e.id for e in events) == ["A1", "B2"]
    with pytest.raises(DataFormatError, match="CED source post"):
        load(root / "original-microblog" / "1_A1_3186420187.json")
    (root / "original-microblog" / "2_B2_3186420187.json").unlink()
    with pytest.raises(DataFormatError, match="unknown format"):
        load(root / "non-rumor-repost" / "2_B2_3186420187.json")


def test_covid_folder(tmp_path):
    folder = write_covid(tmp_path / "covid")
    (ev,) = load(folder)
    _assert_sorted_unique(ev)
    assert ev.id == folder.name and ev.format == "covid19"
    assert [r.id for r in ev.responses] == ["c2", "c1", "c1r", "p1", "p2"]
    assert ev.skipped == {"is_source": 1}
    c2, c1, c1r, p1, p2 = ev.responses
    assert c1.text == "又有消息[允悲]" and ev.topic.text == "源 微博"  # HTML stripped, emoticon alt kept
    assert p1.text == "//@x:转" and p1.behavior == "share"  # raw_text for reposts
    assert p2.text == BARE_REPOST_TEXT and p2.parent == "p1"  # parent from repo_edges
    assert c1r.parent == "c1" and c1r.behavior == "comment"  # nested reply
    assert c2.profile.verified_type == 1 and c2.profile.followers == 100000 and c2.profile.screen_name == "user4"
    assert c1.likes == 2 and c1.time == utc(2020, 1, 23, 10, 31, 15)


def test_covid_without_detail(tmp_path):
    root = tmp_path / "covid"
    f1 = write_covid(root, mid="111", detail=False, self_in_reposts=True)  # source recovered from reposts
    write_covid(root, mid="222", detail=False, self_in_reposts=False)  # source unknown: skipped
    write_covid(root, mid="333")
    report = LoadReport()
    events = load(root, report=report)
    assert sorted(e.id for e in events) == ["111", "333"]
    assert [p for p, _ in report.skipped_sources] == [str(root / "rumor" / "222")]
    assert "source unknown" in report.skipped_sources[0][1]
    assert load(f1)[0].metadata["source_from"] == "reposts.json"


def test_weibo_list(tmp_path):
    p = dump(tmp_path / "weibo" / "3495745049431351.json", weibo_event())
    (ev,) = load(p)
    _assert_sorted_unique(ev)
    assert ev.id == "3495745049431351" and ev.format == "weibo"
    assert [r.id for r in ev.responses] == ["r1", "r2", "r3"]  # tie at t=...300 broken by id
    r1 = ev.responses[0]
    assert r1.behavior == "share" and r1.text == BARE_REPOST_TEXT and r1.parent == ev.id
    assert r1.profile.verified is True and r1.profile.verified_type == 3 and r1.profile.bi_followers == 1
    assert r1.profile.created_at == utc(2010, 12, 31, 16, 0)
    assert ev.responses[2].parent == "r2" and ev.topic.profile.location == "北京"
    assert r1.time == utc(2012, 10, 12, 0, 1, 40)


@pytest.mark.parametrize("mutate, record, field", [
    (lambda o: o[2].pop("mid"), "[2]", "mid"),
    (lambda o: o[0].pop("t"), "[0]", "t"),
    (lambda o: o[1].update(text=5), "[1]", "text"),
    (lambda o: o[1].update(followers_count="lots"), "[1]", "followers_count"),
    (lambda o: o[1].update(verified="maybe"), "[1]", "verified"),
])
def test_weibo_errors_name_record_and_field(tmp_path, mutate, record, field):
    obj = weibo_event()
    mutate(obj)
    p = dump(tmp_path / "w.json", obj)
    with pytest.raises(DataFormatError) as err:
        load(p)
    assert (err.value.record, err.value.field) == (record, field) and str(p) in str(err.value)


@pytest.mark.parametrize("mutate, record, field", [
    (lambda o: o.update(comments="none"), "source", "comments"),
    (lambda o: o["comments"][1].pop("id"), "comments[1]", "id"),
    (lambda o: o["reposts"][0].update(text=3), "reposts[0]", "text"),
    (lambda o: o.update(date="?"), "source", "date"),
])
def test_checked_errors_name_record_and_field(tmp_path, mutate, record, field):
    obj = checked_event()
    mutate(obj)
    p = dump(tmp_path / "c.json", obj)
    with pytest.raises(DataFormatError) as err:
        load(p)
    assert (err.value.record, err.value.field) == (record, field)


def test_covid_errors_name_file_record_and_field(tmp_path):
    folder = write_covid(tmp_path)
    comments = json.loads((folder / "comments.json").read_text())
    comments[1]["id"] = None
    dump(folder / "comments.json", comments)
    with pytest.raises(DataFormatError) as err:
        load(folder)
    assert err.value.path == str(folder / "comments.json")
    assert (err.value.record, err.value.field) == ("[1]", "id")


def test_unknown_and_malformed_files(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"id": 1,')
    with pytest.raises(DataFormatError, match="malformed JSON"):
        load(bad)
    other = dump(tmp_path / "other.json", {"hello": "world"})
    with pytest.raises(DataFormatError, match="unknown format"):
        load(other)
    txt = tmp_path / "x.txt"
    txt.write_text("hi")
    with pytest.raises(DataFormatError, match="unsupported file type"):
        load(txt)
    with pytest.raises(DataFormatError, match="no such file"):
        load(tmp_path / "missing")
    empty = tmp_path / "empty_dir"
    empty.mkdir()
    with pytest.raises(DataFormatError, match="no events found"):
        load(empty)
    only_empty = dump(tmp_path / "ev" / "e.json", checked_event(comments=[], reposts=[]))
    with pytest.raises(DataFormatError, match="no usable responses"):
        load(only_empty)


def test_mixed_folder_loads_every_format_and_skips_unknown_files(tmp_path):
    root = tmp_path / "data"
    dump(root / "checked" / "real_news" / "c1.json", checked_event("c1"))
    write_ced(root / "ced")
    write_covid(root / "covid")
    dump(root / "weibo" / "w.json", weibo_event())
    dump(root / "notes" / "readme.json", {"not": "an event"})
    (root / "annotations.jsonl").write_text(json.dumps({"text": "x", "state": "neutral"}) + "\n")
    (root / "README.md").write_text("ignored")
    report = LoadReport()
    events = load(root, report=report)
    assert sorted(e.format for e in events) == ["ced", "checked", "covid19", "weibo"]
    assert sorted(p.rsplit("/", 1)[-1] for p, _ in report.skipped_sources) == ["annotations.jsonl", "readme.json"]
    shutil.rmtree(root / "weibo")
    assert len(load(root)) == 3
