"""`mfmdp train policy` on a tiny synthetic dataset with a tiny saved transition model."""

from __future__ import annotations

import json

import numpy as np
import torch
from typer.testing import CliRunner

from mfmdp.cli import app
from mfmdp.data.synthetic import generate_events, write_synthetic
from mfmdp.policy.neural import NeuralPolicy
from mfmdp.transition.model import EventTransformer, TransitionConfig


def test_train_policy_cli(tmp_path):
    data = write_synthetic(generate_events(3, responses=(200, 260), seed=5), tmp_path / "events.jsonl")
    torch.manual_seed(0)
    trans = EventTransformer(TransitionConfig(d_model=16, n_layers=1, n_heads=2, d_ff=32, window=16))
    trans.save(tmp_path / "transition")
    out = tmp_path / "policy"
    res = CliRunner().invoke(app, [
        "train", "policy", str(data), "--transition", str(tmp_path / "transition"), "--out", str(out),
        "--annotator", "truth", "--epochs", "1", "--J", "2", "--K", "3", "--starts-per-event", "2",
        "--set", "hidden=16", "--min-responses", "32", "--quiet",
    ])
    assert res.exit_code == 0, res.output + repr(res.exception)
    report = json.loads((out / "train_report.json").read_text())
    assert report["events"] == 2 and report["lct"] is True  # the training side of the seeded 60/20/20 split and "l_pred" in report["history"][0]
    pol = NeuralPolicy.load(out)
    assert pol.config.hidden == 16 and len(pol.pool) > 0
    assert pol.training["lct"]["K"] == 3


def test_train_policy_cli_errors_clearly(tmp_path):
    data = write_synthetic(generate_events(1, responses=(100, 120), seed=1), tmp_path / "e.jsonl")
    res = CliRunner().invoke(app, ["train", "policy", str(data), "--out", str(tmp_path / "p"), "--quiet"])
    assert res.exit_code == 2
    assert "needs --transition" in res.output
    res = CliRunner().invoke(app, ["train", "policy", str(data), "--out", str(tmp_path / "p"), "--method", "direct",
                                   "--no-lct", "--annotator", "truth", "--set", "bogus=1", "--quiet"])
    assert res.exit_code == 2 and "bogus" in res.output
    res = CliRunner().invoke(app, ["train", "policy", str(data), "--out", str(tmp_path / "p"), "--backend", "hf",
                                   "--method", "direct", "--no-lct", "--annotator", "truth", "--quiet"])
    assert res.exit_code == 2 and "model_path" in res.output  # dispatched to the HF trainer


def test_train_policy_cli_with_split_reports_validation(tmp_path):
    from mfmdp.data.split import make_split, save_split

    events = generate_events(6, responses=(150, 200), seed=7)
    data = write_synthetic(events, tmp_path / "events.jsonl")
    split = make_split(events, seed=0, fractions=(0.5, 0.5, 0.0))
    save_split(split, tmp_path / "split.json")
    out = tmp_path / "policy"
    res = CliRunner().invoke(app, [
        "train", "policy", str(data), "--out", str(out), "--method", "direct", "--no-lct", "--annotator", "truth",
        "--split", str(tmp_path / "split.json"), "--epochs", "2", "--set", "hidden=8", "--min-responses", "32",
        "--quiet",
    ])
    assert res.exit_code == 0, res.output + repr(res.exception)
    report = json.loads((out / "train_report.json").read_text())
    assert report["events"] == split.counts()["train"]
    val = report["validation"]
    assert val["events"] == split.counts()["validation"] and np.isfinite(val["nll"]) and 0 <= val["state_f1"] <= 1
