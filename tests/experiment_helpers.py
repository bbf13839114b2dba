"""A tiny experiment config (synthetic events, very small models) shared by the experiment, scenario
and Ray tests: the whole pipeline in seconds on 2 cores."""

from __future__ import annotations

from mfmdp.simulate.config import ExperimentConfig

TINY_METHODS = ["direct", "mf_mdp", "persistence", "transition_only", "regression", "oracle"]


def tiny_config(**overrides) -> ExperimentConfig:
    raw = {
        "name": "tiny",
        "seed": 0,
        "data": {"synthetic": {"n_events": 6, "min_responses": 260, "max_responses": 340, "seed": 3},
                 "fractions": [0.5, 0.17, 0.33], "min_responses": 200},
        "annotator": "truth",
        "encoder": "hash",
        "transition": {"epochs": 1, "horizon": 4, "starts_per_event": 2, "threads": 1,
                       "model": {"d_model": 16, "n_layers": 1, "n_heads": 2, "d_ff": 32}},
        "policy": {"epochs": 1, "J": 2, "K": 4, "hidden": 16, "starts_per_event": 2},
        "simulation": {"warmup_steps": 3, "candidates": 2, "horizon": 4, "seeds": [0, 1]},
        "evaluation": {"window": 32},
        "methods": list(TINY_METHODS),
        "executor": {"kind": "local", "torch_threads": 1},
    }
    for key, value in overrides.items():
        node = raw
        parts = key.split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = value
    return ExperimentConfig.model_validate(raw)


_TRAINED: dict[str, object] = {}


def trained_tiny_run(tmp_path_factory):
    """One tiny run trained once per test session (shared by the experiment, scenario and Ray
    tests; read it, never write into it: copy what you need)."""
    from mfmdp.experiment import run_experiment

    if "root" not in _TRAINED:
        root = tmp_path_factory.mktemp("tiny_run")
        run_experiment(tiny_config(), root, progress=False)
        _TRAINED["root"] = root
    return _TRAINED["root"]


def copy_models(src, dst) -> None:
    """Start a results directory from another's trained models (nothing is retrained)."""
    import shutil
    from pathlib import Path

    shutil.copytree(Path(src) / "models", Path(dst) / "models")
