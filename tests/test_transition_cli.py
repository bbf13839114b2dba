"""`mfmdp train transition` on a tiny generic-format dataset written by the test."""

from __future__ import annotations

import json

import numpy as np
from typer.testing import CliRunner

from mfmdp.cli import app
from mfmdp.data.split import make_split
from mfmdp.data.synthetic import generate_events, write_synthetic
from mfmdp.transition.model import EventTransformer

TINY = ["--min-responses", "32", "--d-model", "16", "--layers", "1", "--heads", "2", "--d-ff", "32", "--window", "8", "--K", "4",
        "--epochs", "2", "--threads", "1", "--quiet", "--encoder", "hash:16", "--set", "starts_per_event=2", "--set", "roll_start_epoch=1"]


def test_train_transition_cli_truth_labels(tmp_path):
    events = generate_events(4, responses=(120, 200), seed=3)
    data = write_synthetic(events, tmp_path / "events.jsonl")
    out = tmp_path / "fpsi"
    res = CliRunner().invoke(app, ["train", "transition", str(data), "--out", str(out), "--annotator", "truth", *TINY])
    assert res.exit_code == 0, res.output
    report = json.loads((out / "train_report.json").read_text())
    split = make_split(events, seed=0, fractions=(0.6, 0.2, 0.2))  # `mfmdp run`'s seeded split
    assert report["train_events"] == len(split.ids("train")) and report["val_events"] == len(split.ids("validation"))
    assert len(report["history"]) == 2 and report["validation"]["roll_kl"] > 0
    assert np.isnan(report["history"][0]["train_roll"]) and report["history"][1]["train_roll"] > 0  # warm start
    model = EventTransformer.load(out)
    assert model.cfg.d_model == 16 and model.cfg.encoder == "hash:16" and model.cfg.synopsis_dim == 16
    # the checkpoint steps through a schedule built the same way
    from mfmdp.data.stepping import make_steps
    from mfmdp.encoders import get_encoder
    from mfmdp.transition.features import event_features

    ev = events[0]
    f = event_features(ev, make_steps(ev), ev.metadata["labels"].codes["state"], get_encoder(model.cfg.encoder))
    r_prev, m_prev = f.teacher_inputs()
    m_hat = model.session(f.schedule).teacher_force(m_prev, r_prev)
    assert m_hat.shape == (len(f), 3) and np.allclose(m_hat.sum(1), 1)


def test_train_transition_trains_on_the_events_mfmdp_run_would(tmp_path):
    """One prepare stage: --max-events caps each side after the split, as `mfmdp run` does, so the
    checkpoint's training events are the run's (the old command capped the events before splitting)."""
    events = generate_events(6, responses=(120, 160), seed=8)
    data = write_synthetic(events, tmp_path / "events.jsonl")
    out = tmp_path / "fpsi"
    res = CliRunner().invoke(app, ["train", "transition", str(data), "--out", str(out), "--annotator", "truth",
                                   "--max-events", "1", *TINY])
    assert res.exit_code == 0, res.output
    report = json.loads((out / "train_report.json").read_text())
    split = make_split(events, seed=0, fractions=(0.6, 0.2, 0.2))
    first_train = [e.id for e in split.select(events, "train")][:1]
    first_val = [e.id for e in split.select(events, "validation")][:1]
    assert report["train_event_ids"] == first_train and report["val_event_ids"] == first_val
    assert first_val != [events[0].id]  # capping before the split could never pick it


def test_train_transition_cli_errors_are_clear(tmp_path):
    events = generate_events(5, responses=(60, 80), seed=4)
    for e in events:
        e.metadata.pop("labels", None)
    data = write_synthetic(events, tmp_path / "nolabels.jsonl")
    res = CliRunner().invoke(app, ["train", "transition", str(data), "--out", str(tmp_path / "o"),
                                   "--annotator", "truth", *TINY])
    assert res.exit_code == 2 and "no stored labels" in res.output


def test_train_option_mistakes_are_one_line_before_any_data_is_read(tmp_path):
    """The data path does not exist: a refusal that names the option proves nothing was read first."""
    missing = str(tmp_path / "absent.jsonl")
    cases = [
        (["transition", missing, "--out", str(tmp_path / "t"), "--epochs", "-3"], "epochs: Input should be greater"),
        (["transition", missing, "--out", str(tmp_path / "t"), "--set", "epocs=3"], "epocs: unknown key; allowed: epochs"),
        (["transition", missing, "--out", str(tmp_path / "t"), "--set", "lr_schedule=step"], "'constant' or 'cosine'"),
        (["policy", missing, "--out", str(tmp_path / "p"), "--set", "hiden=3"], "hiden: unknown key; allowed:"),
    ]
    for args, message in cases:
        res = CliRunner().invoke(app, ["train", *args])
        text = " ".join(res.output.split())
        assert res.exit_code == 2, (args, res.output)
        assert message in text and "Traceback" not in text and "pydantic" not in text, (args, res.output)
    assert not (tmp_path / "t").exists() and not (tmp_path / "p").exists()


def test_train_transition_reads_the_run_config(tmp_path):
    """--config is the file `mfmdp run` reads: its sections apply, and a flag given on the command wins."""
    events = generate_events(4, responses=(120, 160), seed=9)
    data = write_synthetic(events, tmp_path / "events.jsonl")
    config = tmp_path / "exp.yaml"
    config.write_text("annotator: truth\nencoder: hash:16\ndata: {min_responses: 32}\n"
                      "transition: {epochs: 1, horizon: 4, starts_per_event: 2, threads: 1,\n"
                      "  model: {d_model: 16, n_layers: 1, n_heads: 2, d_ff: 32, window: 8}}\n", encoding="utf-8")
    out = tmp_path / "fpsi"
    res = CliRunner().invoke(app, ["train", "transition", str(data), "--out", str(out), "--config", str(config),
                                   "--quiet"])
    assert res.exit_code == 0, res.output
    assert len(json.loads((out / "train_report.json").read_text())["history"]) == 1
    assert EventTransformer.load(out).cfg.d_model == 16
    res = CliRunner().invoke(app, ["train", "transition", str(data), "--out", str(tmp_path / "f2"), "--config",
                                   str(config), "--epochs", "2", "--quiet"])
    assert res.exit_code == 0, res.output
    assert len(json.loads((tmp_path / "f2" / "train_report.json").read_text())["history"]) == 2
