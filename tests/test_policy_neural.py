"""The neural policy network and backend: prior, candidates (dropout masks), NLL, save/load."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from mfmdp.core.schema import Labels
from mfmdp.policy.base import Policy, StepContext
from mfmdp.policy.inputs import PolicyInputs
from mfmdp.simulate.methods import policy_method
from mfmdp.policy.network import NeuralPolicyConfig, agent_features
from mfmdp.policy.neural import NeuralPolicy, sample_categorical
from mfmdp.policy.retrieval import RetrievalPool

D, DC, F = 8, 9, 4


def make_cfg(**inputs) -> NeuralPolicyConfig:
    return NeuralPolicyConfig(context_dim=D, signal_dim=DC, time_dim=F, hidden=16, dropout=0.3,
                              inputs=PolicyInputs(**inputs))


def make_ctx(n: int = 5, seed: int = 0, m_hat=(0.6, 0.3, 0.1)) -> StepContext:
    rng = np.random.default_rng(seed)
    return StepContext(t=3, topic="t", m_hat=np.array(m_hat), synopsis=rng.standard_normal(D).astype(np.float32),
                       synopsis_text="", signal=np.zeros(DC, np.float32), signal_texts=[],
                       time=rng.random(F).astype(np.float32), profiles=rng.random((n, 10)).astype(np.float32))


def test_uniform_g_gives_q_equal_to_prior():
    pol = NeuralPolicy(make_cfg())
    with torch.no_grad():
        pol.net.state_head.weight.zero_()
        pol.net.state_head.bias.zero_()
    ctx = make_ctx()
    prop = pol.propose(ctx, 3, np.random.default_rng(0))
    assert prop.state_probs.shape == (3, 5, 3)
    np.testing.assert_allclose(prop.state_probs, np.broadcast_to(ctx.m_hat, (3, 5, 3)), atol=1e-6)
    # without the prior the same g gives the uniform distribution
    pol2 = NeuralPolicy(make_cfg(use_prior=False))
    pol2.net.load_state_dict(pol.net.state_dict())
    np.testing.assert_allclose(pol2.propose(ctx, 2, np.random.default_rng(0)).state_probs, 1 / 3, atol=1e-6)


def test_candidates_differ_but_are_reproducible_for_a_seed():
    pol = NeuralPolicy(make_cfg())
    ctx = make_ctx(n=7)
    a = pol.propose(ctx, 4, np.random.default_rng(42))
    b = pol.propose(ctx, 4, np.random.default_rng(42))
    np.testing.assert_array_equal(a.state_probs, b.state_probs)
    np.testing.assert_array_equal(a.handle["masks"], b.handle["masks"])
    mixes = a.mixes
    assert mixes.shape == (4, 3)
    assert np.ptp(mixes, axis=0).max() > 1e-4, "dropout candidates should differ"
    c = pol.propose(ctx, 4, np.random.default_rng(43))
    assert not np.allclose(a.state_probs, c.state_probs)


def test_mask_is_shared_by_all_agents_of_a_step():
    pol = NeuralPolicy(make_cfg())
    ctx = make_ctx(n=6)
    big = pol.propose(ctx, 4, np.random.default_rng(7))
    for i in (0, 4):
        one = make_ctx(n=6)
        one.profiles = ctx.profiles[i:i + 1]
        small = pol.propose(one, 4, np.random.default_rng(7))
        np.testing.assert_allclose(small.state_probs[:, 0], big.state_probs[:, i], atol=1e-6)


def test_nll_in_nats_matches_hand_computation():
    pol = NeuralPolicy(make_cfg(use_prior=False))
    q = np.array([0.5, 0.3, 0.2])
    pi = np.array([[0.9, 0.1], [0.4, 0.6], [0.25, 0.75]])
    with torch.no_grad():
        for head in (pol.net.state_head, pol.net.behavior_head):
            head.weight.zero_()
        pol.net.state_head.bias.copy_(torch.log(torch.tensor(q)))
        pol.net.behavior_head.bias.copy_(torch.log(torch.tensor(pi)).flatten())
    ctx = make_ctx(n=4)
    states = np.array([0, 2, -1, 1])
    behaviors = np.array([1, 0, 1, -1])
    got = pol.nll(ctx, states, behaviors)
    want = [
        -math.log(0.5) - math.log(0.1),
        -math.log(0.2) - math.log(0.25),
        -math.log(0.5 * 0.1 + 0.3 * 0.6 + 0.2 * 0.75),  # unknown state: marginalised
        -math.log(0.3),  # unknown behavior: state only
    ]
    np.testing.assert_allclose(got, want, rtol=1e-5)
    one = make_ctx(n=1)
    assert np.isnan(pol.nll(one, np.array([-1]), np.array([-1]))[0])


def test_input_switches_change_input_width_and_reject_wrong_dims():
    full = make_cfg()
    direct = make_cfg(**policy_method("direct").inputs.model_dump())
    assert full.input_dim == 1 + 10 + D + DC + F
    assert direct.input_dim == 1 + 10 + DC + F
    assert policy_method("social_retrieval").inputs.context == "social"
    assert not policy_method("mf_llm").inputs.use_prior
    with pytest.raises(ValueError, match="has no policy"):
        policy_method("oracle")
    ctx = make_ctx()
    with pytest.raises(ValueError, match="context"):
        agent_features(full, ctx.profiles, np.zeros(D + 1), ctx.signal, ctx.time)


def test_direct_policy_ignores_the_context_vector():
    pol = NeuralPolicy(make_cfg(**policy_method("direct").inputs.model_dump()))
    a, b = make_ctx(seed=1), make_ctx(seed=1)
    b.synopsis = np.ones(D, np.float32) * 5
    b.m_hat = np.array([0.1, 0.1, 0.8])
    np.testing.assert_array_equal(pol.propose(a, 2, np.random.default_rng(0)).state_probs,
                                  pol.propose(b, 2, np.random.default_rng(0)).state_probs)


def test_sample_categorical_follows_probabilities():
    rng = np.random.default_rng(0)
    p = np.tile([0.7, 0.2, 0.1], (20000, 1))
    counts = np.bincount(sample_categorical(p, rng), minlength=3) / 20000
    np.testing.assert_allclose(counts, [0.7, 0.2, 0.1], atol=0.015)


def tiny_pool(dim: int = D) -> RetrievalPool:
    rng = np.random.default_rng(0)
    texts, states, behaviors = [], [], []
    for y in range(3):
        for b in range(2):
            for k in range(3):
                texts.append(f"y{y}b{b}#{k}")
                states.append(y)
                behaviors.append(b)
    n = len(texts)
    labels = Labels({"state": np.array(states), "behavior": np.array(behaviors),
                     "stance": np.full(n, 1)})
    emb = rng.standard_normal((n, dim)).astype(np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    return RetrievalPool.build(texts, labels, emb, encoder="fake")


def test_realise_samples_actions_with_retrieved_texts_and_labels():
    pol = NeuralPolicy(make_cfg(), pool=tiny_pool())
    assert isinstance(pol, Policy)
    ctx = make_ctx(n=9)
    rng = np.random.default_rng(3)
    prop = pol.propose(ctx, 2, rng)
    act = pol.realise(ctx, prop, 1, rng)
    assert act.states.dtype == np.int8 and len(act.texts) == 9
    for y, b, text in zip(act.states, act.behaviors, act.texts):
        assert text.startswith(f"y{y}b{b}#")  # exact (y, b) match
    lab = act.extra["labels"]
    np.testing.assert_array_equal(lab.codes["state"], act.states)
    np.testing.assert_array_equal(lab.codes["stance"], 1)
    assert act.embeddings.shape == (9, D)


def test_save_load_round_trip(tmp_path):
    pol = NeuralPolicy(make_cfg(), pool=tiny_pool(), training={"note": "x"})
    pol.net.set_standardiser(np.random.default_rng(0).random((50, pol.config.input_dim)))
    pol.save(tmp_path / "ckpt")
    back = NeuralPolicy.load(tmp_path / "ckpt")
    ctx = make_ctx(n=5)
    a = pol.propose(ctx, 3, np.random.default_rng(5))
    b = back.propose(ctx, 3, np.random.default_rng(5))
    np.testing.assert_array_equal(a.state_probs, b.state_probs)
    assert back.pool.texts == pol.pool.texts
    np.testing.assert_array_equal(back.pool.labels.codes["stance"], pol.pool.labels.codes["stance"])
    assert back.training == {"note": "x"}
    assert back.config == pol.config


def test_load_rejects_missing_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a neural policy checkpoint"):
        NeuralPolicy.load(tmp_path)
