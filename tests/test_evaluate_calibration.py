"""The coupling (evidence weight, half-life) fitted in closed loop on validation
(simulation.evidence_weight: calibrate): the one-standard-error choice, the stored record, its reuse
and refusal, the weight's decay, and the clear errors."""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest
from pydantic import ValidationError

from experiment_helpers import tiny_config, trained_tiny_run
from mfmdp.evaluate.calibration import one_se_choice
from mfmdp.simulate.coupling import CALIBRATION_MARKER, calibrated_method, calibration_dir
from mfmdp.simulate.config import DEFAULT_CALIBRATION_GRID, ConfigError, Coupling, ExperimentConfig
from mfmdp.simulate.stages import ResumeRefused


@pytest.fixture(scope="module")
def run_root(tmp_path_factory):
    return trained_tiny_run(tmp_path_factory)


def test_the_least_evidence_within_one_standard_error_of_the_best_is_chosen():
    rng = np.random.default_rng(0)
    base = rng.uniform(0.1, 0.2, size=20)
    # candidate 1 is best on average, but by less than the events' spread: the agents' evidence says nothing
    noisy = np.stack([base, base - 0.001 + rng.normal(0, 0.01, 20), base + 0.05])
    i, summary = one_se_choice(noisy)
    assert i == 0 and summary["best"] == 1
    # candidate 1 better on every event by far more than the spread: taken
    clear = np.stack([base, base - 0.03 + rng.normal(0, 0.001, 20), base + 0.05])
    assert one_se_choice(clear)[0] == 1


def test_events_without_a_score_are_left_out_and_none_left_is_an_error():
    kl = np.array([[0.2, np.nan, 0.1], [0.1, 0.3, 0.05]])
    _, summary = one_se_choice(kl)
    assert summary["mean_kl"] == pytest.approx([0.15, 0.075]) and summary["scored_events"] == 2
    with pytest.raises(ValueError, match="no validation event"):
        one_se_choice(np.full((2, 3), np.nan))


def test_couplings_are_ordered_from_the_least_evidence():
    order = [c.label() for c in sorted(DEFAULT_CALIBRATION_GRID, key=Coupling.order)]
    assert order == ["w=0", "w=1, half-life 5", "w=1, half-life 15", "w=1, half-life 40", "w=0.5", "w=1"]


def test_the_weight_halves_every_half_life_after_warm_up():
    from mfmdp.simulate.loop import LoopParts, evidence_weight_at

    parts = LoopParts(policy=None, annotator=None, encoder=None, evidence_weight=0.8, evidence_half_life=10)
    assert [evidence_weight_at(parts, a) for a in (0, 10, 20)] == pytest.approx([0.8, 0.4, 0.2])
    assert evidence_weight_at(LoopParts(policy=None, annotator=None, encoder=None, evidence_weight=0.8), 50) == 0.8


def test_the_calibrated_method_is_mf_mdp_else_the_first_that_reads_the_forecast():
    assert calibrated_method(["direct", "own_history", "mf_mdp"]) == "mf_mdp"
    assert calibrated_method(["direct", "no_sampling", "own_history"]) == "no_sampling"
    assert calibrated_method(["direct", "persistence"]) is None


def test_config_accepts_calibrate_or_a_non_negative_weight():
    sim = ExperimentConfig().simulation
    assert sim.evidence_weight == "calibrate" and sim.calibration_grid == list(DEFAULT_CALIBRATION_GRID)
    assert ExperimentConfig.model_validate({"simulation": {"evidence_weight": 0.3}}).simulation.evidence_weight == 0.3
    grid = ExperimentConfig.model_validate({"simulation": {"calibration_grid": [
        {"weight": 1}, {"weight": 0}, {"weight": 0}, {"weight": 1, "half_life": 3}]}})
    assert [c.label() for c in grid.simulation.calibration_grid] == ["w=0", "w=1, half-life 3", "w=1"]
    for bad in ({"evidence_weight": -0.1}, {"evidence_weight": "auto"}, {"calibration_grid": []},
                {"calibration_grid": [{"weight": -1.0}]}, {"calibration_grid": [{"weight": 1, "half_life": 0}]},
                {"evidence_half_life": 0}):
        with pytest.raises(ValidationError):
            ExperimentConfig.model_validate({"simulation": bad})


def test_a_run_calibrates_on_validation_and_uses_the_chosen_weight(run_root):
    record = json.loads((calibration_dir(run_root) / CALIBRATION_MARKER).read_text())
    manifest = json.loads((run_root / "manifest.json").read_text())
    assert set(record["events"]) <= set(manifest["split"]["validation"]) and record["events"]
    grid = [Coupling(**c) for c in record["grid"]]
    assert grid == tiny_config().simulation.calibration_grid and record["method"] == "mf_mdp"
    kl = np.array(record["kl"])
    assert kl.shape == (len(grid), len(record["events"])) and np.isfinite(kl).all()
    chosen = grid[one_se_choice(kl)[0]]
    assert (record["evidence_weight"], record["evidence_half_life"]) == (chosen.weight, chosen.half_life)
    assert manifest["coupling"] == {"evidence_weight": chosen.weight, "evidence_half_life": chosen.half_life,
                                    "calibration_events": len(record["events"])}
    # a scenario reads the same coupling back from the run
    from mfmdp.simulate.scenario import load_trained

    assert load_trained(run_root).models.coupling == (chosen.weight, chosen.half_life)


def test_a_changed_grid_is_refused_on_resume_and_refitted_with_models_from(run_root, tmp_path):
    from mfmdp.experiment import run_experiment

    again = tmp_path / "again"
    shutil.copytree(run_root, again)
    changed = tiny_config(**{"simulation.calibration_grid": [{"weight": 0}, {"weight": 1}]})
    with pytest.raises(ResumeRefused, match="calibration_grid"):
        run_experiment(changed, again, progress=False)

    fresh = tmp_path / "fresh"
    run_experiment(changed.model_copy(update={"methods": ["mf_mdp", "transition_only"]}), fresh,
                   progress=False, models_from=run_root)
    grid = json.loads((calibration_dir(fresh) / CALIBRATION_MARKER).read_text())["grid"]
    assert grid == [{"weight": 0.0, "half_life": None}, {"weight": 1.0, "half_life": None}]
    old = run_root / "models" / "transition" / "training.json"
    assert os.stat(fresh / "models" / "transition" / "training.json").st_ino == os.stat(old).st_ino  # reused


def test_a_fixed_weight_needs_no_calibration(run_root, tmp_path):
    from mfmdp.experiment import run_experiment

    out = tmp_path / "fixed"
    cfg = tiny_config(**{"simulation.evidence_weight": 0.25, "simulation.evidence_half_life": 7, "simulation.seeds": [0]})
    run_experiment(cfg.model_copy(update={"methods": ["mf_mdp"]}), out, progress=False, models_from=run_root)
    assert not (calibration_dir(out) / CALIBRATION_MARKER).exists()
    assert json.loads((out / "manifest.json").read_text())["coupling"] == {"evidence_weight": 0.25,
                                                                          "evidence_half_life": 7}


def test_calibrate_without_validation_events_or_a_stored_weight_is_a_clear_error(run_root):
    from mfmdp.evaluate.calibration import fit_coupling
    from mfmdp.simulate.methods import get_method
    from mfmdp.simulate.models import Models
    from mfmdp.simulate.runner import simulate_method

    with pytest.raises(ConfigError, match="needs validation events"):
        fit_coupling(tiny_config(), [], models=None, progress=False)
    models = Models(encoder=None, annotator=None, transitions={}, policies={}, regression=None)
    with pytest.raises(ValueError, match="no calibrated coupling"):
        simulate_method(tiny_config(), get_method("mf_mdp"), replay=None, models=models, seed=0)


def test_one_ray_session_serves_every_batch_inside_it(monkeypatch):
    """The calibration runs one batch of tasks per coupling inside one session: Ray starts once."""
    import sys
    import types

    from mfmdp.simulate.distributed import ray_session

    calls = {"init": 0, "shutdown": 0}
    fake = types.SimpleNamespace(is_initialized=lambda: calls["init"] > calls["shutdown"],
                                 init=lambda **kw: calls.__setitem__("init", calls["init"] + 1),
                                 shutdown=lambda: calls.__setitem__("shutdown", calls["shutdown"] + 1))
    monkeypatch.setitem(sys.modules, "ray", fake)
    cfg = types.SimpleNamespace(executor=types.SimpleNamespace(kind="ray", num_cpus=2))
    with ray_session(cfg):
        for _ in range(3):  # what run_on_ray does per batch
            with ray_session(cfg):
                pass
        assert calls == {"init": 1, "shutdown": 0}
    assert calls == {"init": 1, "shutdown": 1}
    with ray_session(types.SimpleNamespace(executor=types.SimpleNamespace(kind="local"))):
        pass
    assert calls["init"] == 1  # the local executor never starts Ray
