"""The OpenAI-compatible LLM policy against the local fake server (real HTTP)."""

from __future__ import annotations

import itertools
import threading

import numpy as np
import pytest

from fake_openai_server import FakeOpenAIServer
from mfmdp.llm import RetryingModel
from mfmdp.llm.openai_http import OpenAIChatModel
from mfmdp.policy.base import Policy, StepContext
from mfmdp.policy.inputs import PolicyInputs
from mfmdp.policy.openai_policy import OpenAIPolicy, OpenAIPolicyConfig
from mfmdp.policy.prompting import PolicyPrompter

ACTIONS = ["状态：消极 | 行为：评论 | 内容：这是谣言", "状态：中立 | 行为：转发 | 内容：转发微博",
           "状态：积极 | 行为：评论 | 内容：致敬"]


def ctx(n=3, m_hat=(1 / 3, 1 / 3, 1 / 3)) -> StepContext:
    return StepContext(t=2, topic="某事件", m_hat=np.asarray(m_hat), synopsis=np.zeros(4), synopsis_text="",
                       signal=np.zeros(1), signal_texts=[], time=np.zeros(1), profiles=np.zeros((n, 10), np.float32))


def cycling(actions):
    it = itertools.cycle(actions)
    lock = threading.Lock()

    def handler(body):
        if "你的状态是" in body["messages"][-1]["content"]:
            return "状态：积极 | 行为：评论 | 内容：强制的积极"
        with lock:
            return next(it)
    return handler


def policy(srv, **kw) -> OpenAIPolicy:
    model = RetryingModel(OpenAIChatModel(base_url=srv.base_url, model="m", timeout=5), sleep=lambda s: None)
    return OpenAIPolicy(model, OpenAIPolicyConfig(**kw))


def test_state_distribution_from_samples_and_realise():
    with FakeOpenAIServer(default=("json", cycling([ACTIONS[0], ACTIONS[0], ACTIONS[1], "乱码"]))) as srv:
        p = policy(srv, n_samples=4, inputs=PolicyInputs(use_prior=False))
        assert isinstance(p, Policy)
        c = ctx()
        prop = p.propose(c, 2, np.random.default_rng(0))
        assert srv.calls == 3 and all(r["n"] == 8 for r in srv.requests)  # one request per agent
        # every candidate saw 2 negative, 1 neutral, 1 unparseable: (2.5, 1.5, 0.5) / 4.5
        np.testing.assert_allclose(prop.state_probs, np.broadcast_to([0.5 / 4.5, 1.5 / 4.5, 2.5 / 4.5], (2, 3, 3)))
        assert p.stats["unparseable"] == 6
        prompt = srv.requests[0]["messages"][0]["content"]
        assert prompt == PolicyPrompter(PolicyInputs(use_prior=False)).prompt(c, 0)  # the shared template
        acts = p.realise(c, prop, 0, np.random.default_rng(1))
        for s, b, t in zip(acts.states, acts.behaviors, acts.texts):
            if s == 2:
                assert (b, t) == (1, "这是谣言")
            elif s == 1:
                assert (b, t) == (0, "转发微博")
            else:  # no positive sample: one forced-state request
                assert t == "强制的积极"
        assert p.nll(c, acts.states, acts.behaviors).shape == (3,)


def test_prior_multiplies_the_sample_frequencies():
    with FakeOpenAIServer(default=("json", cycling(ACTIONS))) as srv:
        m_hat = np.array([0.6, 0.3, 0.1])
        q = policy(srv, n_samples=3).propose(ctx(1, m_hat), 1, np.random.default_rng(0)).state_probs[0, 0]
        expect = np.array([1.5, 1.5, 1.5]) * m_hat
        np.testing.assert_allclose(q, expect / expect.sum())


def test_logprobs_give_the_state_distribution():
    def lp(body, content):
        return [{"token": "状态", "logprob": 0.0, "top_logprobs": []},
                {"token": "：", "logprob": 0.0, "top_logprobs": []},
                {"token": "消", "logprob": np.log(0.7),
                 "top_logprobs": [{"token": "消", "logprob": np.log(0.7)}, {"token": "中", "logprob": np.log(0.2)},
                                  {"token": "积", "logprob": np.log(0.1)}]}]

    with FakeOpenAIServer(default=("text", ACTIONS[0]), logprobs=lp) as srv:
        p = policy(srv, n_samples=2, use_logprobs=True, inputs=PolicyInputs(use_prior=False))
        q = p.propose(ctx(2), 2, np.random.default_rng(0)).state_probs
        assert srv.requests[0]["logprobs"] is True and srv.requests[0]["top_logprobs"] == 5
        np.testing.assert_allclose(q, np.broadcast_to([0.1, 0.2, 0.7], (2, 2, 3)), atol=1e-5)


def test_transient_errors_during_proposals_are_retried():
    with FakeOpenAIServer(default=("json", cycling(ACTIONS))) as srv:
        srv.script = [("status", 429), ("status", 500)]
        prop = policy(srv, n_samples=1).propose(ctx(2), 1, np.random.default_rng(0))
        assert prop.state_probs.shape == (1, 2, 3) and srv.calls == 4


def test_bad_candidate_count():
    with FakeOpenAIServer() as srv, pytest.raises(ValueError, match="n_candidates"):
        policy(srv).propose(ctx(), 0, np.random.default_rng(0))


def test_from_env(monkeypatch):
    with FakeOpenAIServer(default=("json", cycling(ACTIONS))) as srv:
        monkeypatch.setenv("MFMDP_LLM_BASE_URL", srv.base_url)
        monkeypatch.setenv("MFMDP_LLM_MODEL", "served")
        p = OpenAIPolicy.from_env(PolicyInputs(context="none"), n_samples=1)
        assert p.name.startswith("openai[openai:served") and p.config.inputs.context == "none"
        p.propose(ctx(1), 1, np.random.default_rng(0))
        assert "（不提供）" in srv.requests[0]["messages"][0]["content"]  # context "none" hides the synopsis


def test_the_prompt_shows_the_agents_own_earlier_state_only_with_use_own_history():
    c = ctx(n=2)
    c.own_previous = np.array([2, -1])
    with_history = PolicyPrompter(PolicyInputs(use_prior=False, use_own_history=True))
    assert "此前在本事件中的状态：消极" in with_history.prompt(c, 0)
    assert "此前未在本事件中发言" in with_history.prompt(c, 1)
    plain = PolicyPrompter(PolicyInputs(use_prior=False))
    assert "此前" not in plain.prompt(c, 0) and plain.prompt(c, 0) == plain.prompt(ctx(n=2), 0)
    with FakeOpenAIServer(default=("json", cycling(ACTIONS))) as srv:  # what the endpoint receives
        policy(srv, n_samples=1, inputs=PolicyInputs(use_prior=False, use_own_history=True)).propose(
            c, 1, np.random.default_rng(0))
        assert any("此前在本事件中的状态：消极" in r["messages"][0]["content"] for r in srv.requests)
