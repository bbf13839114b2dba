"""Strict JSON out of a model's answer: code fences and surrounding chatter are tolerated, nothing else."""

from __future__ import annotations

import json
import re

_FENCE = re.compile(r"```(?:json)?\s*(.*?)```", re.S)


def extract_json(text: str):
    """The JSON value in `text` (bare, fenced, or the outermost {...}/[...] span); ValueError if none."""
    candidates = [text.strip()]
    candidates += [m.group(1).strip() for m in _FENCE.finditer(text)]
    for open_, close in (("{", "}"), ("[", "]")):
        a, b = text.find(open_), text.rfind(close)
        if 0 <= a < b:
            candidates.append(text[a:b + 1])
    for c in candidates:
        try:
            return json.loads(c)
        except json.JSONDecodeError:
            continue
    raise ValueError(f"no valid JSON in model output: {text[:200]!r}")
