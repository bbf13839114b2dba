"""The LLM summariser: a drop-in for EmbeddingSynopsis whose text comes from a chat model."""

from __future__ import annotations

import numpy as np
import pytest

from fake_openai_server import FakeOpenAIServer
from mfmdp.llm import FakeChatModel
from mfmdp.llm.openai_http import OpenAIChatModel
from mfmdp.meanfield.llm_summary import LLMSynopsis, llm_synopsis_factory
from mfmdp.meanfield.synopsis import EmbeddingSynopsis


def summariser(msgs, kw):
    prompt = msgs[-1]["content"]
    n = prompt.count("\n- ")
    return f"概要：{n}条回应"


def test_text_from_llm_vector_equals_the_offline_ema(tmp_path):
    rng = np.random.default_rng(0)
    model = FakeChatModel(summariser)
    llm = llm_synopsis_factory(model, cache_dir=tmp_path)(dim=4, decay=0.7, topic="话题")
    ref = EmbeddingSynopsis(4, decay=0.7)
    for step in range(3):
        emb = rng.normal(size=(5, 4)).astype(np.float32)
        texts = [f"回应{step}-{k}" for k in range(4)] + ["转发微博"]
        np.testing.assert_array_equal(llm.update(emb, texts), ref.update(emb, texts))
        assert llm.text == "概要：4条回应"  # bare reposts are not sent
    assert model.calls == 3
    # previous summary is part of the next prompt
    assert "概要：4条回应" in model.history[-1][-1]["content"]
    # a step with only bare reposts keeps the summary and costs nothing
    llm.update(rng.normal(size=(2, 4)).astype(np.float32), ["转发微博", ""])
    assert model.calls == 3 and llm.text == "概要：4条回应"


def test_cache_makes_replays_free(tmp_path):
    model = FakeChatModel(summariser)
    for _ in range(2):
        s = LLMSynopsis(model, 2, topic="t", cache_dir=tmp_path)
        s.update(np.ones((2, 2), np.float32), ["a", "b"])
        s.update(np.ones((1, 2), np.float32), ["c"])
    assert model.calls == 2


def test_summary_vector_mode_encodes_the_summary():
    class Enc:
        dim = 3
        name = "toy"

        def encode(self, texts):
            return np.array([[len(t), 1.0, 0.0] for t in texts], np.float32)

    s = LLMSynopsis(FakeChatModel("短概要"), 3, vector="summary", encoder=Enc())
    r = s.update(np.zeros((1, 3), np.float32), ["x"])
    np.testing.assert_array_equal(r, [3.0, 1.0, 0.0])
    with pytest.raises(ValueError, match="TextEncoder"):
        LLMSynopsis(FakeChatModel(), 5, vector="summary", encoder=Enc())


def test_over_http_with_truncation():
    with FakeOpenAIServer(default=("text", "很长" * 200)) as srv:
        s = LLMSynopsis(OpenAIChatModel(base_url=srv.base_url, model="m", timeout=5), 2, max_chars=20)
        s.update(np.zeros((1, 2), np.float32), ["一条回应"])
        assert len(s.text) == 20 and srv.calls == 1 and srv.requests[0]["temperature"] == 0.0
