"""The neural policy end to end on synthetic events: training with the real (tiny) Event
Transformer, then the simulator's loop with reselection (J=4) and retrieval."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mfmdp.data.stepping import make_steps, verified_institution_rule
from mfmdp.data.synthetic import generate_events
from mfmdp.simulate.methods import METHODS
from mfmdp.policy.neural import NeuralPolicy
from mfmdp.policy.training import train_neural_policy
from mfmdp.encoders import get_encoder
from mfmdp.transition.features import signal_dim
from mfmdp.transition.model import EventTransformer, TransitionConfig


@pytest.fixture(scope="module")
def corpus():
    events = generate_events(4, responses=(220, 300), seed=3)
    enc = get_encoder("hash")
    labels = [e.metadata["labels"] for e in events]
    embs = [enc.encode([str(t) for t in e.table.texts]) for e in events]
    torch.manual_seed(0)
    cfg = TransitionConfig(synopsis_dim=enc.dim, signal_dim=signal_dim(enc.dim), d_model=32, n_layers=1, n_heads=2,
                           d_ff=64, window=32, dropout=0.0)
    return events, labels, embs, enc, EventTransformer(cfg).eval()


@pytest.mark.parametrize("method", ["mf_mdp", "direct", "social_retrieval"])
def test_train_and_simulate(corpus, method, tmp_path):
    from mfmdp.simulate.loop import LoopParts, simulate
    from mfmdp.simulate.replay import make_replay
    from mfmdp.transition.features import event_features

    events, labels, embs, enc, trans = corpus
    inputs = METHODS[method].inputs
    cfg = {"epochs": 1, "J": 2, "K": 4, "hidden": 16, "starts_per_event": 2, "lct": method == "mf_mdp"}
    pol = train_neural_policy(events[:3], labels[:3], embs[:3], enc, trans if inputs.use_prior or cfg["lct"] else None,
                              inputs, cfg, progress=False)
    assert pol.pool is not None and len(pol.pool) > 0
    pol.save(tmp_path / "p")
    pol = NeuralPolicy.load(tmp_path / "p", encoder=enc)

    ev = events[3]
    steps = make_steps(ev, 16, signal_rule=verified_institution_rule)
    feats = event_features(ev, steps, labels[3].codes["state"], enc, embs[3])
    replay = make_replay(ev, steps, labels[3], embs[3], feats.schedule, 4)
    parts = LoopParts(policy=pol, annotator=None, encoder=enc, transition=trans, context=inputs.context,
                      candidates=4 if inputs.use_prior else 1, horizon=5)
    res = simulate(replay, parts, seed=0)
    res2 = simulate(replay, parts, seed=0)
    warm = replay.warmup_slots
    sim = np.flatnonzero(~steps.is_signal[warm:]) + warm
    assert (res.labels.codes["state"][sim] >= 0).all()
    assert all(res.texts[i] in set(pol.pool.texts) for i in sim)
    assert np.array_equal(res.labels.codes["state"], res2.labels.codes["state"])  # seeded
    if inputs.use_prior:
        assert (res.chosen[replay.warmup_steps:] >= 0).all()
        assert np.isfinite(res.values[replay.warmup_steps:]).all()
