"""`mfmdp data synth`: writes loadable synthetic events with ground-truth labels."""

from __future__ import annotations

from typer.testing import CliRunner

from mfmdp.cli import app


def test_synth_writes_events_the_generic_loader_reads(tmp_path):
    from mfmdp.data.generic import load_generic

    out = tmp_path / "syn.jsonl"
    res = CliRunner().invoke(app, ["data", "synth", str(out), "-n", "3", "--responses", "100-200", "--seed", "4",
                                   "-s", "rumor_debunked", "-s", "steady_support"])
    assert res.exit_code == 0, res.output
    evs = load_generic(out)
    assert len(evs) == 3
    assert {e.metadata["scenario"] for e in evs} == {"rumor_debunked", "steady_support"}
    assert all(100 <= len(e) <= 200 and e.metadata["labels"].n == len(e) for e in evs)
    again = tmp_path / "again.jsonl"
    CliRunner().invoke(app, ["data", "synth", str(again), "-n", "3", "--responses", "100-200", "--seed", "4",
                             "-s", "rumor_debunked", "-s", "steady_support"])
    assert again.read_bytes() == out.read_bytes()


def test_synth_lists_scenarios_and_rejects_bad_input(tmp_path):
    res = CliRunner().invoke(app, ["data", "synth", "--list"])
    assert res.exit_code == 0 and "rumor_debunked" in res.output
    res = CliRunner().invoke(app, ["data", "synth", str(tmp_path / "x.jsonl"), "-s", "nope"])
    assert res.exit_code == 2 and "unknown synthetic scenario" in res.output
    res = CliRunner().invoke(app, ["data", "synth", str(tmp_path / "x.jsonl"), "--responses", "ten"])
    assert res.exit_code == 2 and "MIN-MAX" in res.output
    res = CliRunner().invoke(app, ["data", "synth"])
    assert res.exit_code == 2
