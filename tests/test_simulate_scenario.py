"""What-if scenarios with a tiny trained run: injected signals, paired baseline, plot, summary, CLI."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from experiment_helpers import trained_tiny_run
from mfmdp.core.schema import Labels
from mfmdp.core.records import Signal
from mfmdp.data.scenario import write_scenario
from mfmdp.data.stepping import make_steps
from mfmdp.data.synthetic import generate_event, write_synthetic
from mfmdp.evaluate.whatif import effect_summary, run_scenario
from mfmdp.evaluate.windows import windowed_states
from mfmdp.simulate.results import REAL_FILE, RunDir, read_manifest, sim_files
from mfmdp.simulate.scenario import coverage_warning, load_trained, signal_coverage, simulate_event

CLARIFICATION = "【澄清】网传消息系不实信息，请勿传播。"


@pytest.fixture(scope="module")
def run_root(tmp_path_factory):
    return trained_tiny_run(tmp_path_factory)


@pytest.fixture(scope="module")
def rumor():
    return generate_event("rumor_debunked", n_responses=320, seed=21)


def signal_at(event, slot: int, text: str = CLARIFICATION) -> Signal:
    return Signal(event.responses[slot].time, "官方辟谣", text)


def test_windowed_states_counts_only_known_agent_states():
    codes = np.array([0, 0, 2, -1, 1, 2, 0, 0], dtype=np.int8)
    agent = np.array([True, True, True, True, True, False, True, True])
    centres, shares = windowed_states(codes, agent, window=2, stride=2)
    # known agent slots: 0,1,2,4,6,7 -> windows (0,1), (2,4), (6,7)
    assert centres.tolist() == [1, 4, 7]
    assert np.allclose(shares, [[1, 0, 0], [0, 0.5, 0.5], [1, 0, 0]])


def _windowed_states_reference(codes, agent, window, stride):
    """The scenario windows as first written (one-hot cumulative sums), before they moved to
    mfmdp.evaluate.windows and were expressed with group_counts."""
    idx = np.flatnonzero(agent & (codes >= 0))
    if len(idx) == 0:
        return np.zeros(0), np.zeros((0, 3))
    window = min(window, len(idx))
    starts = np.arange(0, len(idx) - window + 1, max(1, stride))
    onehot = np.zeros((len(idx), 3))
    onehot[np.arange(len(idx)), codes[idx]] = 1.0
    csum = np.r_[np.zeros((1, 3)), np.cumsum(onehot, axis=0)]
    return idx[starts + window // 2], (csum[starts + window] - csum[starts]) / window


@pytest.mark.parametrize("n,window,stride", [(500, 32, 8), (500, 128, 32), (40, 128, 32), (97, 10, 1), (0, 8, 2)])
def test_windowed_states_unchanged_by_the_move(n, window, stride):
    rng = np.random.default_rng(n + window)
    codes = rng.integers(-1, 3, n).astype(np.int8)
    agent = rng.random(n) > 0.1
    got, want = windowed_states(codes, agent, window, stride), _windowed_states_reference(codes, agent, window, stride)
    assert np.array_equal(got[0], want[0]) and np.array_equal(got[1], want[1])
    assert got[1].shape[1] == 3 and (n == 0 or len(got[0]) > 0)


def test_signal_coverage_and_warning(rumor):
    with_signal = make_steps(rumor, 16, scenario=[signal_at(rumor, 250)])  # its own debunk is at slot 102
    without = make_steps(rumor, 16)
    empty = make_steps(generate_event("steady_support", n_responses=64, seed=0, signal=None), 16)
    cov = signal_coverage([with_signal, empty])
    assert cov["train_steps_with_signals"] >= 2  # the event's own debunk + the injected one
    assert cov["train_events_with_signals"] == 1 and cov["train_events"] == 2
    assert coverage_warning(cov) is None
    none = signal_coverage([empty])
    assert none["train_steps_with_signals"] == 0
    assert "never saw" in coverage_warning(none)
    assert "cannot tell" in coverage_warning(None)
    assert signal_coverage([without])["train_steps_with_signals"] >= 1


def test_scenario_is_paired_with_the_baseline(run_root, rumor):
    run = load_trained(run_root, methods=["mf_mdp"])
    assert run.signals_seen["train_steps"] > 0
    injected_slot = 120
    outcome = simulate_event(run, rumor, [signal_at(rumor, injected_slot)], "mf_mdp", seeds=[0, 1])
    step = outcome.injected[0]["step"]
    assert step == injected_slot // 16 or step == injected_slot // 16 - 1
    start = int(outcome.bounds[step])
    for seed in (0, 1):
        base, scen = outcome.baseline[seed].codes["state"], outcome.scenario[seed].codes["state"]
        assert np.array_equal(base[:start], scen[:start])  # same seed: identical before the signal
    assert any(not np.array_equal(outcome.baseline[s].codes["state"][start:], outcome.scenario[s].codes["state"][start:])
               for s in (0, 1)), "the injected signal changed nothing"
    summary = effect_summary(outcome)
    assert summary["identical_before_injection"] is True
    assert summary["from_slot"] == max(start, outcome.warmup_slots)
    assert summary["effect_mean"] == pytest.approx(summary["net_polarity_scenario"] - summary["net_polarity_baseline"])
    assert summary["effect_p10"] <= summary["effect_mean"] <= summary["effect_p90"]


def test_run_scenario_writes_trajectories_plot_summary_manifest(run_root, rumor, tmp_path):
    run = load_trained(run_root, methods=["mf_mdp"])
    signals = [signal_at(rumor, 20), signal_at(rumor, 150)]  # the first falls in the warm-up
    out = tmp_path / "scen"
    summary = run_scenario(run, [rumor], signals, out, method="mf_mdp", seeds=[0, 1], progress=False)
    for kind in ("baseline", "scenario"):  # two run directories in the layout of mfmdp.simulate.results
        ev_dir = out / kind / "events" / rumor.id
        assert [(m, s) for m, s, _ in sim_files(ev_dir)] == [("mf_mdp", 0), ("mf_mdp", 1)]
        for seed in (0, 1):
            df = pd.read_parquet(ev_dir / f"sim__mf_mdp__seed{seed}.parquet")
            assert len(df) == len(rumor) and {"state", "text", "warmup", "is_signal"} <= set(df.columns)
            assert (ev_dir / f"trajectory__mf_mdp__seed{seed}.parquet").is_file()
        assert pd.read_parquet(ev_dir / REAL_FILE).attrs["event_id"] == rumor.id
        tree = read_manifest(out / kind)
        assert tree["kind"] == f"scenario {kind}" and tree["display_names"] == {"mf_mdp": "MF-MDP"}
    assert sorted(p.name for p in out.iterdir()) == ["baseline", "manifest.json", "plots", "scenario", "summary.json"]
    png = out / summary["plots"][0]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    on_disk = json.loads((out / "summary.json").read_text())
    assert on_disk["method"] == "mf_mdp" and len(on_disk["signals"]) == 2
    assert any("warm-up" in w for w in on_disk["warnings"])
    ev = on_disk["events"][0]
    assert ev["identical_before_injection"] and ev["responses_compared"] > 0
    assert [s["step"] for s in ev["injected"]] == sorted(s["step"] for s in ev["injected"])
    assert on_disk["runs"] == ["baseline", "scenario"]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["kind"] == "scenario" and manifest["seeds"] == [0, 1]


def test_models_that_never_saw_signals_are_warned_about(run_root, rumor, tmp_path, caplog):
    run_dir = tmp_path / "run"
    shutil.copytree(run_root / "models", run_dir / "models")
    shutil.copy(run_root / "config.yaml", run_dir / "config.yaml")
    manifest = json.loads((run_root / "manifest.json").read_text())
    manifest["signals_seen"] = {"train_steps": 40, "train_steps_with_signals": 0, "train_events_with_signals": 0,
                                "train_events": 2}
    (run_dir / "manifest.json").write_text(json.dumps(manifest))
    run = load_trained(run_dir, methods=["mf_mdp"])
    with caplog.at_level("WARNING"):
        summary = run_scenario(run, [rumor], [signal_at(rumor, 150)], tmp_path / "out", seeds=[0], progress=False)
    assert any("never saw an exogenous signal" in w for w in summary["warnings"])
    assert "never saw an exogenous signal" in caplog.text


def test_signal_coverage_is_recounted_for_runs_without_it(run_root, tmp_path):
    run_dir = tmp_path / "old_run"
    shutil.copytree(run_root / "models", run_dir / "models")
    for name in ("config.yaml", "split.json"):
        shutil.copy(run_root / name, run_dir / name)
    manifest = json.loads((run_root / "manifest.json").read_text())
    recorded = manifest.pop("signals_seen")
    (run_dir / "manifest.json").write_text(json.dumps(manifest))
    assert load_trained(run_dir, methods=["mf_mdp"]).signals_seen == recorded


def test_floors_without_signal_input_are_refused(run_root):
    with pytest.raises(ValueError, match="never reads exogenous signals"):
        load_trained(run_root, methods=["persistence"])


def test_cli_simulate_with_scenario(run_root, rumor, tmp_path):
    from mfmdp.cli import app

    events = write_synthetic([rumor], tmp_path / "events.jsonl")
    scenario = write_scenario([signal_at(rumor, 150)], tmp_path / "s.jsonl")
    out = tmp_path / "out"
    res = CliRunner().invoke(app, ["simulate", str(run_root), str(events), "--scenario", str(scenario),
                                   "--seeds", "0,1", "--out", str(out), "--event", rumor.id])
    assert res.exit_code == 0, res.output
    assert "effect" in res.output and (out / "summary.json").is_file()
    assert "what-if validity: not measured" in " ".join(res.output.split())  # no whatif-check on this run
    # the user sees how much the agents' evidence moved the states in this run (here: calibrated)
    assert "Coupling of the agents' evidence" in res.output and "validation events" in " ".join(res.output.split())
    assert len(list((out / "plots").glob("*.png"))) == 1
    assert str(out / "baseline") in " ".join(res.output.split())

    # both trees are run directories: `mfmdp evaluate` scores them like a run of `mfmdp run`
    for kind in ("baseline", "scenario"):
        res = CliRunner().invoke(app, ["evaluate", str(out / kind), "--window", "32", "--n-boot", "50",
                                       "--max-event-plots", "1"])
        assert res.exit_code == 0, res.output
        metrics = pd.read_csv(out / kind / "metrics.csv")
        assert set(metrics["method"]) == {"mf_mdp", "oracle"} and set(metrics["seed"]) == {0, 1}
        assert set(metrics["event"]) == {rumor.id} and metrics["kl"].notna().any()
    res = CliRunner().invoke(app, ["evaluate", str(out)])  # OUT itself is not a run: say which folders are
    assert res.exit_code == 1 and "no events/ folder" in res.output, res.output
    assert str(out / "baseline") in " ".join(res.output.split())

    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"time": "2020-01-01T00:00:00+08:00", "source": "gov"}\n')
    res = CliRunner().invoke(app, ["simulate", str(run_root), str(events), "--scenario", str(bad), "--out", str(out)])
    assert res.exit_code == 2 and "bad.jsonl" in res.output and "text" in res.output
    res = CliRunner().invoke(app, ["simulate", str(run_root), str(events), "--event", "nope", "--out", str(out)])
    assert res.exit_code == 2 and "nope" in res.output


def test_cli_without_scenario_simulates_baseline_only(run_root, rumor, tmp_path):
    from mfmdp.cli import app

    events = write_synthetic([rumor], tmp_path / "events.jsonl")
    out = tmp_path / "out"
    res = CliRunner().invoke(app, ["simulate", str(run_root), str(events), "--seeds", "3", "--out", str(out),
                                   "--method", "direct"])
    assert res.exit_code == 0, res.output
    ev_dir = RunDir(out / "baseline").event_dir(rumor.id)
    assert (ev_dir / "sim__direct__seed3.parquet").is_file()
    assert not (out / "scenario").exists()
    assert json.loads((out / "summary.json").read_text())["runs"] == ["baseline"]
    sim = pd.read_parquet(ev_dir / "sim__direct__seed3.parquet")
    assert Labels({"state": sim["state"].to_numpy(np.int8)}).n == len(rumor)


def test_cli_annotator_override_for_events_without_labels(run_root, rumor, tmp_path):
    """The tiny run used the generator's ground truth; events without labels need an annotator."""
    from mfmdp.cli import app
    from mfmdp.data.generic import write_events

    from dataclasses import replace

    events = tmp_path / "unlabelled.jsonl"
    write_events([replace(rumor, metadata={k: v for k, v in rumor.metadata.items() if k != "labels"})], events)
    out = tmp_path / "out"
    res = CliRunner().invoke(app, ["simulate", str(run_root), str(events), "--seeds", "0", "--out", str(out)])
    assert res.exit_code == 2 and "--annotator offline" in res.output
    res = CliRunner().invoke(app, ["simulate", str(run_root), str(events), "--seeds", "0", "--out", str(out),
                                   "--annotator", "offline:nosnownlp"])
    assert res.exit_code == 0, res.output
    assert (out / "baseline" / "events" / rumor.id / "sim__mf_mdp__seed0.parquet").is_file()


def test_llm_summariser_of_the_run_is_used(run_root, rumor, tmp_path):
    """A run configured with an LLM summariser simulates scenarios with it (here the fake backend)."""
    import yaml

    run_dir = tmp_path / "llm_run"
    shutil.copytree(run_root / "models", run_dir / "models")
    shutil.copy(run_root / "manifest.json", run_dir / "manifest.json")
    cfg = yaml.safe_load((run_root / "config.yaml").read_text())
    cfg["summariser"] = "llm:fake"
    (run_dir / "config.yaml").write_text(yaml.safe_dump(cfg))
    run = load_trained(run_dir, methods=["mf_mdp"])
    assert run.models.synopsis_factory is not None
    summary = run_scenario(run, [rumor], [signal_at(rumor, 150)], tmp_path / "out", seeds=[0], progress=False)
    assert summary["events"][0]["identical_before_injection"]


def _file_hashes(root) -> dict[str, str]:
    import hashlib

    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_scenarios_leave_the_source_run_byte_identical(run_root, rumor, tmp_path):
    """--out elsewhere writes its caches to OUT/cache; --out RUN_DIR (or inside its folders) is refused."""
    from mfmdp.cli import app

    run_dir = tmp_path / "run"
    shutil.copytree(run_root, run_dir)
    before = _file_hashes(run_dir)
    events = write_synthetic([rumor], tmp_path / "events.jsonl")
    scenario = write_scenario([signal_at(rumor, 150)], tmp_path / "s.jsonl")
    args = ["simulate", str(run_dir), str(events), "--scenario", str(scenario), "--seeds", "0",
            "--annotator", "offline:nosnownlp"]  # annotating fills a label store: in OUT/cache only
    out = tmp_path / "out"
    res = CliRunner().invoke(app, [*args, "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert list((out / "cache" / "labels").glob("*.parquet"))
    for bad_out in (run_dir, run_dir / "events", run_dir / "plots" / "x", run_dir / "."):
        res = CliRunner().invoke(app, [*args, "--out", str(bad_out)])
        assert res.exit_code == 2 and "source run" in res.output, res.output
    run = load_trained(run_dir, methods=["mf_mdp"], annotator="offline:nosnownlp")  # API: a temporary cache
    simulate_event(run, rumor, [signal_at(rumor, 150)], "mf_mdp", seeds=[0])
    with pytest.raises(ValueError, match="source run"):
        run_scenario(run, [rumor], [], run_dir, seeds=[0], progress=False)
    assert _file_hashes(run_dir) == before
    res = CliRunner().invoke(app, [*args, "--out", str(run_dir / "scenarios" / "a")])  # a new subfolder is fine
    assert res.exit_code == 0, res.output
    assert {k: v for k, v in _file_hashes(run_dir).items() if not k.startswith("scenarios")} == before


def test_signals_far_outside_the_event_are_refused_naming_its_time_range(run_root, rumor, tmp_path):
    from datetime import timedelta

    from mfmdp.cli import app

    first, last = rumor.responses[0].time, rumor.responses[-1].time
    late = Signal(last + timedelta(days=3650), "官方辟谣", CLARIFICATION)
    early = Signal(first - timedelta(days=2), "官方辟谣", CLARIFICATION)
    run = load_trained(run_root, methods=["mf_mdp"], cache_dir=tmp_path / "cache")
    for sig in (late, early):
        with pytest.raises(ValueError, match="outside the event's time range") as err:
            run_scenario(run, [rumor], [sig], tmp_path / "out", seeds=[0], progress=False)
        assert first.isoformat() in str(err.value) and last.isoformat() in str(err.value)
    assert not (tmp_path / "out" / "summary.json").exists()
    events = write_synthetic([rumor], tmp_path / "events.jsonl")
    scenario = write_scenario([late], tmp_path / "late.jsonl")
    res = CliRunner().invoke(app, ["simulate", str(run_root), str(events), "--scenario", str(scenario),
                                   "--seeds", "0", "--out", str(tmp_path / "out")])
    assert res.exit_code == 2 and "time range" in res.output, res.output
    just_after = Signal(last + timedelta(hours=2), "官方辟谣", CLARIFICATION)  # within the slack: a warning
    summary = run_scenario(run, [rumor], [just_after], tmp_path / "out", seeds=[0], progress=False)
    assert any("after the event's last response" in w for w in summary["warnings"])


def test_cli_simulate_names_a_bad_events_file_and_can_skip_it(run_root, rumor, tmp_path):
    from mfmdp.cli import app

    folder = tmp_path / "events"
    write_synthetic([rumor], folder / "good.jsonl")
    (folder / "bad.jsonl").write_text((folder / "good.jsonl").read_text().splitlines()[0] + '\n{"event_id": \n')
    args = ["simulate", str(run_root), str(folder), "--seeds", "0", "--event", rumor.id]
    res = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "out1")])
    assert res.exit_code == 2 and "bad.jsonl" in res.output and "Traceback" not in res.output
    res = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "out2"), "--skip-bad"])
    assert res.exit_code == 0, res.output
    assert str(folder / "bad.jsonl") in " ".join(res.output.split())
