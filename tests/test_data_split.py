"""Splits: date order, near-duplicate groups on one side, seeded, reusable file."""

from __future__ import annotations

import json

import pytest

from mfmdp.data.dates import parse_time
from mfmdp.data.errors import DataFormatError
from mfmdp.core.records import Event, Response, SourcePost
from mfmdp.data.split import SPLITS, char_ngrams, load_split, make_split, near_duplicate_groups, save_split

TEMPLATE = "【#新疆新增本土病例{}例#，#新疆现有确诊病例{}例#】新疆维吾尔自治区卫生健康委员会通报最新疫情情况"


def _ev(eid: str, day: int, text: str, fmt: str = "checked") -> Event:
    t = parse_time(f"2020-03-{day:02d} 10:00")
    return Event(eid, fmt, SourcePost(eid, t, "u", text), [Response(eid + "r", t, "u", "x", "comment")])


def _events() -> list[Event]:
    evs = [_ev(f"e{d:02d}", d, f"独立话题 {d} " + "甲乙丙丁戊己庚辛壬癸"[d % 10] * 3 + str(d * 7919)) for d in range(1, 21)]
    evs += [_ev("t1", 3, TEMPLATE.format(14, 592)), _ev("t2", 18, TEMPLATE.format(7, 438)),
            _ev("t3", 25, TEMPLATE.format(3, 401))]
    return evs


def test_ngrams_and_groups():
    assert char_ngrams("ab cde") == frozenset({"abcd", "bcde"})
    assert char_ngrams("ab") == frozenset({"ab"})
    groups = near_duplicate_groups([TEMPLATE.format(1, 2), "完全不同的一段文字内容", TEMPLATE.format(3, 4), ""])
    assert sorted(map(sorted, groups)) == [[0, 2], [1], [3]]


def test_date_order_groups_and_fractions():
    evs = _events()
    s = make_split(evs, seed=0)
    assert set(s.assignments) == {e.id for e in evs}
    assert len({s.of(t) for t in ("t1", "t2", "t3")}) == 1  # the template series stays together
    assert s.groups == [["t1", "t2", "t3"]]
    order = {name: i for i, name in enumerate(SPLITS)}
    by_time = sorted((e for e in evs if not e.id.startswith("t")), key=lambda e: e.topic.time)
    ranks = [order[s.of(e.id)] for e in by_time]
    assert ranks == sorted(ranks)  # train < validation < test in time
    c = s.counts()
    assert c["train"] >= c["validation"] > 0 and c["test"] > 0 and sum(c.values()) == len(evs)


def test_seed_breaks_ties_only_and_is_reproducible():
    evs = [_ev(f"x{i}", 1, f"话题编号{i * 104729}唯一内容{i}") for i in range(30)]  # all on one date
    a, b, c = make_split(evs, seed=1), make_split(evs, seed=1), make_split(evs, seed=2)
    assert a.assignments == b.assignments and a.assignments != c.assignments


def test_per_format_splits_each_format_by_its_own_dates():
    evs = [_ev(f"old{i}", 1 + i, f"旧事件{i}号{i * 7907}", "ced") for i in range(10)]
    evs += [_ev(f"new{i}", 10 + i, f"新事件{i}号{i * 7919}", "checked") for i in range(10)]
    global_split = make_split(evs)
    assert all(global_split.of(f"old{i}") == "train" for i in range(10))
    per = make_split(evs, per_format=True)
    assert {per.of(f"old{i}") for i in range(10)} == set(SPLITS)


def test_save_load_and_errors(tmp_path):
    s = make_split(_events(), seed=5, fractions=(0.5, 0.25, 0.25))
    p = save_split(s, tmp_path / "split.json")
    back = load_split(p)
    assert back.assignments == s.assignments and back.seed == 5 and back.fractions == (0.5, 0.25, 0.25)
    assert [e.id for e in back.select(_events(), "test")] == back.ids("test")
    with pytest.raises(ValueError, match="fractions"):
        make_split(_events(), fractions=(0.5, 0.5, 0.5))
    with pytest.raises(DataFormatError, match="more than once"):
        make_split(_events() + _events()[:1])
    doc = json.loads(p.read_text())
    doc["assignments"]["e01"] = "holdout"
    p.write_text(json.dumps(doc))
    with pytest.raises(DataFormatError, match="holdout"):
        load_split(p)
    with pytest.raises(DataFormatError, match="cannot read"):
        load_split(tmp_path / "missing.json")
    with pytest.raises(KeyError, match="nope"):
        s.of("nope")
