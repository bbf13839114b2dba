"""The what-if event study: signal effects simulated by removing a real signal, against the real shift."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from typer.testing import CliRunner

from experiment_helpers import trained_tiny_run
from mfmdp.core.records import Signal
from mfmdp.core.schema import Labels
from mfmdp.data.stepping import Steps
from mfmdp.evaluate.eventstudy import (correlation, first_signal_step, load_validity, net_polarity, validity_line,
                                       without_signals_at)


def steps_with_signals(at: list[int], n_steps: int = 20) -> Steps:
    from datetime import datetime, timezone

    sig = Signal(datetime(2020, 1, 1, tzinfo=timezone.utc), "gov", "clarification")
    bounds = np.arange(0, 16 * n_steps + 1, 16)
    return Steps(bounds=bounds, is_signal=np.zeros(16 * n_steps, bool),
                 signals=[[sig] if t in at else [] for t in range(n_steps)])


def test_the_first_signal_after_warm_up_with_room_on_both_sides():
    assert first_signal_step(steps_with_signals([2, 12, 15]), warmup_steps=10, span=4) == 12
    assert first_signal_step(steps_with_signals([2, 18]), warmup_steps=10, span=4) is None  # no room after
    assert first_signal_step(steps_with_signals([6]), warmup_steps=3, span=8) is None  # no room before
    removed = without_signals_at(steps_with_signals([12, 15]), 12)
    assert not removed.signals[12] and removed.signals[15]


def test_net_polarity_reads_the_crowd_only():
    codes = np.array([0, 0, 2, 1, 0, -1], np.int8)
    labels = Labels({"state": codes})
    agent = np.array([True, True, True, True, False, True])
    assert net_polarity(labels, agent, 0, 6) == pytest.approx(2 / 4 - 1 / 4)
    assert np.isnan(net_polarity(labels, agent, 5, 6))


def test_correlation_is_undefined_without_effects_and_finds_a_real_link():
    rng = np.random.default_rng(0)
    real = rng.normal(size=40)
    linked = [{"simulated_effect": 0.5 * r + 0.1 * rng.normal(), "real_shift": r} for r in real]
    out = correlation(linked, n_boot=500)
    assert out["r"] > 0.9 and out["r_lo"] > 0.5 and out["events"] == 40
    flat = correlation([{"simulated_effect": 0.0, "real_shift": r} for r in real], n_boot=100)
    assert np.isnan(flat["r"])
    assert "undefined" in validity_line({"mf_mdp": {"validation": {**flat, "method": "mf_mdp", "side": "validation"}}},
                                        "mf_mdp")
    assert "not measured" in validity_line({}, "mf_mdp")
    measured = {"mf_mdp": {"test": {**flat, "method": "mf_mdp", "side": "test"},
                           "validation": {**out, "method": "mf_mdp", "side": "validation"}}}
    lines = validity_line(measured, "mf_mdp").splitlines()  # every checked side, validation first
    assert "r = +0.9" in lines[0] and "validation" in lines[0] and "undefined" in lines[1] and "test" in lines[1]
    assert "not measured" in validity_line(measured, "direct")


def test_a_file_from_before_the_side_was_a_key_is_read_as_its_side(tmp_path):
    (tmp_path / "whatif_validity.json").write_text(json.dumps({"mf_mdp": {"side": "test", "r": 0.5}}))
    assert load_validity(tmp_path) == {"mf_mdp": {"test": {"side": "test", "r": 0.5}}}


def test_whatif_check_writes_the_figure_that_simulate_prints(tmp_path_factory, tmp_path):
    from mfmdp.cli import app

    run = tmp_path / "run"
    shutil.copytree(trained_tiny_run(tmp_path_factory), run)
    result = CliRunner().invoke(app, ["whatif-check", str(run), "--side", "test", "--seeds", "0,1", "--steps", "2"])
    assert result.exit_code == 0, result.output
    doc = load_validity(run)["mf_mdp"]["test"]
    assert doc["method"] == "mf_mdp" and doc["side"] == "test" and doc["events_with_signal"] >= 1
    for row in doc["rows"]:
        assert len(row["effect_per_seed"]) == 2 and np.isfinite(row["real_shift"])
    said = " ".join(result.output.split())
    assert "what-if validity: " in said and "not measured" not in said
    again = CliRunner().invoke(app, ["whatif-check", str(run), "--side", "test", "--seeds", "0", "--steps", "2",
                                     "--method", "transition_only"])
    assert again.exit_code == 0, again.output
    both = json.loads((run / "whatif_validity.json").read_text())
    assert set(both) == {"mf_mdp", "transition_only"} and both["mf_mdp"]["test"]["seeds"] == [0, 1]
    # the other side's check is kept beside this one, not written over it
    CliRunner().invoke(app, ["whatif-check", str(run), "--side", "validation", "--seeds", "0", "--steps", "2"])
    sides = load_validity(run)["mf_mdp"]
    assert set(sides) == {"validation", "test"} and sides["test"]["seeds"] == [0, 1]
    bad = CliRunner().invoke(app, ["whatif-check", str(run), "--side", "train"])
    assert bad.exit_code == 2 and "expected validation or test" in bad.output
