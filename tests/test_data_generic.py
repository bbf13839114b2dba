"""The generic JSONL/CSV format: round trips, defaults, labels, and located errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mfmdp.core.schema import Labels, label_index
from mfmdp.data.dates import parse_time
from mfmdp.data.errors import DataFormatError
from mfmdp.data.generic import load_generic, looks_generic, write_events
from mfmdp.core.records import BARE_REPOST_TEXT, Event, Profile, Response, Signal, SourcePost


def _event(eid="e1", n=5) -> Event:
    t0 = parse_time("2020-03-09T11:00:00+08:00")
    rs = [Response(f"r{i}", parse_time(1583722800 + 60 * i), f"u{i}", f"text {i}" if i % 2 else BARE_REPOST_TEXT,
                   "comment" if i % 2 else "share", parent=eid, likes=i,
                   profile=Profile(followers=10 * i, verified=bool(i % 2), verified_type=1, gender="f",
                                   created_at=parse_time("2011-01-01 00:00")) if i != 2 else None)
          for i in range(n)]
    ev = Event(eid, "generic", SourcePost(eid, t0, "src", "话题", Profile(followers=5)), rs,
               signals=[Signal(parse_time(1583722900), "官方", "辟谣")], metadata={"rumor": True, "topic": "x"})
    ev.metadata["labels"] = Labels({"state": np.array([i % 3 for i in range(n)]),
                                    "stance": np.array([-1] + [2] * (n - 1))})
    return ev


@pytest.mark.parametrize("suffix", [".jsonl", ".csv"])
def test_round_trip_preserves_everything(tmp_path, suffix):
    events = [_event("e1"), _event("e2", 3)]
    path = write_events(events, tmp_path / f"events{suffix}")
    assert looks_generic(path)
    back = load_generic(path)
    assert [e.id for e in back] == ["e1", "e2"]
    for a, b in zip(events, back):
        assert b.format == "generic"
        assert list(b.responses) == list(a.responses)
        assert b.topic == a.topic
        assert b.signals == a.signals
        assert b.metadata["rumor"] is True and b.metadata["topic"] == "x"
        for d in ("state", "stance", "sentiment"):
            np.testing.assert_array_equal(b.metadata["labels"].codes[d], a.metadata["labels"].codes[d])


T = 1_600_000_000  # a plausible unix time (dates before 1990 are refused)


def test_labels_follow_sorting_and_dedup(tmp_path):
    lines = [
        {"event_id": "e", "kind": "source", "id": "s", "time": T + 100, "text": "t"},
        {"event_id": "e", "id": "b", "time": T + 300, "user_id": "u", "text": "x", "labels": {"state": "negative"}},
        {"event_id": "e", "id": "a", "time": T + 200, "user_id": "u", "text": "y", "labels": {"state": "positive"}},
        {"event_id": "e", "id": "b", "time": T + 50, "user_id": "u", "text": "dup", "labels": {"state": "neutral"}},
        {"event_id": "e", "id": "c", "time": "not a time", "user_id": "u", "text": "z"},
        {"event_id": "e", "id": "d", "time": T + 300, "user_id": "u", "behavior": "share", "text": ""},
    ]
    p = tmp_path / "e.jsonl"
    p.write_text("\n".join(json.dumps(x) for x in lines) + "\n\n")
    (ev,) = load_generic(p)
    assert [r.id for r in ev.responses] == ["a", "b", "d"]  # (time, id) order; first 'b' kept
    assert ev.skipped == {"duplicate_id": 1, "unparseable_time": 1}
    assert ev.responses[2].text == BARE_REPOST_TEXT and ev.responses[2].behavior == "share"
    assert ev.responses[0].behavior == "comment"  # the default
    assert ev.metadata["labels"].names("state") == ["positive", "negative", None]


def test_event_without_source_record_is_kept_and_flagged(tmp_path):
    p = tmp_path / "e.jsonl"
    p.write_text(json.dumps({"event_id": "x", "id": "1", "time": "2020-01-01T00:00:00Z", "text": "hi"}) + "\n")
    (ev,) = load_generic(p)
    assert ev.metadata["source_missing"] is True and ev.topic.time == ev.responses[0].time


@pytest.mark.parametrize("record, field", [
    ({"id": "1", "time": T}, "event_id"),
    ({"event_id": "e", "time": T}, "id"),
    ({"event_id": "e", "kind": "source", "id": "s"}, "time"),
    ({"event_id": "e", "id": "1", "time": T, "behavior": "like"}, "behavior"),
    ({"event_id": "e", "id": "1", "time": T, "kind": "post"}, "kind"),
    ({"event_id": "e", "id": "1", "time": T, "likes": "many"}, "likes"),
    ({"event_id": "e", "id": "1", "time": T, "profile": {"followers": "x"}}, "profile.followers"),
    ({"event_id": "e", "id": "1", "time": T, "profile": {"fans": 3}}, "profile.fans"),
    ({"event_id": "e", "id": "1", "time": T, "labels": {"state": "happy"}}, "labels.state"),
    ({"event_id": "e", "id": "1", "time": T, "text": ["a"]}, "text"),
    ({"event_id": "e", "kind": "signal", "time": T, "source": "gov"}, "text"),
    ({"event_id": "e", "kind": "source", "id": "s", "time": "yesterday"}, "time"),
])
def test_bad_records_name_file_line_and_field(tmp_path, record, field):
    p = tmp_path / "bad.jsonl"
    good = {"event_id": "e", "id": "0", "time": T, "text": "ok"}
    p.write_text(json.dumps(good) + "\n" + json.dumps(record) + "\n")
    with pytest.raises(DataFormatError) as err:
        load_generic(p)
    assert err.value.field == field and err.value.record == "line 2"
    assert str(p) in str(err.value) and f"'{field}'" in str(err.value)


def test_malformed_json_and_empty_files(tmp_path):
    p = tmp_path / "bad.jsonl"
    p.write_text(json.dumps({"event_id": "e", "id": "1", "time": T}) + '\n{"event_id": \n')
    with pytest.raises(DataFormatError, match=r"line 2.*malformed JSON"):
        load_generic(p)
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    with pytest.raises(DataFormatError, match="empty"):
        load_generic(empty)
    only_bad_times = tmp_path / "t.jsonl"
    only_bad_times.write_text(json.dumps({"event_id": "e", "id": "1", "time": "??"}) + "\n")
    with pytest.raises(DataFormatError, match="no usable responses.*unparseable_time=1"):
        load_generic(only_bad_times)


def test_csv_header_without_event_id(tmp_path):
    p = tmp_path / "x.csv"
    p.write_text("id,time\n1,2\n")
    assert not looks_generic(p)
    with pytest.raises(DataFormatError, match="event_id"):
        load_generic(p)


def test_label_codes_match_schema(tmp_path):
    p = tmp_path / "e.csv"
    p.write_text("event_id,id,time,text,behavior,labels.state,labels.behavior\n"
                 "e,1,2020-01-01 08:00,hi,comment,neutral,comment\n")
    (ev,) = load_generic(p)
    assert ev.metadata["labels"].codes["state"][0] == label_index("state", "neutral")
    assert ev.metadata["labels"].codes["behavior"][0] == label_index("behavior", "comment")
    assert ev.responses[0].time == parse_time("2020-01-01T00:00:00+00:00")  # China time without offset
