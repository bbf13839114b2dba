"""LLM annotator: several responses per call, strict JSON validated against the schema, retries of
the failed items, bounded concurrency, and a persistent sqlite cache keyed by (model, prompt version,
topic, text). Behavior is copied from the data, never asked of the model.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from mfmdp.core.schema import DIMENSIONS, TEXT_DIMENSIONS, Labels
from mfmdp.llm.base import Completion, bounded_map, user
from mfmdp.llm.cache import SqliteCache, cache_key
from mfmdp.llm.errors import CallLimitExceeded, LLMError
from mfmdp.llm.jsonout import extract_json
from mfmdp.llm.prompts import PromptTemplate, load_prompt
from mfmdp.llm.wrappers import usage_tokens

log = logging.getLogger(__name__)
CONFIDENCE_VALUE = {"high": 1.0, "low": 0.5}
ENV_CACHE_DIR = "MFMDP_CACHE_DIR"


@dataclass
class LLMAnnotatorConfig:
    backend: str = "openai"  # llm registry spec: openai | openai:MODEL | hf:/dir | fake
    items_per_call: int = 10
    item_retries: int = 2  # extra rounds for items whose answer was missing or invalid
    max_concurrency: int = 4
    temperature: float = 0.0
    max_tokens: int = 2048
    topic_chars: int = 400  # the topic is truncated to this in the prompt (and in the cache key)
    text_chars: int = 500
    cache_dir: str | None = None
    prompt_path: str | None = None  # a user's own template (must keep the fields and the version header)
    max_calls: int | None = None  # budget: no request that would pass it is sent (None: unlimited)
    max_total_tokens: int | None = None  # budget in tokens, prompt and answer (see CallLimitModel)


def validate_item(item: object) -> dict[str, str]:
    """{dimension: label} for one answered item; ValueError naming the bad field."""
    if not isinstance(item, dict):
        raise ValueError(f"item is not an object: {item!r}")
    out = {}
    for d in TEXT_DIMENSIONS:
        v = item.get(d)
        if v not in DIMENSIONS[d]:
            raise ValueError(f"field {d!r} = {v!r} not in {'|'.join(DIMENSIONS[d])}")
        out[d] = v
    conf = item.get("confidence", "high")
    out["confidence"] = conf if conf in CONFIDENCE_VALUE else "low"
    return out


def parse_answer(text: str, ids: Sequence[int]) -> tuple[dict[int, dict[str, str]], dict[int, str]]:
    """(valid labels by id, error by id) for the ids asked; unparseable output fails them all."""
    try:
        data = extract_json(text)
    except ValueError as e:
        return {}, {i: str(e) for i in ids}
    items = data.get("items") if isinstance(data, dict) else data
    if not isinstance(items, list):
        return {}, {i: "answer has no 'items' list" for i in ids}
    good: dict[int, dict[str, str]] = {}
    errors: dict[int, str] = {}
    for item in items:
        iid = item.get("id") if isinstance(item, dict) else None
        try:
            iid = int(iid)
        except (TypeError, ValueError):
            continue
        if iid not in ids or iid in good:
            continue
        try:
            good[iid] = validate_item(item)
        except ValueError as e:
            errors[iid] = str(e)
    for i in ids:
        if i not in good and i not in errors:
            errors[i] = "missing from the answer"
    return good, errors


_PROMPT_ITEM = re.compile(r"^(\d+)\. (.*)$", re.M)


def fake_annotation_responder(messages, kw) -> str:
    """A stand-in 'LLM' for the fake backend: valid labels derived from a hash of each item's text
    (deterministic, meaningless; it exercises the whole annotator path offline)."""
    prompt = messages[-1]["content"]
    items = []
    for iid, text in _PROMPT_ITEM.findall(prompt):
        h = int(hashlib.sha256(text.encode("utf-8")).hexdigest(), 16)
        item = {"id": int(iid)}
        for d in TEXT_DIMENSIONS:
            values = DIMENSIONS[d]
            item[d] = values[h % len(values)]
            h //= len(values)
        item["confidence"] = "high"
        items.append(item)
    return json.dumps({"items": items}, ensure_ascii=False)


class LLMAnnotator:
    """Implements the Annotator protocol over any ChatModel of mfmdp.llm."""

    def __init__(self, model, cache_dir: str | Path | None = None, config: LLMAnnotatorConfig | None = None,
                 prompt: PromptTemplate | None = None) -> None:
        self.model = model
        self.config = config or LLMAnnotatorConfig()
        self.prompt = prompt or load_prompt("annotate", self.config.prompt_path)
        self.name = f"llm:{model.name}"
        cache_dir = cache_dir or self.config.cache_dir
        self.cache = SqliteCache(Path(cache_dir) / "llm_annotations.sqlite", "labels") if cache_dir else None
        self.stats = {"calls": 0, "tokens": 0, "cached": 0, "annotated": 0, "retried_items": 0, "failed": 0}
        self.stopped: str | None = None  # why no more calls are made (the budget), once that happens
        self._lock = threading.Lock()

    @classmethod
    def from_config(cls, config: LLMAnnotatorConfig | dict | None = None, model=None, **backend_kw) -> "LLMAnnotator":
        if isinstance(config, dict):
            config = LLMAnnotatorConfig(**config)
        config = config or LLMAnnotatorConfig()
        if model is None:
            from mfmdp.llm.registry import get_chat_model

            if config.backend == "fake":  # schema-valid deterministic answers, for demos and tests
                backend_kw.setdefault("responder", fake_annotation_responder)
            model = get_chat_model(config.backend, max_calls=config.max_calls,
                                   max_total_tokens=config.max_total_tokens, **backend_kw)
        return cls(model, config=config)

    @classmethod
    def from_env(cls, cache_dir: str | Path | None = None, **overrides) -> "LLMAnnotator":
        """OpenAI-compatible backend from MFMDP_LLM_BASE_URL / MFMDP_LLM_MODEL / MFMDP_LLM_API_KEY."""
        cfg = LLMAnnotatorConfig(backend="openai", **overrides)
        cfg.cache_dir = str(cache_dir) if cache_dir else os.environ.get(ENV_CACHE_DIR)
        return cls.from_config(cfg)

    # --- prompt and cache keys ----------------------------------------------------------------
    def _topic(self, topic: str) -> str:
        return (topic or "").strip()[: self.config.topic_chars]

    def _key(self, topic: str, text: str) -> str:
        return cache_key(self.model.name, self.prompt.id, topic, text)

    def render(self, topic: str, texts: Sequence[str]) -> str:
        lines = [f"{i + 1}. {t[: self.config.text_chars].replace(chr(10), ' ') or '(empty)'}"
                 for i, t in enumerate(texts)]
        return self.prompt.render(topic=topic or "(unknown)", n=len(texts), items="\n".join(lines))

    # --- one call over a chunk of texts -------------------------------------------------------
    def _call(self, topic: str, chunk: list[str]) -> tuple[dict[str, dict], list[str]]:
        ids = list(range(1, len(chunk) + 1))
        try:
            answer = self._complete(user(self.render(topic, chunk)))
        except CallLimitExceeded as err:  # the budget is spent: these items fail, nothing is cached
            self.stopped = str(err)
            return {}, chunk
        good, errors = parse_answer(answer, ids)
        done = {chunk[i - 1]: v for i, v in good.items()}
        if self.cache is not None and done:
            self.cache.put_many({self._key(topic, t): v for t, v in done.items()})
        if errors:
            log.debug("LLM annotator: %d/%d items invalid (%s)", len(errors), len(chunk),
                      next(iter(errors.values())))
        return done, [chunk[i - 1] for i in errors]

    def _complete(self, messages) -> str:
        """The model's answer; counts the call and the tokens the server reports."""
        kw = {"temperature": self.config.temperature, "max_tokens": self.config.max_tokens}
        complete_full = getattr(self.model, "complete_full", None)
        out = complete_full(messages, **kw) if complete_full else Completion(self.model.complete(messages, **kw))
        with self._lock:
            self.stats["calls"] += 1
            self.stats["tokens"] += usage_tokens(out, 0)
        return out.text

    def label_texts(self, texts: Sequence[str], topic: str) -> dict[str, dict]:
        """{text: {dimension: label, 'confidence': ...}} for the unique texts it could label."""
        topic = self._topic(topic)
        unique = list(dict.fromkeys(texts))
        result: dict[str, dict] = {}
        if self.cache is not None:
            keys = {t: self._key(topic, t) for t in unique}
            hits = self.cache.get_many(list(keys.values()))
            for t, k in keys.items():
                if k in hits:
                    result[t] = hits[k]
            self.stats["cached"] += len(result)
        todo = [t for t in unique if t not in result]
        size = max(1, self.config.items_per_call)
        for round_ in range(self.config.item_retries + 1):
            if not todo or self.stopped:
                break
            if round_:
                self.stats["retried_items"] += len(todo)
                size = max(1, size // 2)  # smaller batches are easier to answer correctly
            chunks = [todo[i:i + size] for i in range(0, len(todo), size)]
            # a local model (max_concurrency 1) is never called from several threads
            workers = min(self.config.max_concurrency, getattr(self.model, "max_concurrency", 1_000))
            outcomes = bounded_map(lambda c: self._call(topic, c), chunks, workers)
            todo = []
            for done, failed in outcomes:
                result.update(done)
                self.stats["annotated"] += len(done)
                todo.extend(failed)
        if todo:
            self.stats["failed"] += len(todo)
            log.warning("LLM annotator: %d texts got no valid labels %s; left unknown (-1), not cached",
                        len(todo), f"({self.stopped})" if self.stopped else
                        f"after {self.config.item_retries + 1} rounds")
        return result

    def annotate(self, texts: Sequence[str], topic: str, behaviors: np.ndarray | None = None) -> Labels:
        texts = [t if isinstance(t, str) else "" for t in texts]
        by_text = self.label_texts(texts, topic)
        n = len(texts)
        codes = {d: np.full(n, -1, dtype=np.int8) for d in DIMENSIONS}
        conf = np.zeros(n, dtype=np.float32)
        for i, t in enumerate(texts):
            lab = by_text.get(t)
            if lab is None:
                continue
            for d in TEXT_DIMENSIONS:
                codes[d][i] = DIMENSIONS[d].index(lab[d])
            conf[i] = CONFIDENCE_VALUE.get(lab.get("confidence"), 0.5)
        if behaviors is not None:
            behaviors = np.asarray(behaviors, dtype=np.int8)
            if len(behaviors) != n:
                raise ValueError(f"behaviors has {len(behaviors)} entries for {n} texts")
            codes["behavior"] = behaviors.copy()
        return Labels(codes, conf)


__all__ = ["LLMAnnotator", "LLMAnnotatorConfig", "LLMError", "parse_answer", "validate_item"]
