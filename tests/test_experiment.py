"""`run_experiment` end to end on a tiny synthetic config: results layout, resume, --test-data, and the
leakage rule with the real trained components (NeuralPolicy + EventTransformer)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest

from experiment_helpers import TINY_METHODS, copy_models, tiny_config, trained_tiny_run
from mfmdp.core.schema import DIMENSIONS
from mfmdp.simulate.prepare import PreparedEvent, prepare_events
from mfmdp.simulate.runner import make_replay_for, simulate_method
from mfmdp.simulate.methods import ALL_METHODS, get_method
from mfmdp.simulate.results import RunDir

METRIC_COLUMNS = ["setting", "method", "dimension", "event", "seed", "kl", "js", "wasserstein", "dtw",
                  "matched_accuracy", "kl_step", "macro_f1", "micro_f1", "nll", "responses", "steps"]


@pytest.fixture(scope="module")
def run_root(tmp_path_factory):
    return trained_tiny_run(tmp_path_factory)


def test_results_directory_layout(run_root):
    for name in ("manifest.json", "config.yaml", "metrics.csv", "report.html", "report.md", "split.json"):
        assert (run_root / name).is_file(), name
    manifest = json.loads((run_root / "manifest.json").read_text())
    assert manifest["seeds"] == [0, 1]
    assert set(manifest["split"]) == {"train", "validation", "test"}
    assert manifest["checkpoints"] and all(len(h) == 64 for h in manifest["checkpoints"].values())
    assert manifest["signals_seen"]["train_steps"] > 0
    assert set(manifest["stage_peak_rss_mb"]) == set(manifest["stage_seconds"]) >= {"load", "simulate", "evaluate"}
    assert all(mb > 50 for mb in manifest["stage_peak_rss_mb"].values())  # a Python + torch process
    rd = RunDir(run_root)
    test_ids = manifest["split"]["test"]
    assert test_ids
    agent_methods = [m for m in TINY_METHODS if m != "oracle"]  # the oracle is resampled by the evaluator
    for eid in test_ids:
        assert rd.is_done(eid)
        real = pd.read_parquet(rd.real_path(eid))
        assert list(real.columns[:4]) == ["slot", "step", "is_signal", "warmup"]
        assert all(real[d].dtype == np.int8 for d in DIMENSIONS)
        for method in agent_methods:
            for seed in (0, 1):
                sim = pd.read_parquet(rd.sim_path(eid, method, seed))
                assert len(sim) == len(real)
                assert {"text", "nll", *DIMENSIONS} <= set(sim.columns)
                scored = ~sim["warmup"] & ~sim["is_signal"]
                assert (sim.loc[scored, "state"] >= 0).all(), (method, seed)
                # warm-up and signals are replayed verbatim
                keep = ~scored
                assert np.array_equal(sim.loc[keep, "state"], real.loc[keep, "state"])
    metrics = pd.read_csv(run_root / "metrics.csv")
    assert list(metrics.columns) == METRIC_COLUMNS
    assert set(metrics["method"]) == set(TINY_METHODS)
    assert set(metrics["method"]) <= set(ALL_METHODS)
    assert set(metrics["dimension"]) == set(DIMENSIONS)
    assert {"short", "long"} <= set(metrics["setting"])
    assert metrics["kl"].notna().all()


def test_resume_redoes_only_missing_work(run_root, tmp_path):
    """A resumed run trains and simulates nothing already on disk (mtimes unchanged) and redoes a
    simulation lost to an interruption with the same numbers."""
    from mfmdp.experiment import run_experiment

    again = tmp_path / "again"
    shutil.copytree(run_root, again)  # copy2 keeps mtimes
    rd = RunDir(again)
    eid = json.loads((again / "manifest.json").read_text())["split"]["test"][0]
    lost = rd.sim_path(eid, "mf_mdp", 1)
    original = pd.read_parquet(lost)
    lost.unlink()
    rd.done_path(eid).unlink()  # as if interrupted before the event was finished
    redone = {lost, rd.trajectory_path(eid, "mf_mdp", 1)}
    kept = [p for p in sorted((again / "events").rglob("*.parquet")) + sorted((again / "models").rglob("*"))
            if p not in redone]
    before = {p: p.stat().st_mtime_ns for p in kept}

    run_experiment(tiny_config(), again, progress=False)
    assert {p: p.stat().st_mtime_ns for p in kept} == before
    assert rd.is_done(eid)
    pd.testing.assert_frame_equal(pd.read_parquet(lost), original)  # same seed, same numbers
    assert (again / "report.html").is_file()


def test_test_data_reuses_models_on_other_events(run_root, tmp_path):
    from mfmdp.data.synthetic import generate_events, write_synthetic
    from mfmdp.experiment import run_experiment

    folder = tmp_path / "other"
    folder.mkdir()
    others = generate_events(2, (260, 300), seed=77)
    for i, e in enumerate(others):
        e.id = f"other-{i}"
    write_synthetic(others[:1], folder / "a.jsonl")
    write_synthetic(others[1:], folder / "b.jsonl")
    out = tmp_path / "run"
    copy_models(run_root, out)
    models = sorted((out / "models").rglob("*"))
    before = {p: p.stat().st_mtime_ns for p in models}
    run_experiment(tiny_config(**{"simulation.seeds": [0]}), out, test_data=str(folder), progress=False)
    assert {p: p.stat().st_mtime_ns for p in models} == before  # nothing retrained
    assert sorted(p.name for p in (out / "events").iterdir()) == ["other-0", "other-1"]
    metrics = pd.read_csv(out / "metrics.csv")
    assert set(metrics["event"]) == {"other-0", "other-1"}


def _permute_hidden(p: PreparedEvent, warmup_slots: int, rng) -> tuple[PreparedEvent, np.ndarray]:
    """Permute texts, behaviors, engagement and labels of the non-revealed slots after warm-up."""
    import copy

    event = copy.deepcopy(p.event)
    hidden = np.setdiff1d(np.arange(warmup_slots, len(event)), np.flatnonzero(p.steps.is_signal))
    perm = rng.permutation(hidden)
    src = [copy.copy(event.responses[j]) for j in perm]
    for i, r in zip(hidden, src):
        event.responses[i].text = "泄漏 " + r.text
        event.responses[i].behavior = "share" if event.responses[i].behavior == "comment" else "comment"
        event.responses[i].reposts, event.responses[i].likes = r.reposts + 5, r.likes + 7
    event.__dict__.pop("table", None)
    labels = p.labels.take(np.arange(p.labels.n))
    for d in DIMENSIONS:
        labels.codes[d][hidden] = p.labels.codes[d][perm]
    labels.codes["behavior"] = event.table.behavior.astype(np.int8)
    return event, labels


@pytest.mark.parametrize("method", ["mf_mdp", "direct"])
def test_blind_to_hidden_real_actions_with_trained_components(run_root, method):
    from mfmdp.data.synthetic import generate_event
    from mfmdp.simulate.scenario import load_trained

    run = load_trained(run_root, methods=[method])
    cfg = run.cfg
    event = generate_event("rumor_debunked", n_responses=300, seed=5)
    p = prepare_events(cfg, [event], run.models.annotator, run.models.encoder, run_root / "cache")[0]
    replay = make_replay_for(cfg, p, run.models.encoder)
    base, _ = simulate_method(cfg, get_method(method), replay, run.models, seed=4)

    event2, labels2 = _permute_hidden(p, replay.warmup_slots, np.random.default_rng(1))
    emb2 = run.models.encoder.encode([str(t) for t in event2.table.texts])
    p2 = PreparedEvent(event2, p.steps, labels2, emb2)
    other, _ = simulate_method(cfg, get_method(method), make_replay_for(cfg, p2, run.models.encoder), run.models, seed=4)
    for d in DIMENSIONS:
        assert np.array_equal(base.codes[d], other.codes[d]), d

    # Control: the same permutation applied to the warm-up does change the simulation (it is seen).
    warm = np.arange(replay.warmup_slots)
    labels3 = p.labels.take(np.arange(p.labels.n))
    flipped = labels3.codes["state"][warm]
    labels3.codes["state"][warm] = np.where(flipped == 0, 2, 0).astype(np.int8)
    p3 = PreparedEvent(p.event, p.steps, labels3, p.embeddings)
    seen, _ = simulate_method(cfg, get_method(method), make_replay_for(cfg, p3, run.models.encoder), run.models, seed=4)
    assert not np.array_equal(base.codes["state"], seen.codes["state"])


def test_validation_side_scored_with_reused_models(run_root, tmp_path):
    """`data.evaluate_on: validation` simulates the validation events only, `models_from` reuses the
    trained models (nothing retrained), and every scored report is logged in evaluations.jsonl."""
    from mfmdp.experiment import run_experiment

    out = tmp_path / "val"
    run_experiment(tiny_config(**{"simulation.seeds": [0], "data.evaluate_on": "validation"}), out,
                   progress=False, models_from=run_root)
    manifest = json.loads((out / "manifest.json").read_text())
    validation = manifest["split"]["validation"]
    assert validation and manifest["evaluated_side"] == "validation"
    assert sorted(p.name for p in (out / "events").iterdir()) == sorted(validation)
    assert not set(validation) & set(manifest["split"]["test"])
    trained = {p.relative_to(run_root / "models"): p.stat().st_ino for p in (run_root / "models").rglob("*") if p.is_file()}
    reused = {p.relative_to(out / "models"): p.stat().st_ino for p in (out / "models").rglob("*") if p.is_file()}
    assert reused == trained  # hard links to the same files: nothing retrained
    log = [json.loads(line) for line in (out / "evaluations.jsonl").read_text().splitlines()]
    assert [(r["side"], r["events"]) for r in log] == [("validation", len(validation))]
    with pytest.raises(FileNotFoundError, match="no models/ folder"):
        run_experiment(tiny_config(), tmp_path / "x", progress=False, models_from=tmp_path / "nothing")


def test_evaluation_subset_is_a_fixed_spread_of_the_side():
    from mfmdp.simulate.prepare import evaluation_subset

    assert evaluation_subset(range(10), 4) == [0, 3, 6, 9]
    assert evaluation_subset(range(10), 1) == [0]
    assert evaluation_subset(range(3), 5) == [0, 1, 2]
    assert evaluation_subset(range(3), None) == [0, 1, 2]
    assert len(evaluation_subset(range(97), 24)) == 24


def test_evaluate_subset_simulates_the_same_events_as_the_full_run(run_root, tmp_path):
    """The fast inner loop: `data.evaluate_subset` scores a fixed part of the side with the reused models,
    and each of its simulations is the one the full run made (so a subset run agrees with the full run
    on those events, and only the number of events differs)."""
    from mfmdp.experiment import run_experiment
    out = tmp_path / "inner"
    run_experiment(tiny_config(**{"simulation.seeds": [0], "data.evaluate_subset": 1}), out,
                   progress=False, models_from=run_root)
    manifest = json.loads((out / "manifest.json").read_text())
    test_ids = manifest["split"]["test"]
    assert [p.name for p in (out / "events").iterdir()] == [test_ids[0]]
    sims = sorted((out / "events" / test_ids[0]).glob("sim__*seed0.parquet"))
    assert len(sims) >= 3
    for path in sims:
        pd.testing.assert_frame_equal(pd.read_parquet(path), pd.read_parquet(run_root / "events" / test_ids[0] / path.name))
