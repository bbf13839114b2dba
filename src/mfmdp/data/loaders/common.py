"""Helpers shared by the source loaders: JSON reading with located errors, field access, HTML text."""

from __future__ import annotations

import html
import json
import re
from pathlib import Path

from mfmdp.data.errors import DataFormatError


def read_json(path: Path) -> object:
    try:
        with open(path, "rb") as f:
            return json.loads(f.read())
    except json.JSONDecodeError as e:
        raise DataFormatError(path, f"malformed JSON: {e.msg} at line {e.lineno} column {e.colno}") from None
    except UnicodeDecodeError as e:
        raise DataFormatError(path, f"not UTF-8 text: {e}") from None


def require(rec: dict, key: str, path: object, record: object, types: type | tuple = (str,)) -> object:
    """rec[key], or a DataFormatError naming the file, record and field when missing or mistyped."""
    if not isinstance(rec, dict):
        raise DataFormatError(path, f"expected a JSON object, got {type(rec).__name__}", record)
    if key not in rec or rec[key] is None:
        raise DataFormatError(path, "required field is missing", record, key)
    v = rec[key]
    allowed = types if isinstance(types, tuple) else (types,)
    if not isinstance(v, allowed) or (isinstance(v, bool) and bool not in allowed):
        names = "|".join(t.__name__ for t in allowed)
        raise DataFormatError(path, f"expected {names}, got {type(v).__name__} {v!r:.60}", record, key)
    return v


_IMG_ALT = re.compile(r"<img[^>]*?\balt=[\"']?([^\"'\s>]+)[^>]*>", re.IGNORECASE)
_TAG = re.compile(r"<[^>]+>")


def strip_html(text: str) -> str:
    """Weibo API text -> plain text: emoticon images become their alt text ('[允悲]'), tags go."""
    if "<" not in text and "&" not in text:
        return text
    text = _IMG_ALT.sub(r"\1", text)
    text = _TAG.sub("", text)
    return html.unescape(text).strip()
