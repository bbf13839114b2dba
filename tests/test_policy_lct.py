"""LCT training: minus-sign weights, gradients through the frozen rollout, end-to-end training."""

from __future__ import annotations

import numpy as np
import torch

from mfmdp.policy.costs import candidate_weights, discounted_kl, discounted_kl_torch
from mfmdp.policy.dataset import add_forecasts
from mfmdp.policy.inputs import PolicyInputs
from mfmdp.policy.lct import (LCTConfig, evaluate_policy, lct_weights, pred_loss, rollout_costs, train_policy)
from mfmdp.policy.network import NeuralPolicyConfig, PolicyNet
from mfmdp.transition.features import signal_dim
from policy_fakes import FakeTransition, tiny_event

DIM = 8


def policy_cfg(**inputs):
    return NeuralPolicyConfig(context_dim=DIM, signal_dim=signal_dim(DIM), time_dim=4, hidden=16, dropout=0.3,
                              inputs=PolicyInputs(**inputs))


def test_weights_use_the_minus_sign():
    v = torch.tensor([0.3, 2.0, 1.0, 5.0])
    w = lct_weights(v, beta=2.0)
    assert int(w.argmax()) == 0 and int(w.argmin()) == 3
    assert abs(float(w.sum()) - 1) < 1e-6
    assert not w.requires_grad
    np.testing.assert_allclose(candidate_weights(v.numpy(), 2.0), w.numpy(), rtol=1e-5)


def test_discounted_kl_matches_hand_computation():
    p = np.array([[0.5, 0.5, 0.0], [0.2, 0.3, 0.5]])
    q = np.array([[0.25, 0.25, 0.5], [0.2, 0.3, 0.5]])
    want = 0.5 * np.log(2) * 2 + 0.9 * 0.0
    np.testing.assert_allclose(discounted_kl(p, q, 0.9), want, rtol=1e-9)
    np.testing.assert_allclose(float(discounted_kl_torch(torch.tensor(p), torch.tensor(q), 0.9)), want, rtol=1e-9)


def test_pred_loss_gradient_reaches_policy_through_the_rollout():
    ev = tiny_event(0)
    trans = FakeTransition(DIM, 11 + signal_dim(DIM) + 4)
    for p in trans.parameters():
        p.requires_grad_(False)
    add_forecasts(ev, trans)
    net = PolicyNet(policy_cfg())
    session = trans.session(ev.schedule)
    for t in range(4):
        session.step(ev.m_prev[t][None], ev.r_prev[t][None])
    loss = pred_loss(net, session, ev, 3, LCTConfig(J=4, K=5), np.random.default_rng(0))
    loss.backward()
    g = net.state_head.weight.grad
    assert g is not None and float(g.abs().sum()) > 0
    assert net.layers[0].weight.grad.abs().sum() > 0
    # behaviors do not enter the state mix: L_pred leaves the behavior head untouched
    assert net.behavior_head.weight.grad is None or float(net.behavior_head.weight.grad.abs().sum()) == 0
    assert all(p.grad is None for p in trans.parameters())


def test_rollout_costs_are_lower_for_the_real_future():
    """Feeding the real m_t should cost less than feeding a wrong mix (fake f_psi is persistent)."""
    ev = tiny_event(1, steps=10)
    trans = FakeTransition(DIM, 11 + signal_dim(DIM) + 4)
    ev.m_real[:] = np.array([0.8, 0.15, 0.05], np.float32)  # a constant real trajectory
    session = trans.session(ev.schedule)
    for t in range(3):
        session.step(ev.m_prev[t][None], ev.r_prev[t][None])
    mixes = torch.tensor([[0.8, 0.15, 0.05], [0.05, 0.15, 0.8]])
    v = rollout_costs(session, mixes, ev, 2, 4, 0.9)
    assert v[0] < v[1]


def test_training_improves_text_nll_and_runs_with_and_without_lct():
    events = [tiny_event(s, steps=14, per_step=8) for s in range(6)]
    held = [tiny_event(100 + s, steps=14, per_step=8) for s in range(2)]
    trans = FakeTransition(DIM, 11 + signal_dim(DIM) + 4)
    for ev in held:
        add_forecasts(ev, trans)
    untrained = evaluate_policy(PolicyNet(policy_cfg()), [add_forecasts(tiny_event(100), trans)])
    cfg = LCTConfig(J=3, K=4, epochs=4, starts_per_event=2, lr=1e-2, seed=0)
    pol, hist = train_policy(events, policy_cfg(), cfg, trans, progress=False)
    assert len(hist) == 4 and "l_pred" in hist[0]
    assert hist[-1]["l_text"] < hist[0]["l_text"]
    after = evaluate_policy(pol.net, held)
    assert after["nll"] < untrained["nll"]
    assert 0.0 <= after["state_f1"] <= 1.0
    # w/o LCT-Policy trains L_text only, and the same seed gives the same weights
    a, h1 = train_policy(events, policy_cfg(), cfg.model_copy(update={"lct": False}), trans, progress=False)
    b, _ = train_policy(events, policy_cfg(), cfg.model_copy(update={"lct": False}), trans, progress=False)
    assert "l_pred" not in h1[0]
    for (k, x), (_, y) in zip(a.net.state_dict().items(), b.net.state_dict().items()):
        assert torch.equal(x, y), k


def test_baseline_without_prior_trains_without_a_transition_model():
    events = [tiny_event(s) for s in range(3)]
    cfg = LCTConfig(lct=False, epochs=1)
    pol, hist = train_policy(events, policy_cfg(use_prior=False, context="none"), cfg, None, progress=False)
    assert np.isfinite(hist[0]["l_text"])
    assert pol.config.inputs.context == "none"


def tiny_transformer():
    from mfmdp.transition.model import EventTransformer, TransitionConfig

    torch.manual_seed(0)
    cfg = TransitionConfig(synopsis_dim=DIM, signal_dim=signal_dim(DIM), d_model=16, n_layers=1, n_heads=2, d_ff=32,
                           window=8, dropout=0.0)
    return EventTransformer(cfg).eval()


def test_lct_through_the_real_event_transformer_session():
    trans = tiny_transformer()
    events = [tiny_event(s, steps=12) for s in range(2)]
    net = PolicyNet(policy_cfg())
    ev = add_forecasts(events[0], trans)
    session = trans.session(ev.schedule)
    for t in range(3):
        session.step(ev.m_prev[t][None], ev.r_prev[t][None])
    loss = pred_loss(net, session, ev, 2, LCTConfig(J=3, K=4), np.random.default_rng(0))
    loss.backward()
    assert float(net.state_head.weight.grad.abs().sum()) > 0
    assert all(p.grad is None for p in trans.parameters())
    pol, hist = train_policy(events, policy_cfg(), LCTConfig(J=2, K=3, epochs=1, starts_per_event=2), trans,
                             progress=False)
    assert np.isfinite(hist[0]["l_pred"])


def test_batched_rollout_path_matches_the_session_path():
    from mfmdp.policy.lct import event_loss

    trans = tiny_transformer()
    ev = tiny_event(4, steps=20)
    from mfmdp.policy.dataset import add_forecasts as fast_forecasts

    fast = fast_forecasts(tiny_event(4, steps=20), trans).m_hat
    session = trans.session(ev.schedule)
    slow = np.stack([session.step(ev.m_prev[t][None], ev.r_prev[t][None])[0] for t in range(ev.n_steps)])
    np.testing.assert_allclose(fast, slow, atol=1e-5)
    ev.m_hat = fast
    net = PolicyNet(policy_cfg()).eval()  # eval: L_text's own dropout off, candidate masks still apply
    cfg = LCTConfig(J=3, K=6, starts_per_event=4)  # the window (8) is shorter than some starts: exercises it
    a, sa = event_loss(net, trans, ev, cfg, np.random.default_rng(1), batched=True)
    b, sb = event_loss(net, trans, ev, cfg, np.random.default_rng(1), batched=False)
    assert abs(sa["pred"] - sb["pred"]) < 1e-4 * max(1.0, abs(sb["pred"]))
    ga = torch.autograd.grad(a, net.state_head.weight)[0]
    gb = torch.autograd.grad(b, net.state_head.weight)[0]
    np.testing.assert_allclose(ga.numpy(), gb.numpy(), rtol=1e-3, atol=1e-4)  # float32 sums


def test_a_policy_reading_its_own_history_learns_what_the_author_said_before():
    """Agents who repeat their earlier state: only the policy with use_own_history can know it."""
    def repeating(seed):
        ev = tiny_event(seed, steps=14, per_step=8)
        rng = np.random.default_rng(seed + 7)
        ev.own_previous = np.where(rng.random(len(ev.states)) < 0.7, ev.states, -1).astype(np.int64)
        return ev

    trans = FakeTransition(DIM, 11 + signal_dim(DIM) + 4)
    events = [add_forecasts(repeating(s), trans) for s in range(6)]
    held = [add_forecasts(repeating(100 + s), trans) for s in range(2)]
    cfg = LCTConfig(lct=False, epochs=6, lr=1e-2, seed=0)
    nll = {}
    for own in (False, True):
        pol, _ = train_policy(events, policy_cfg(use_own_history=own), cfg, trans, progress=False)
        nll[own] = evaluate_policy(pol.net, held)["nll"]
    assert policy_cfg(use_own_history=True).input_dim == policy_cfg().input_dim + 4
    assert nll[True] < nll[False] - 0.1
