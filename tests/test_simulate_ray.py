"""The Ray executor gives the local executor's numbers for the same seeds (and torch thread count)."""

from __future__ import annotations

import pandas as pd
import pytest

from experiment_helpers import copy_models, tiny_config, trained_tiny_run

ray = pytest.importorskip("ray", reason="the Ray executor needs the distributed extra")


@pytest.mark.slow
def test_ray_executor_equals_local(tmp_path_factory, tmp_path, monkeypatch):
    from mfmdp.experiment import run_experiment

    local = trained_tiny_run(tmp_path_factory)  # simulated with executor kind=local
    monkeypatch.setenv("RAY_USAGE_STATS_ENABLED", "0")
    out = tmp_path / "ray"
    copy_models(local, out)  # same models; only the executor differs
    # seed 1 only: half the work of the local run, compared file by file with its seed-1 files
    cfg = tiny_config(**{"executor": {"kind": "ray", "num_cpus": 2, "torch_threads": 1}, "simulation.seeds": [1]})
    assert not ray.is_initialized()
    run_experiment(cfg, out, progress=False)
    assert not ray.is_initialized()  # the executor shuts down the Ray instance it started

    local_files = sorted(p.relative_to(local) for p in (local / "events").rglob("*seed1.parquet"))
    ray_files = sorted(p.relative_to(out) for p in (out / "events").rglob("*.parquet") if p.name != "real.parquet")
    assert local_files == ray_files
    assert len(ray_files) >= 5 and any(p.name.startswith("trajectory__mf_mdp") for p in ray_files)
    for rel in ray_files:
        pd.testing.assert_frame_equal(pd.read_parquet(out / rel), pd.read_parquet(local / rel), obj=str(rel))
    cols = ["setting", "method", "dimension", "event", "seed"]
    a = pd.read_csv(local / "metrics.csv").query("seed == 1").sort_values(cols).reset_index(drop=True)
    b = pd.read_csv(out / "metrics.csv").sort_values(cols).reset_index(drop=True)
    pd.testing.assert_frame_equal(a, b)
