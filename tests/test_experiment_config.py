"""Fail-fast configuration and resume safety of `mfmdp run` / `mfmdp demo`: every config mistake is one
line naming the key, exit code 2, before any data is read; a resumed results directory never mixes
work made with another config, and a failed run leaves a finished run's config.yaml alone."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from experiment_helpers import tiny_config, trained_tiny_run
from mfmdp.cli import app
from mfmdp.simulate.config import ConfigError, load_config
from mfmdp.simulate.results import RunDir
from mfmdp.simulate.stages import ResumeRefused

runner = CliRunner()


@pytest.fixture(scope="module")
def run_root(tmp_path_factory):
    return trained_tiny_run(tmp_path_factory)


def write_yaml(path: Path, raw) -> Path:
    path.write_text(yaml.safe_dump(raw, allow_unicode=True) if raw is not None else "# empty\n", encoding="utf-8")
    return path


def tiny_yaml(tmp_path: Path, **overrides) -> Path:
    return write_yaml(tmp_path / "tiny.yaml", tiny_config(**overrides).model_dump(mode="json"))


# --- item 4: config mistakes fail fast -----------------------------------------------------------
@pytest.mark.parametrize("override, named", [
    ("nosuch.key=1", "nosuch: unknown key; allowed: name, seed, data"),
    ("policy.hiden=8", "policy.hiden: unknown key; allowed: lct,"),
    ("transition.epocs=3", "transition.epocs: unknown key; allowed: epochs,"),
    ("transition.epochs=many", "transition.epochs: Input should be a valid integer"),
    ("transition.epochs=-3", "transition.epochs: Input should be greater than or equal to 1"),
    ("transition.lr_schedule=step", "transition.lr_schedule: Input should be 'constant' or 'cosine'"),
    ("transition.model.n_heads=3", "transition.model: d_model 16 is not divisible by n_heads 3"),
    ("annotator=llm:itemz_per_call=5", "annotator: annotator spec 'llm:itemz_per_call=5': unknown option 'itemz_per_call'; allowed: backend,"),
    ("seed.x=1", "--set 'seed.x=1': seed is a value, not a section"),
])
def test_cli_config_mistake_is_one_line_exit_2_before_any_work(tmp_path, override, named):
    garbage = tmp_path / "events.jsonl"
    garbage.write_text("not events\n")  # reading it would fail otherwise: it is never read
    config = tiny_yaml(tmp_path, **{"data.path": str(garbage)})
    out = tmp_path / "out"
    t0 = time.perf_counter()
    result = runner.invoke(app, ["run", str(config), "--out", str(out), "--set", override])
    assert time.perf_counter() - t0 < 2.0
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and named in lines[0]
    assert not out.exists()


def test_demo_config_mistake_without_traceback(tmp_path):
    """The installed entry point, in a fresh process: one line on stderr, exit code 2."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1] / "src")}
    proc = subprocess.run([sys.executable, "-c", "from mfmdp.cli import main; main()", "demo", "--out", str(tmp_path / "d"),
                           "--set", "nosuch.key=1"], capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "nosuch: unknown key" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "d").exists()


@pytest.mark.parametrize("raw, named", [
    (None, "the config is empty"),
    ([1, 2], "must be a mapping, got list"),
    ({"policy": {"epochs": 0}}, "policy.epochs: Input should be greater than or equal to 1"),
    ({"policy": {"dropout": 1.5}}, "policy.dropout: Input should be less than 1"),
    ({"transition": {"epochs": "many"}}, "transition.epochs: Input should be a valid integer"),
    ({"transition": {"model": {"window": 0}}}, "transition.model.window: Input should be greater than or equal to 1"),
    ({"simulation": {"seeds": "zero"}}, "simulation.seeds: Input should be a valid list"),
    ({"data": {"evaluate_on": "tset"}}, "data.evaluate_on: Input should be 'validation' or 'test'"),
    ({"annotator": "offline:fast"}, "offline takes no option but 'nosnownlp'"),
    ({"annotator": "llm:items_per_call=many"}, "option 'items_per_call': Input should be a valid integer"),
    ({"annotator": "llm:backend=nope"}, "unknown backend 'nope'"),
    ({"annotator": "bert"}, "unknown annotator spec 'bert'"),
    ({"encoder": "hash:big"}, "encoder: encoder spec 'hash:big': DIM of 'hash:DIM' must be a positive integer"),
    ({"encoder": "e5"}, "encoder: unknown encoder spec 'e5'"),
    ({"summariser": "llm:nope"}, "summariser: use 'embedding', 'llm' or 'llm:BACKEND'"),
])
def test_bad_values_types_and_specs_are_rejected(tmp_path, raw, named):
    path = write_yaml(tmp_path / "c.yaml", raw)  # None: a file with nothing but a comment
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert named in str(err.value) and "\n" not in str(err.value)


def test_bad_llm_annotator_option_is_a_value_error_everywhere():
    """`get_annotator` (used by `mfmdp annotate`) checks the spec first: a ValueError naming the
    option, which the CLI prints as one line, not a TypeError from deep inside."""
    from mfmdp.annotate.registry import get_annotator

    with pytest.raises(ValueError, match="unknown option 'itemz_per_call'; allowed: backend"):
        get_annotator("llm:backend=fake,itemz_per_call=5")


def test_valid_sections_reach_the_trainers_typed():
    cfg = load_config(Path(__file__).parents[1] / "src/mfmdp/configs/demo.yaml", ["transition.epochs=3", "policy.hidden=8"])
    assert (cfg.transition.epochs, cfg.transition.model.d_model, cfg.policy.hidden) == (3, 64, 8)
    assert cfg.transition.seed is None  # the experiment's seed, resolved when training


def test_missing_input_path_is_refused_before_work(tmp_path):
    config = tiny_yaml(tmp_path, **{"data.split": str(tmp_path / "split.json")})
    result = runner.invoke(app, ["run", str(config), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2
    assert result.output.strip() == f"error: data.split: {tmp_path / 'split.json'} does not exist"
    assert not (tmp_path / "out").exists()


# --- item 5: resume never trusts stale work ------------------------------------------------------
def snapshot(root: Path) -> dict[Path, tuple[int, int]]:
    return {p: (p.stat().st_mtime_ns, p.stat().st_size) for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("override, changed, where", [
    ({"transition.epochs": 2}, "transition.epochs: 1 -> 2", "models/transition"),
    ({"policy.hidden": 8}, "policy.hidden: 16 -> 8", "models/policy_"),
    ({"simulation.horizon": 5}, "simulation.horizon: 4 -> 5", "events"),
    ({"seed": 1}, "seed: 0 -> 1", "models/transition"),
])
def test_resume_refuses_config_drift_and_touches_nothing(run_root, tmp_path, override, changed, where):
    from mfmdp.experiment import run_experiment

    again = tmp_path / "again"
    shutil.copytree(run_root, again)
    before = snapshot(again)
    t0 = time.perf_counter()
    with pytest.raises(ResumeRefused, match="was made with another config") as err:
        run_experiment(tiny_config(**override), again, progress=False)
    assert time.perf_counter() - t0 < 2.0  # refused before any data is read
    assert changed in str(err.value) and f"{again}/{where}" in str(err.value)
    assert snapshot(again) == before  # config.yaml, manifest.json and models as they were


def test_cli_refusal_and_failed_run_keep_config_yaml(run_root, tmp_path):
    again = tmp_path / "again"
    shutil.copytree(run_root, again)
    config = tiny_yaml(tmp_path)
    finished = (again / "config.yaml").read_bytes()
    typo = runner.invoke(app, ["run", str(config), "--out", str(again), "--set", "transition.epocs=3"])
    drift = runner.invoke(app, ["run", str(config), "--out", str(again), "--set", "transition.epochs=3",
                                "--set", "policy.hidden=8"])
    assert typo.exit_code == drift.exit_code == 2
    assert len(drift.output.strip().splitlines()) == 1 and "transition.epochs: 1 -> 3" in drift.output
    assert (again / "config.yaml").read_bytes() == finished
    assert json.loads((again / "manifest.json").read_text())["config"]["transition"]["epochs"] == 1


def test_config_yaml_changes_only_with_the_work_that_matches_it(run_root, tmp_path, monkeypatch):
    import mfmdp.experiment as experiment
    import mfmdp.simulate.prepare as prepare

    again = tmp_path / "again"
    shutil.copytree(run_root, again)
    finished = (again / "config.yaml").read_bytes()

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(prepare, "load_events", interrupted)  # fails before any work
    with pytest.raises(KeyboardInterrupt):
        experiment.run_experiment(tiny_config(name="renamed"), again, progress=False)
    assert (again / "config.yaml").read_bytes() == finished

    monkeypatch.undo()
    for stale in [*again.glob("models/policy_*"), again / "models" / "calibration", again / "events"]:  # as if stopped after f_psi
        shutil.rmtree(stale)
    (again / "events.json").unlink()
    monkeypatch.setattr(experiment, "make_replay_for", interrupted)  # fails right after the policies
    with pytest.raises(KeyboardInterrupt):
        experiment.run_experiment(tiny_config(**{"policy.hidden": 8}), again, progress=False)
    assert yaml.safe_load((again / "config.yaml").read_text())["policy"]["hidden"] == 8  # the policies' config


def test_models_from_retrains_only_the_drifted_models(run_root, tmp_path):
    """--models-from links the models that match the config and trains the others here."""
    from mfmdp.experiment import run_experiment

    out = tmp_path / "new"
    run_experiment(tiny_config(**{"policy.hidden": 8, "simulation.seeds": [0]}), out, progress=False,
                   models_from=run_root)
    models = sorted((out / "models").iterdir())
    assert [m.name for m in models] == sorted(m.name for m in (run_root / "models").iterdir())
    for model in models:  # the calibrated coupling depends on the policies: fitted again here
        marker = {"transition": "training.json", "calibration": "calibration.json"}.get(model.name.split("_")[0],
                                                                                       "trained.json")
        linked = (model / marker).stat().st_ino == (run_root / "models" / model.name / marker).stat().st_ino
        assert linked == model.name.startswith("transition"), model.name
    for policy in (out / "models").glob("policy_*"):
        assert json.loads((policy / "trained.json").read_text())["stage"]["config"]["policy.hidden"] == 8
    assert yaml.safe_load((out / "config.yaml").read_text())["policy"]["hidden"] == 8


def test_seeds_added_to_a_finished_run_are_simulated(run_root, tmp_path):
    """done.json no longer hides new seeds; config.yaml follows once their results are written."""
    from mfmdp.experiment import run_experiment

    again = tmp_path / "again"
    shutil.copytree(run_root, again)
    run_experiment(tiny_config(**{"simulation.seeds": [0, 1, 2], "methods": ["persistence", "regression"]}), again,
                   progress=False)
    rd = RunDir(again)
    for eid in json.loads((again / "manifest.json").read_text())["split"]["test"]:
        assert rd.sim_path(eid, "persistence", 2).exists() and rd.sim_path(eid, "regression", 2).exists()
        assert json.loads(rd.done_path(eid).read_text())["seeds"] == [0, 1, 2]
    assert yaml.safe_load((again / "config.yaml").read_text())["simulation"]["seeds"] == [0, 1, 2]


def test_a_changed_default_is_drift_too(run_root, tmp_path):
    """Records hold every value the stage read, defaults included: work made when a default was
    different (as the coupling defaults changed in issue 13) is refused, not silently mixed. Older
    records (non-default values only) are still accepted as they were."""
    from mfmdp.experiment import run_experiment

    again = tmp_path / "again"
    shutil.copytree(run_root, again)
    marker = again / "events.json"
    doc = json.loads(marker.read_text())
    assert doc["stage"]["values"]["simulation.evidence_weight"] == "calibrate"  # a default, recorded anyway
    doc["stage"]["values"]["simulation.evidence_weight"] = 0.5  # as made when the default was 0.5
    marker.write_text(json.dumps(doc))
    with pytest.raises(ResumeRefused, match=r"simulation.evidence_weight: 0.5 -> 'calibrate'"):
        run_experiment(tiny_config(), again, progress=False)
    del doc["stage"]["values"]  # a record from before full values: compared by its non-default keys
    marker.write_text(json.dumps(doc))
    run_experiment(tiny_config(), again, progress=False)
