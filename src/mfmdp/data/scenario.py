"""Scenario files: exogenous signals to inject, one JSON object per line: {"time", "source", "text"}.

`time` is ISO-8601 (China time when no offset is given, as for Weibo) or unix seconds.
Blank lines are ignored. Every problem is a DataFormatError naming the file, line and field.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from mfmdp.data.dates import parse_time
from mfmdp.data.errors import DataFormatError
from mfmdp.data.jsonl import iter_jsonl
from mfmdp.core.records import Signal

FIELDS = ("time", "source", "text")


def parse_signal(rec: object, path: object, where: str) -> Signal:
    if not isinstance(rec, dict):
        raise DataFormatError(path, f"expected a JSON object, got {type(rec).__name__}", where)
    for key in FIELDS:
        if key not in rec or rec[key] is None:
            raise DataFormatError(path, "required field is missing", where, key)
    for key in ("source", "text"):
        if not isinstance(rec[key], str):
            raise DataFormatError(path, f"expected a string, got {type(rec[key]).__name__}", where, key)
    if not rec["text"].strip():
        raise DataFormatError(path, "a signal needs a non-empty text", where, "text")
    try:
        t = parse_time(rec["time"])
    except ValueError as e:
        raise DataFormatError(path, str(e), where, "time") from None
    unknown = set(rec) - set(FIELDS)
    if unknown:
        raise DataFormatError(path, f"unknown field(s) {sorted(unknown)}; expected {', '.join(FIELDS)}", where,
                              sorted(unknown)[0])
    return Signal(t, rec["source"], rec["text"])


def load_scenario(path: str | os.PathLike) -> list[Signal]:
    """Signals of a scenario JSONL file, sorted by time."""
    path = Path(path)
    if not path.is_file():
        raise DataFormatError(path, "scenario file not found")
    signals = []
    for lineno, rec in iter_jsonl(path):
        signals.append(parse_signal(rec, path, f"line {lineno}"))
    if not signals:
        raise DataFormatError(path, "the scenario has no signals")
    return sorted(signals, key=lambda s: s.time)


def write_scenario(signals: list[Signal], path: str | os.PathLike) -> Path:
    path = Path(path)
    with open(path, "w", encoding="utf-8") as f:
        for s in signals:
            f.write(json.dumps({"time": s.time.isoformat(), "source": s.source, "text": s.text}, ensure_ascii=False))
            f.write("\n")
    return path
