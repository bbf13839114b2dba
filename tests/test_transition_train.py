"""Per-event features and training: leak-free schedule, L_seq + alpha L_roll, evaluation report."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mfmdp.data.stepping import make_steps, verified_institution_rule
from mfmdp.data.synthetic import generate_event
from mfmdp.meanfield.histogram import normalise, step_counts
from mfmdp.encoders import get_encoder
from mfmdp.transition.features import PROFILE_DIM, TIME_DIM, event_features, signal_dim
from mfmdp.transition.train import TrainConfig, evaluate, make_batch, train
from tests.transition_helpers import tiny_config, toy_features


@pytest.fixture(scope="module")
def synthetic_event():
    return generate_event("rumor_debunked", 400, seed=1)


def test_event_features_shapes_and_histograms(synthetic_event):
    ev = synthetic_event
    steps = make_steps(ev, 16, signal_rule=verified_institution_rule)
    codes = ev.metadata["labels"].codes["state"]
    enc = get_encoder("hash:32")
    f = event_features(ev, steps, codes, enc)
    T = len(steps)
    assert f.schedule.profiles.shape == (T, PROFILE_DIM) and f.schedule.time.shape == (T, TIME_DIM)
    assert f.schedule.signals.shape == (T, signal_dim(32)) == (T, 66) and f.r.shape == (T, 32) and f.m.shape == (T, 3)
    assert np.isfinite(f.schedule.time).all() and (f.schedule.time >= 0).all()
    np.testing.assert_allclose(f.m, normalise(step_counts(codes, steps.bounds, 3, mask=~steps.is_signal)), atol=1e-6)
    sig_steps = np.unique(steps.step_of()[steps.is_signal])
    assert len(sig_steps) and (f.schedule.signals[sig_steps, 32] > 0).all()  # the pulse's log count
    others = np.setdiff1d(np.arange(T), [t for t, s in enumerate(steps.signals) if s])
    assert not f.schedule.signals[others, :33].any()  # the pulse is zero off the signal steps
    assert not f.schedule.signals[: sig_steps[0]].any()  # nothing (memory included) before the first signal
    assert (f.schedule.signals[sig_steps[0]:, -1] > 0).all()  # the memory persists to the end
    r_prev, m_prev = f.teacher_inputs()
    np.testing.assert_allclose(m_prev[0], 1 / 3) and np.testing.assert_array_equal(m_prev[1:], f.m[:-1])


def test_schedule_is_blind_to_texts_behaviors_and_labels(synthetic_event):
    """The leakage rule: the schedule depends only on time, profile and signals."""
    ev = synthetic_event
    steps = make_steps(ev, 16, signal_rule=verified_institution_rule)
    enc = get_encoder("hash:32")
    codes = ev.metadata["labels"].codes["state"]
    a = event_features(ev, steps, codes, enc)
    rng = np.random.default_rng(0)
    perm = rng.permutation(len(ev.responses))
    texts = [r.text for r in ev.responses]
    behaviors = [r.behavior for r in ev.responses]
    for i, r in enumerate(ev.responses):
        if not steps.is_signal[i]:
            r.text, r.behavior = texts[perm[i]], behaviors[perm[i]]
    ev.__dict__.pop("table", None)
    try:
        b = event_features(ev, steps, codes[perm], enc)
        for name in ("profiles", "signals", "time"):
            np.testing.assert_array_equal(getattr(a.schedule, name), getattr(b.schedule, name))
    finally:
        for r, t, bh in zip(ev.responses, texts, behaviors):
            r.text, r.behavior = t, bh
        ev.__dict__.pop("table", None)


def test_bad_codes_length_is_named(synthetic_event):
    steps = make_steps(synthetic_event, 16)
    with pytest.raises(ValueError, match="state codes have shape"):
        event_features(synthetic_event, steps, np.zeros(3, np.int8), get_encoder("hash:32"))


def test_training_reduces_loss_and_reports():
    feats = toy_features(12, 30, seed=0)
    cfg = TrainConfig(epochs=6, lr=3e-3, alpha=1.0, horizon=6, starts_per_event=4, events_per_batch=4,
                      patience=10, seed=0, threads=1)
    untrained_model = None
    torch.manual_seed(cfg.seed)
    from mfmdp.transition.model import EventTransformer

    untrained_model = EventTransformer(tiny_config(window=8))
    before = evaluate(untrained_model, feats[:3], 6, 4)
    model, res = train(feats[3:], tiny_config(window=8), cfg, val_feats=feats[:3], progress=False)
    after = res.validation
    assert res.history[-1]["train_seq"] < res.history[0]["train_seq"]
    assert after["seq_kl"] < before["seq_kl"] and after["roll_kl"] < before["roll_kl"]
    assert len(after["roll_kl_per_k"]) == 6 and len(after["skill_per_k"]) == 6
    assert 0 <= after["ece_teacher_forced"] <= 1
    assert res.best_epoch >= 1 and set(res.val_events) == {"toy0", "toy1", "toy2"}
    # 30-step events: no horizon of SKILL_HORIZONS (30, 100, 300) fits inside them
    assert after["skill_by_horizon"] == {}


def test_horizon_skill_is_cumulative_and_matches_the_report_at_k():
    from mfmdp.transition.model import EventTransformer
    from mfmdp.transition.train import horizon_skill

    feats = toy_features(4, 60, seed=2)
    model = EventTransformer(tiny_config(window=8)).eval()
    out = horizon_skill(model, feats, horizons=(5, 20, 100), n_starts=4)
    assert set(out) == {"5", "20"}  # 100 steps is past the longest event
    rep = evaluate(model, feats, 20, 4)
    assert out["20"]["skill"] == pytest.approx(rep["skill"], abs=1e-3)  # cumulative to K = the report's skill
    assert out["5"]["rollouts_reaching"] >= out["20"]["rollouts_reaching"] > 0


def test_training_is_seeded_and_alpha_zero_skips_rollouts():
    feats = toy_features(6, 20, seed=1)
    cfg = TrainConfig(epochs=2, lr=1e-3, alpha=0.0, horizon=4, starts_per_event=2, events_per_batch=3, seed=5,
                      threads=1, val_fraction=0.34)
    m1, r1 = train(feats, tiny_config(), cfg, progress=False)
    m2, r2 = train(feats, tiny_config(), cfg, progress=False)
    drop = lambda h: {k: v for k, v in h.items() if k not in ("seconds", "train_roll")}  # noqa: E731 (nan != nan)
    assert [drop(h) for h in r1.history] == [drop(h) for h in r2.history]
    for a, b in zip(m1.parameters(), m2.parameters()):
        assert torch.equal(a, b)
    assert all(np.isnan(h["train_roll"]) for h in r1.history)  # no L_roll computed at alpha = 0
    assert len(r1.val_events) == 2 and not set(r1.val_events) & set(r1.train_events)


def test_rollout_loss_gradient_reaches_the_model():
    feats = toy_features(2, 16, seed=2)
    from mfmdp.transition.model import EventTransformer
    from mfmdp.transition.train import losses

    model = EventTransformer(tiny_config())
    batch = make_batch(feats, None, np.random.default_rng(0))
    out = losses(model, batch, 5, 3, alpha=1.0, rng=np.random.default_rng(0))
    out["roll"].backward()
    assert model.in_proj.weight.grad.abs().sum() > 0 and model.blocks[0].qkv.weight.grad.abs().sum() > 0


def test_warm_start_turns_l_roll_on_later_and_budget_stops_mid_epoch():
    feats = toy_features(6, 16, seed=3)
    cfg = TrainConfig(epochs=2, alpha=1.0, roll_start_epoch=1, horizon=3, starts_per_event=2, events_per_batch=2,
                      seed=0, val_fraction=0.34)
    _, res = train(feats, tiny_config(), cfg, progress=False)
    assert np.isnan(res.history[0]["train_roll"]) and np.isfinite(res.history[1]["train_roll"])
    _, res = train(feats, tiny_config(), TrainConfig(epochs=5, max_seconds=0.0, events_per_batch=1, seed=0),
                   progress=False)
    assert len(res.history) == 1 and res.history[0]["batches"] == 1  # stopped after the first batch


def test_cosine_schedule_and_weight_average_are_what_gets_validated_and_kept():
    feats = toy_features(8, 20, seed=4)
    cfg = TrainConfig(epochs=3, lr=3e-3, alpha=0.0, horizon=4, starts_per_event=2, events_per_batch=2, seed=0,
                      val_fraction=0.25, lr_schedule="cosine", ema_decay=0.9, threads=1)
    model, res = train(feats, tiny_config(), cfg, progress=False)
    val = [f for f in feats if f.event_id in res.val_events]
    # the kept model is the validated one: its report matches the best epoch's history row
    best = res.history[res.best_epoch - 1]
    assert evaluate(model, val, 4, cfg.val_starts)["roll_kl"] == pytest.approx(best["val_roll_kl"], rel=1e-5)
    # averaged weights differ from the raw ones of an otherwise identical run without the average
    raw, _ = train(feats, tiny_config(), TrainConfig(**{**cfg.__dict__, "ema_decay": 0.0}), progress=False)
    assert any(not torch.allclose(a, b) for a, b in zip(model.parameters(), raw.parameters()))
    const, _ = train(feats, tiny_config(), TrainConfig(**{**cfg.__dict__, "ema_decay": 0.0, "lr_schedule": "constant"}),
                     progress=False)
    assert any(not torch.allclose(a, b) for a, b in zip(raw.parameters(), const.parameters()))
    with pytest.raises(ValueError, match="lr_schedule"):
        train(feats, tiny_config(), TrainConfig(epochs=1, lr_schedule="step"), progress=False)


def test_with_l_roll_the_kept_epoch_was_trained_with_it_so_the_ablation_is_another_model():
    """An epoch before L_roll starts is an L_seq-only model: the w/o LCT-State ablation under
    another name. With alpha > 0 it is kept only if training ends before L_roll ever runs."""
    feats = toy_features(8, 20, seed=4)
    base = dict(epochs=4, lr=3e-3, horizon=4, starts_per_event=2, events_per_batch=2, seed=0, val_fraction=0.25,
                roll_start_epoch=2, patience=10, threads=1)
    lct, res = train(feats, tiny_config(), TrainConfig(alpha=1.0, **base), progress=False)
    assert res.best_epoch >= 3
    ablation, res0 = train(feats, tiny_config(), TrainConfig(alpha=0.0, **base), progress=False)
    assert any(not torch.allclose(a, b) for a, b in zip(lct.parameters(), ablation.parameters()))
    _, short = train(feats, tiny_config(), TrainConfig(alpha=1.0, **{**base, "epochs": 2}), progress=False)
    assert short.best_epoch in (1, 2)  # L_roll never ran: the best L_seq epoch, with a warning


def test_sampled_feedback_feeds_a_histogram_and_passes_the_gradient():
    from mfmdp.transition.train import sampled_feedback

    probs = torch.softmax(torch.randn(5, 3, requires_grad=True), -1)
    probs.retain_grad()
    fed = sampled_feedback(16, torch.Generator().manual_seed(0))(probs)
    counts = fed.detach().numpy() * 16
    assert np.allclose(counts, counts.round(), atol=1e-5) and np.allclose(fed.detach().sum(-1), 1.0)
    assert not torch.allclose(fed, probs)
    weights = torch.arange(15.0).reshape(5, 3)
    (fed * weights).sum().backward()
    assert torch.allclose(probs.grad, weights)  # straight-through: d fed / d probs = identity


def test_noise_injected_rollouts_train_another_seeded_model():
    """roll_feedback_slots feeds sampled histograms to L_roll in training (validation rollouts stay
    deterministic): a different model, the same one again from the same seed."""
    feats = toy_features(6, 20, seed=1)
    base = dict(epochs=2, lr=1e-3, horizon=4, starts_per_event=2, events_per_batch=3, seed=5, threads=1,
                val_fraction=0.34, roll_start_epoch=0)
    m0, _ = train(feats, tiny_config(), TrainConfig(**base), progress=False)
    m1, r1 = train(feats, tiny_config(), TrainConfig(**base, roll_feedback_slots=4), progress=False)
    m2, r2 = train(feats, tiny_config(), TrainConfig(**base, roll_feedback_slots=4), progress=False)
    assert all(torch.equal(a, b) for a, b in zip(m1.parameters(), m2.parameters()))
    assert not all(torch.equal(a, b) for a, b in zip(m0.parameters(), m1.parameters()))
    assert np.isfinite(r1.history[-1]["train_roll"]) and r1.history[-1]["val_roll_kl"] == r2.history[-1]["val_roll_kl"]


def test_systematic_feedback_stays_within_one_state_of_the_forecast():
    """roll_feedback_draws: systematic feeds what the simulator's systematic state draws feed back:
    each count within one of slots x forecast, and unbiased over draws."""
    from mfmdp.transition.train import sampled_feedback

    probs = torch.tensor([[0.5, 0.3, 0.2], [0.07, 0.9, 0.03]], requires_grad=True)
    feed = sampled_feedback(16, torch.Generator().manual_seed(0), systematic=True)
    fed = torch.stack([feed(probs) for _ in range(2000)])
    assert (torch.abs(fed.detach() * 16 - probs.detach() * 16) < 1 + 1e-6).all()
    assert torch.allclose(fed.detach().mean(0), probs.detach(), atol=0.01)
    independent = sampled_feedback(16, torch.Generator().manual_seed(0))
    spread = torch.stack([independent(probs) for _ in range(2000)]).detach().std(0)
    assert (fed.detach().std(0) < spread).all()
