"""Scenario JSONL -> signals, with located errors; signals attach to steps."""

from __future__ import annotations

import json

import pytest

from mfmdp.data.dates import parse_time
from mfmdp.data.errors import DataFormatError
from mfmdp.core.records import Event, Response, SourcePost
from mfmdp.data.scenario import load_scenario, write_scenario
from mfmdp.data.stepping import make_steps


def test_load_sorted_and_round_trip(tmp_path):
    p = tmp_path / "s.jsonl"
    p.write_text(json.dumps({"time": "2020-03-09 12:00", "source": "官方", "text": "澄清"}) + "\n\n"
                 + json.dumps({"time": 1583715600, "source": "媒体", "text": "报道"}) + "\n")
    sigs = load_scenario(p)
    assert [s.source for s in sigs] == ["媒体", "官方"]
    assert sigs[1].time == parse_time("2020-03-09T04:00:00+00:00")
    assert load_scenario(write_scenario(sigs, tmp_path / "b.jsonl")) == sigs


T = 1_600_000_000  # a plausible unix time (dates before 1990 are refused)


@pytest.mark.parametrize("line, field", [
    ({"source": "a", "text": "b"}, "time"),
    ({"time": T, "text": "b"}, "source"),
    ({"time": T, "source": "a"}, "text"),
    ({"time": "soon", "source": "a", "text": "b"}, "time"),
    ({"time": 99_999_999_999, "source": "a", "text": "b"}, "time"),  # year 5138
    ({"time": "1969-12-31T00:00:00Z", "source": "a", "text": "b"}, "time"),
    ({"time": T, "source": 3, "text": "b"}, "source"),
    ({"time": T, "source": "a", "text": "  "}, "text"),
    ({"time": T, "source": "a", "text": "b", "when": 2}, "when"),
])
def test_errors_name_line_and_field(tmp_path, line, field):
    p = tmp_path / "s.jsonl"
    p.write_text(json.dumps({"time": T, "source": "a", "text": "ok"}) + "\n" + json.dumps(line) + "\n")
    with pytest.raises(DataFormatError) as err:
        load_scenario(p)
    assert (err.value.record, err.value.field) == ("line 2", field) and str(p) in str(err.value)


def test_malformed_empty_missing(tmp_path):
    p = tmp_path / "s.jsonl"
    p.write_text("[1, 2\n")
    with pytest.raises(DataFormatError, match="line 1.*malformed"):
        load_scenario(p)
    p.write_text("\n")
    with pytest.raises(DataFormatError, match="no signals"):
        load_scenario(p)
    with pytest.raises(DataFormatError, match="not found"):
        load_scenario(tmp_path / "nope.jsonl")


def test_scenario_signals_attach_to_steps(tmp_path):
    t = [parse_time(T + 10 * i) for i in range(40)]
    ev = Event("e", "generic", SourcePost("e", t[0], "u", "x"),
               [Response(str(i), t[i], "u", "x", "comment") for i in range(40)])
    p = tmp_path / "s.jsonl"
    p.write_text(json.dumps({"time": T + 10 * 20, "source": "gov", "text": "debunk"}) + "\n")
    steps = make_steps(ev, size=16, scenario=load_scenario(p))
    assert [len(s) for s in steps.signals] == [0, 1, 0]
