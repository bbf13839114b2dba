"""Reading JSON Lines: one object per line, blank lines skipped, bad lines named by file and line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator

from mfmdp.data.errors import DataFormatError


def iter_jsonl(path: str | Path) -> Iterator[tuple[int, dict]]:
    """Yield (line number, object) for every non-blank line of `path`."""
    path = Path(path)
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as e:
                raise DataFormatError(path, f"malformed JSON: {e.msg} (column {e.colno})", f"line {lineno}") from None
            if not isinstance(rec, dict):
                raise DataFormatError(path, f"expected a JSON object, got {type(rec).__name__}", f"line {lineno}")
            yield lineno, rec
