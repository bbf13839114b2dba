"""The LLM layer: OpenAI-compatible HTTP backend against a real local server, wrappers, registry."""

from __future__ import annotations

import logging

import pytest

from fake_openai_server import FakeOpenAIServer
from mfmdp.llm import (CallLimitExceeded, CallLimitModel, FakeChatModel, LLMError, RetryingModel,
                       TransientLLMError, get_chat_model, user)
from mfmdp.llm.errors import MissingExtraError, require
from mfmdp.llm.jsonout import extract_json
from mfmdp.llm.openai_http import OpenAIChatModel
from mfmdp.llm.prompts import load_prompt, parse_prompt


def test_http_round_trip_sends_model_params_and_key_header():
    with FakeOpenAIServer(default=("text", "你好")) as srv:
        m = OpenAIChatModel(base_url=srv.base_url, model="m1", api_key="sk-secret", timeout=5)
        assert m.complete(user("hi"), temperature=0.3, max_tokens=7) == "你好"
        body = srv.requests[0]
        assert body["model"] == "m1" and body["temperature"] == 0.3 and body["max_tokens"] == 7
        assert body["messages"] == [{"role": "user", "content": "hi"}]
        assert srv.headers[0]["authorization"] == "Bearer sk-secret"
        # the key never appears in what may be logged or written to a manifest
        assert "sk-secret" not in repr(m) + str(m.describe()) + m.name


def test_env_configuration(monkeypatch):
    with FakeOpenAIServer(default=("text", "env")) as srv:
        monkeypatch.setenv("MFMDP_LLM_BASE_URL", srv.base_url)
        monkeypatch.setenv("MFMDP_LLM_MODEL", "env-model")
        monkeypatch.setenv("MFMDP_LLM_API_KEY", "k")
        m = get_chat_model("openai")
        assert m.complete(user("x")) == "env" and srv.requests[0]["model"] == "env-model"
    monkeypatch.delenv("MFMDP_LLM_BASE_URL")
    with pytest.raises(ValueError, match="MFMDP_LLM_BASE_URL"):
        OpenAIChatModel()


def test_429_and_5xx_are_retried_then_succeed():
    with FakeOpenAIServer(default=("text", "fine")) as srv:
        srv.script = [("status", 429), ("status", 503)]
        waits = []
        m = RetryingModel(OpenAIChatModel(base_url=srv.base_url, model="m", timeout=5), max_retries=3,
                          base_delay=0.01, sleep=waits.append)
        assert m.complete(user("x")) == "fine"
        assert srv.calls == 3 and m.retries == 2 and len(waits) == 2


def test_400_is_not_retried():
    with FakeOpenAIServer() as srv:
        srv.script = [("status", 400)]
        m = RetryingModel(OpenAIChatModel(base_url=srv.base_url, model="m", timeout=5), sleep=lambda s: None)
        with pytest.raises(LLMError, match="HTTP 400"):
            m.complete(user("x"))
        assert srv.calls == 1


def test_timeout_is_transient_and_retry_gives_up_after_max():
    with FakeOpenAIServer(default=("sleep", 0.6)) as srv:
        m = RetryingModel(OpenAIChatModel(base_url=srv.base_url, model="m", timeout=0.2), max_retries=1,
                          sleep=lambda s: None)
        with pytest.raises(TransientLLMError, match="timeout"):
            m.complete(user("x"))
        assert srv.calls == 2


def test_backoff_is_exponential_with_jitter_and_capped():
    m = RetryingModel(FakeChatModel(), base_delay=1.0, max_delay=5.0, seed=0)
    err = TransientLLMError("x")
    for k in range(6):
        d = m._delay(k, err)
        assert 0.0 <= d <= min(5.0, 2.0**k)
    assert m._delay(0, TransientLLMError("x", retry_after=2.5)) == 2.5


def test_call_limit():
    m = CallLimitModel(FakeChatModel("a"), max_calls=2)
    m.complete(user("1"))
    m.complete(user("2"))
    with pytest.raises(CallLimitExceeded, match="2/2"):
        m.complete(user("3"))


def test_sample_n_and_logprobs_parsed():
    def lp(body, content):
        return [{"token": "状", "logprob": -0.1, "top_logprobs": [{"token": "状", "logprob": -0.1}]}]

    with FakeOpenAIServer(default=("text", "s"), logprobs=lp) as srv:
        m = OpenAIChatModel(base_url=srv.base_url, model="m", timeout=5)
        out = m.sample(user("x"), 3, temperature=1.0, logprobs=True, top_logprobs=1)
        assert len(out) == 3 and srv.calls == 1 and srv.requests[0]["n"] == 3
        assert out[0].tokens[0][0] == "状" and out[0].tokens[0][2] == {"状": -0.1}


def test_batch_runs_concurrently_and_keeps_order():
    with FakeOpenAIServer(default=("json", lambda b: b["messages"][0]["content"].upper())) as srv:
        m = OpenAIChatModel(base_url=srv.base_url, model="m", timeout=5, max_concurrency=4)
        assert m.complete_batch([user(c) for c in "abcdef"]) == list("ABCDEF")
        assert srv.calls == 6


def test_fake_model_is_deterministic():
    a, b = FakeChatModel(), FakeChatModel()
    assert a.complete(user("x"), seed=1) == b.complete(user("x"), seed=1)
    assert a.complete(user("x"), seed=1) != a.complete(user("x"), seed=2)
    assert a.calls == 3


def test_registry_errors_and_missing_extra_hint():
    with pytest.raises(ValueError, match="unknown LLM backend"):
        get_chat_model("nope")
    with pytest.raises(ValueError, match="local model directory"):
        get_chat_model("hf")
    with pytest.raises(MissingExtraError, match=r"pip install 'mfmdp\[llm\]'"):
        require("surely_not_a_module_xyz")
    assert isinstance(get_chat_model("fake"), FakeChatModel)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        get_chat_model("hf:/nonexistent/model/dir")


def test_json_extraction():
    assert extract_json('```json\n{"a": 1}\n```') == {"a": 1}
    assert extract_json('Sure! {"a": [1]} hope that helps') == {"a": [1]}
    with pytest.raises(ValueError, match="no valid JSON"):
        extract_json("{not json")


def test_prompt_files_are_versioned(tmp_path):
    for name in ("annotate", "policy", "summarise"):
        p = load_prompt(name)
        assert p.version and p.id == f"{name}@{p.version}"
    bad = tmp_path / "x.txt"
    bad.write_text("no header $x")
    with pytest.raises(ValueError, match="version"):
        load_prompt("x", str(bad))
    with pytest.raises(KeyError, match="needs field"):
        parse_prompt("# version: 1\n$a $b", "t", "t.txt").render(a=1)


def test_retry_logs_do_not_contain_the_key(caplog):
    with FakeOpenAIServer(default=("text", "ok")) as srv:
        srv.script = [("status", 500)]
        m = RetryingModel(OpenAIChatModel(base_url=srv.base_url, model="m", api_key="sk-hidden", timeout=5),
                          sleep=lambda s: None)
        with caplog.at_level(logging.DEBUG):
            m.complete(user("x"))
    assert "sk-hidden" not in caplog.text and "retry 1" in caplog.text


def test_budget_never_lets_a_request_pass_it():
    with FakeOpenAIServer(default=("text", "答")) as srv:
        m = CallLimitModel(OpenAIChatModel(base_url=srv.base_url, model="m", timeout=5), max_tokens=300)
        sent = 0
        with pytest.raises(CallLimitExceeded, match="token budget"):
            while True:
                m.complete(user("x" * 50), max_tokens=100)
                sent += 1
        used = sum(len(r["messages"][0]["content"]) + 1 for r in srv.requests)  # what the server reported
        assert sent == srv.calls >= 1 and m.tokens == used <= 300
        # the refused request was never sent, and the bound it was refused on covers the prompt and answer
        assert m.tokens + 50 + 8 + 100 > 300


def test_a_dead_server_logs_one_retry_warning(caplog, monkeypatch):
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    m = RetryingModel(OpenAIChatModel(base_url=f"http://127.0.0.1:{port}/v1", model="m", timeout=1), max_retries=3,
                      sleep=lambda s: None)
    with caplog.at_level(logging.WARNING), pytest.raises(TransientLLMError, match="cannot reach"):
        m.complete(user("x"))
    assert m.retries == 3 and len(caplog.records) == 1
