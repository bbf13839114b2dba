"""LLM annotator over real HTTP to a local fake server: batching, bad JSON, 429s, timeouts, cache."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fake_openai_server import FakeOpenAIServer
from llm_helpers import good_answer, good_answer_from_request, prompt_items, rule_labels
from mfmdp.annotate.base import Annotator
from mfmdp.annotate.llm import LLMAnnotator, LLMAnnotatorConfig, parse_answer
from mfmdp.core.schema import DIMENSIONS, label_index
from mfmdp.llm import CallLimitModel, FakeChatModel, RetryingModel
from mfmdp.llm.openai_http import OpenAIChatModel

TEXTS = ["这是假的吧", "转发微博", "好人一生平安", "转发微博", "谣言，别信", "哦"]
TOPIC = "某地发生一件事"


def http_annotator(srv, tmp_path, **cfg) -> LLMAnnotator:
    model = RetryingModel(OpenAIChatModel(base_url=srv.base_url, model="m", timeout=0.5), max_retries=3,
                          sleep=lambda s: None)
    return LLMAnnotator(model, cache_dir=tmp_path, config=LLMAnnotatorConfig(**cfg))


def expected_state(text: str) -> int:
    return label_index("state", rule_labels(text)["state"])


def test_annotates_over_http_with_several_items_per_call(tmp_path):
    with FakeOpenAIServer(default=("json", good_answer_from_request)) as srv:
        ann = http_annotator(srv, tmp_path, items_per_call=2)
        assert isinstance(ann, Annotator)
        beh = np.array([1, 0, 1, 0, 1, 1], dtype=np.int8)
        lab = ann.annotate(TEXTS, TOPIC, behaviors=beh)
        # 5 unique texts, 2 per call -> 3 calls; duplicates are asked once
        assert srv.calls == 3
        assert sorted(len(prompt_items(r["messages"][0]["content"])) for r in srv.requests) == [1, 2, 2]
        assert list(lab.codes["state"]) == [expected_state(t) for t in TEXTS]
        assert list(lab.codes["behavior"]) == list(beh)  # copied from the data
        assert (lab.confidence == 1.0).all()
        assert "behavior" not in srv.requests[0]["messages"][0]["content"].split("Source post")[0]


def test_cache_makes_a_rerun_free_and_survives_a_new_instance(tmp_path):
    with FakeOpenAIServer(default=("json", good_answer_from_request)) as srv:
        first = http_annotator(srv, tmp_path, items_per_call=3).annotate(TEXTS, TOPIC)
        calls = srv.calls
        again = http_annotator(srv, tmp_path, items_per_call=3).annotate(TEXTS, TOPIC)
        assert srv.calls == calls  # nothing asked
        for d in DIMENSIONS:
            assert (first.codes[d] == again.codes[d]).all()
        # another topic is another key
        http_annotator(srv, tmp_path, items_per_call=10).annotate(TEXTS[:2], "另一个话题")
        assert srv.calls == calls + 1


def test_cache_key_includes_model_and_prompt_version(tmp_path):
    fake_a = FakeChatModel(lambda m, kw: good_answer(m[-1]["content"]), name="model-a")
    fake_b = FakeChatModel(lambda m, kw: good_answer(m[-1]["content"]), name="model-b")
    LLMAnnotator(fake_a, cache_dir=tmp_path).annotate(TEXTS, TOPIC)
    LLMAnnotator(fake_a, cache_dir=tmp_path).annotate(TEXTS, TOPIC)
    assert fake_a.calls == 1
    LLMAnnotator(fake_b, cache_dir=tmp_path).annotate(TEXTS, TOPIC)
    assert fake_b.calls == 1
    from mfmdp.llm.prompts import load_prompt

    custom = tmp_path / "annotate_v2.txt"  # same body, new version: new cache keys
    custom.write_text("# version: my-v2\n" + load_prompt("annotate").body, encoding="utf-8")
    LLMAnnotator(fake_a, cache_dir=tmp_path, config=LLMAnnotatorConfig(prompt_path=str(custom))).annotate(TEXTS, TOPIC)
    assert fake_a.calls == 2


def test_bad_json_and_invalid_items_are_retried_alone(tmp_path):
    def half_wrong(body):
        items = prompt_items(body["messages"][0]["content"])
        out = []
        for i, t in items:
            lab = rule_labels(t)
            if i == 1 and len(items) > 1:
                lab["state"] = "furious"  # not in the schema
            out.append({"id": i, **lab})
        return json.dumps({"items": out}, ensure_ascii=False)

    with FakeOpenAIServer(default=("json", half_wrong)) as srv:
        srv.script = [("text", "I cannot answer in JSON, sorry {")]
        ann = http_annotator(srv, tmp_path, items_per_call=4, max_concurrency=1)
        texts = ["a假", "b", "c好", "d", "e"]
        lab = ann.annotate(texts, TOPIC)
        assert (lab.codes["state"] >= 0).all()
        assert list(lab.codes["state"]) == [expected_state(t) for t in texts]
        assert ann.stats["retried_items"] > 0 and ann.stats["failed"] == 0
        # retried items were asked again in smaller batches
        sizes = [len(prompt_items(r["messages"][0]["content"])) for r in srv.requests]
        assert sizes[0] == 4 and max(sizes[2:]) <= 2


def test_items_that_never_validate_stay_unknown_and_are_counted(tmp_path, caplog):
    with FakeOpenAIServer(default=("text", '{"items": []}')) as srv:
        ann = http_annotator(srv, tmp_path, items_per_call=5, item_retries=1)
        lab = ann.annotate(["x", "y"], TOPIC, behaviors=np.array([0, 1]))
        assert (lab.codes["state"] == -1).all() and (lab.confidence == 0).all()
        assert list(lab.codes["behavior"]) == [0, 1]
        assert ann.stats["failed"] == 2 and srv.calls == 2
        assert "no valid labels" in caplog.text


def test_429_and_timeouts_are_retried_over_http(tmp_path):
    with FakeOpenAIServer(default=("json", good_answer_from_request)) as srv:
        srv.script = [("status", 429), ("sleep", 1.0), ("status", 502)]
        ann = http_annotator(srv, tmp_path, items_per_call=10)
        lab = ann.annotate(TEXTS, TOPIC)
        assert (lab.codes["state"] >= 0).all()
        assert srv.calls == 4 and ann.model.retries == 3


def test_a_crash_loses_nothing(tmp_path):
    """A permanent failure midway propagates, but batches finished before it stay cached."""
    with FakeOpenAIServer(default=("json", good_answer_from_request)) as srv:
        srv.script = [("json", good_answer_from_request), ("status", 401)]
        ann = http_annotator(srv, tmp_path, items_per_call=2, max_concurrency=1)
        with pytest.raises(Exception, match="HTTP 401"):
            ann.annotate(["p1", "p2", "p3", "p4"], TOPIC)
        assert len(ann.cache) == 2
        srv.script = []
        ann2 = http_annotator(srv, tmp_path, items_per_call=2)
        before = srv.calls
        ann2.annotate(["p1", "p2", "p3", "p4"], TOPIC)
        assert srv.calls == before + 1 and ann2.stats["cached"] == 2


def test_parse_answer_checks_ids_and_fields():
    good, errors = parse_answer('{"items": [{"id": 1, "state": "neutral"}, {"id": 9}]}', [1, 2])
    assert not good and "sentiment" in errors[1] and errors[2] == "missing from the answer"
    good, errors = parse_answer(json.dumps([{"id": "1", **rule_labels("x")}]), [1])
    assert good[1]["state"] == "neutral" and not errors


def test_from_env(monkeypatch, tmp_path):
    with FakeOpenAIServer(default=("json", good_answer_from_request)) as srv:
        monkeypatch.setenv("MFMDP_LLM_BASE_URL", srv.base_url)
        monkeypatch.setenv("MFMDP_LLM_MODEL", "env-model")
        ann = LLMAnnotator.from_env(cache_dir=tmp_path)
        assert ann.name == "llm:openai:env-model"
        ann.annotate(["好"], TOPIC)
        assert (tmp_path / "llm_annotations.sqlite").exists()


def test_fake_backend_gives_schema_valid_deterministic_labels(tmp_path):
    ann = LLMAnnotator.from_config({"backend": "fake", "cache_dir": str(tmp_path), "items_per_call": 4})
    a = ann.annotate(TEXTS, TOPIC)
    b = LLMAnnotator.from_config({"backend": "fake", "items_per_call": 3}).annotate(TEXTS, TOPIC)
    for d in DIMENSIONS:
        if d != "behavior":
            assert (a.codes[d] >= 0).all() and (a.codes[d] == b.codes[d]).all()
    assert ann.stats["failed"] == 0


def test_a_spent_budget_stops_calls_and_leaves_the_rest_unlabelled_and_uncached(tmp_path):
    with FakeOpenAIServer(default=("json", good_answer_from_request)) as srv:
        model = OpenAIChatModel(base_url=srv.base_url, model="m", timeout=5)
        ann = LLMAnnotator(CallLimitModel(model, 2), cache_dir=tmp_path,
                           config=LLMAnnotatorConfig(items_per_call=1, max_concurrency=1))
        lab = ann.annotate(TEXTS, TOPIC)
        assert srv.calls == 2 and "call limit" in ann.stopped
        labelled = {t for t, s in zip(TEXTS, lab.codes["state"]) if s >= 0}
        assert len(labelled) == 2 and ann.stats["failed"] == 3  # of 5 distinct texts
        assert len(ann.cache) == 2  # the unlabelled ones are not cached: a rerun asks for them
        assert ann.stats["tokens"] == sum(len(r["messages"][0]["content"]) for r in srv.requests) + \
            sum(len(good_answer_from_request(r)) for r in srv.requests)


def test_budget_comes_from_the_spec(tmp_path):
    from mfmdp.annotate.registry import get_annotator

    ann = get_annotator("llm:backend=fake,items_per_call=1,max_calls=3", cache_dir=str(tmp_path))
    lab = ann.annotate(TEXTS, TOPIC)
    assert ann.model.calls == 3 and len({t for t, s in zip(TEXTS, lab.codes["state"]) if s >= 0}) == 3
    assert get_annotator("llm:backend=fake,max_calls=3", max_calls=7).config.max_calls == 7  # the CLI wins
    with pytest.raises(ValueError, match="only apply to llm"):
        get_annotator("offline", max_calls=3)
