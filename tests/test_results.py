"""mfmdp.simulate.results owns the results layout: the names its writer makes are the names its
reader parses, names it cannot parse back are refused before anything is written, and a file in an
event folder that does not follow the layout is an error naming it (never silently skipped)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from evaluate_helpers import make_run_dir
from mfmdp.core.schema import DIMENSIONS, Labels
from mfmdp.evaluate.runs import evaluate_run, load_event
from mfmdp.simulate import results

ODD_METHODS = ["a", "_", "a_", "_a", "a__b", "seed", "seed1", "x__seed1", "sim__y", "y__sim", "A1_b2", "9", "__"]
ODD_SEEDS = [0, 1, 10, 2**40, np.int64(7), np.uint8(3)]


@pytest.mark.parametrize("method", ODD_METHODS)
def test_names_parse_back_for_odd_methods_and_seeds(method):
    for seed in ODD_SEEDS:
        assert results.parse_sim_file(results.sim_file(method, seed)) == (method, int(seed))
        assert results.parse_trajectory_file(results.trajectory_file(method, seed)) == (method, int(seed))
        assert results.parse_sim_file(results.trajectory_file(method, seed)) is None
        assert results.parse_trajectory_file(results.sim_file(method, seed)) is None


def _frame(n: int, warmup: int = 4, code: int = 0) -> pd.DataFrame:
    labels = Labels({d: np.full(n, code, np.int8) for d in DIMENSIONS})
    return results.labels_frame(labels, np.arange(n) // 4, np.zeros(n, bool), warmup)


def test_what_the_writer_writes_the_reader_reads(tmp_path):
    rd = results.RunDir(tmp_path)
    n = 24
    rd.write_real("topic/1", _frame(n))
    written = [(m, int(s)) for m in ODD_METHODS for s in ODD_SEEDS[:3]]
    for method, seed in written:
        traj = pd.DataFrame({"step": [0, 1]})
        traj.attrs["texts"] = [f"{method} {seed}"] * n
        labels = Labels({d: np.full(n, 1, np.int8) for d in DIMENSIONS})
        frame = results.sim_frame(labels, np.arange(n) // 4, np.zeros(n, bool), 4, traj, nll=np.full(n, 0.5))
        rd.write_sim("topic/1", method, seed, frame, traj)
    (event_dir,) = results.event_dirs(tmp_path)
    assert event_dir == rd.event_dir("topic/1")
    found = results.sim_files(event_dir)
    assert sorted((m, s) for m, s, _ in found) == sorted(written)
    assert all(p == rd.sim_path("topic/1", m, s) for m, s, p in found)
    assert all(rd.trajectory_path("topic/1", m, s).is_file() for m, s in written)
    event_id, real = results.read_real(event_dir)
    assert event_id == "topic/1" and list(real["slot"]) == list(range(n))
    labels, nll = results.read_sim(rd.sim_path("topic/1", "a__b", 1), real["slot"].to_numpy())
    assert labels.codes["state"].tolist() == [1] * n and np.allclose(nll, 0.5)
    assert pd.read_parquet(rd.sim_path("topic/1", "x__seed1", 10))["text"].iloc[0] == "x__seed1 10"
    ev = load_event(event_dir)
    assert set(ev.sims) == set(written) and ev.event == "topic/1" and ev.warmup_slots == 4


@pytest.mark.parametrize("method,seed", [("a-b", 0), ("a.b", 0), ("", 0), ("a/b", 0), ("../a", 0), ("新", 0),
                                         ("a\n", 0), (None, 0), ("a", -1), ("a", 1.5), ("a", "3"), ("a", True)])
def test_names_that_would_not_parse_back_are_refused_before_writing(tmp_path, method, seed):
    rd = results.RunDir(tmp_path)
    with pytest.raises(ValueError, match="cannot name a results file"):
        rd.write_sim("ev", method, seed, _frame(8), pd.DataFrame({"step": [0]}))
    assert not (tmp_path / "events").exists() or not any((tmp_path / "events").rglob("*"))


@pytest.mark.parametrize("name", ["sim__a__seed.parquet", "sim__a__seed-1.parquet", "sim__a__seed1.parquet.tmp",
                                  "sim__a__seed1.parquet\n", "sim__a-b__seed1.parquet", "sim__a__seed\u0663.parquet",
                                  "sim____seed1.parquet", "sim__a__seed1.csv", "trajectory__a__seed1.parquet",
                                  "baseline__a__seed1.parquet", "real.parquet", "xsim__a__seed1.parquet"])
def test_other_names_are_not_sim_files(name):
    assert results.parse_sim_file(name) is None


def test_a_sim_file_off_the_layout_is_an_error_naming_it(tmp_path):
    run = make_run_dir(tmp_path / "run", n_events=1, n=400, seeds=(0,), methods={"mf_mdp": 0.1})
    ev_dir = run / "events" / "ev0"
    # files that are not sim files are not read: trajectories, done.json, a temporary file left by a crash
    pd.DataFrame({"step": [0]}).to_parquet(ev_dir / results.trajectory_file("mf_mdp", 0))
    (ev_dir / ".sim__mf_mdp__seed1.parquet.tmp").write_bytes(b"torn")
    assert [(m, s) for m, s, _ in results.sim_files(ev_dir)] == [("mf_mdp", 0)]
    assert set(evaluate_run(run, show_progress=False).metrics["method"]) == {"mf_mdp", "oracle"}
    bad = ev_dir / "sim__mf-mdp__seed0.parquet"
    (ev_dir / results.sim_file("mf_mdp", 0)).rename(bad)
    with pytest.raises(ValueError, match="does not follow sim__<method>__seed<k>.parquet") as err:
        evaluate_run(run, show_progress=False)
    assert str(bad) in str(err.value)


def test_reader_errors_name_the_file(tmp_path):
    rd = results.RunDir(tmp_path)
    frame = _frame(12)
    frame.loc[0, "warmup"] = False  # warm-up slots 1..3 after a scored slot 0
    rd.write_real("ev", frame)
    with pytest.raises(ValueError, match="real.parquet: warm-up slots must be a prefix"):
        results.read_real(rd.event_dir("ev"))
    rd.write_real("ev", _frame(12).drop(columns=["step"]))
    with pytest.raises(ValueError, match=r"real.parquet: missing column\(s\) step"):
        results.read_real(rd.event_dir("ev"))
    with pytest.raises(ValueError, match=r"column 'state' has codes outside -1..2"):
        results.frame_labels(_frame(12, code=3), rd.real_path("ev"))
    rd.real_path("ev").write_bytes(b"not parquet")
    with pytest.raises(ValueError, match="real.parquet: cannot read Parquet"):
        results.read_real(rd.event_dir("ev"))
    (tmp_path / "manifest.json").write_text("{")
    with pytest.raises(ValueError, match="manifest.json: invalid JSON"):
        results.read_manifest(tmp_path)
    assert results.read_manifest(tmp_path / "nowhere") == {}


def test_a_sim_file_is_written_after_its_trajectory(tmp_path):
    """A sim file on disk means the whole simulation was written: resume skips it."""
    rd = results.RunDir(tmp_path)
    unwritable = pd.DataFrame({"x": [object()]})  # pyarrow cannot store it
    with pytest.raises(Exception):
        rd.write_sim("ev", "mf_mdp", 0, _frame(8), unwritable)
    assert not rd.sim_path("ev", "mf_mdp", 0).exists() and not rd.trajectory_path("ev", "mf_mdp", 0).exists()
    assert not list(rd.event_dir("ev").iterdir())  # no temporary file left either


def test_a_scenario_output_is_not_a_run_but_says_which_folders_are(tmp_path):
    results.RunDir(tmp_path / "baseline").write_real("ev", _frame(8))
    with pytest.raises(ValueError, match="no events/ folder") as err:
        results.event_dirs(tmp_path)
    assert str(tmp_path / "baseline") in str(err.value) and "scenario" in str(err.value)
    with pytest.raises(ValueError, match=r"no events/ folder \(not a run directory\)$"):
        results.event_dirs(tmp_path / "baseline" / "events")
