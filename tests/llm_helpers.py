"""Helpers shared by the LLM tests: a rule-based 'model' answering the annotation prompt."""

from __future__ import annotations

import json
import re

ITEM = re.compile(r"^(\d+)\. (.*)$", re.M)


def prompt_items(prompt: str) -> list[tuple[int, str]]:
    section = prompt.split("Responses (", 1)[1].split("Answer with ONE JSON", 1)[0]
    return [(int(i), t) for i, t in ITEM.findall(section)]


def rule_labels(text: str) -> dict:
    debunk = "假" in text or "谣" in text
    return {
        "state": "negative" if debunk else ("positive" if "好" in text else "neutral"),
        "sentiment": "angry" if debunk else "calm",
        "stance": "oppose" if debunk else "neutral",
        "belief": "doubt" if debunk else "believe",
        "rumor": "counter" if debunk else "spread",
        "subjectivity": "subjective",
        "intent": "opinion",
        "confidence": "high",
    }


def good_answer(prompt: str) -> str:
    return json.dumps({"items": [{"id": i, **rule_labels(t)} for i, t in prompt_items(prompt)]},
                      ensure_ascii=False)


def good_answer_from_request(body: dict) -> str:
    return good_answer(body["messages"][-1]["content"])
