"""Parse every timestamp format found in the supported sources into timezone-aware UTC.

Weibo exports without an offset are China time (UTC+8). Parsing is memoised because real sets repeat
the same minute-resolution strings thousands of times (CHECKED: 'YYYY-MM-DD HH:MM').

Only times in PLAUSIBLE_RANGE (1990-01-01 to 2100-01-01 UTC) are accepted: anything else is a broken
value (unix 0 placeholders, seconds read as milliseconds, year 5138) and raises `ImplausibleTime`.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

CHINA_TZ = timezone(timedelta(hours=8), "Asia/Shanghai")
# social-media data: before the web there were no posts; after 2100 is a broken value
PLAUSIBLE_RANGE = (datetime(1990, 1, 1, tzinfo=timezone.utc), datetime(2100, 1, 1, tzinfo=timezone.utc))


class ImplausibleTime(ValueError):
    """A time that parses but lies outside PLAUSIBLE_RANGE."""


def check_plausible(dt: datetime, raw: object) -> datetime:
    lo, hi = PLAUSIBLE_RANGE
    if not lo <= dt < hi:
        raise ImplausibleTime(f"timestamp {raw!r} is {dt.isoformat()}, outside the plausible range "
                              f"{lo.date()}..{hi.date()} (UTC)")
    return dt

_NAIVE_FORMATS = (
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%d %H:%M",
    "%Y/%m/%d %H:%M:%S",
    "%Y/%m/%d %H:%M",
    "%Y-%m-%dT%H:%M:%S",
    "%Y-%m-%d",
    "%Y/%m/%d",
    "%Y年%m月%d日 %H:%M",
    "%Y年%m月%d日 %H:%M:%S",
)
_AWARE_FORMATS = (
    "%a %b %d %H:%M:%S %z %Y",  # Weibo API: 'Thu Jan 23 18:31:15 +0800 2020'
)
_NUMERIC = re.compile(r"^\s*-?\d+(\.\d+)?\s*$")
_MAX_CACHE = 1 << 18
_cache: dict[tuple[str, object], datetime] = {}


def from_unix(seconds: float) -> datetime:
    """Unix seconds (milliseconds if the value is too large to be seconds) -> aware UTC."""
    s = float(seconds)
    if s != s or s in (float("inf"), float("-inf")):
        raise ValueError(f"not a finite timestamp: {seconds!r}")
    if abs(s) > 1e11:  # milliseconds since the epoch (seconds would be past year 5000)
        s /= 1000.0
    try:
        return datetime.fromtimestamp(s, tz=timezone.utc)
    except (OverflowError, OSError):
        raise ValueError(f"timestamp {seconds!r} out of range") from None


def _parse_string(text: str, default_tz: timezone) -> datetime:
    t = text.strip()
    if not t:
        raise ValueError("empty timestamp")
    if _NUMERIC.match(t):
        return from_unix(float(t))
    try:  # ISO-8601, with or without an offset ('Z' accepted by Python >= 3.11)
        dt = datetime.fromisoformat(t.replace("Z", "+00:00") if t.endswith("Z") else t)
    except ValueError:
        dt = None
    if dt is None:
        for fmt in (*_AWARE_FORMATS, *_NAIVE_FORMATS):
            try:
                dt = datetime.strptime(t, fmt)
                break
            except ValueError:
                pass
    if dt is None:
        raise ValueError(f"unrecognised timestamp {text!r}")
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=default_tz)
    try:
        return dt.astimezone(timezone.utc)
    except OverflowError:  # year 1 or 9999 shifted past the calendar's ends
        raise ValueError(f"timestamp {text!r} out of range") from None


def parse_time(value: object, default_tz: timezone = CHINA_TZ) -> datetime:
    """A string, unix seconds/milliseconds or datetime -> aware UTC datetime.

    Strings without an offset are taken in `default_tz` (China time for Weibo sources).
    Raises ValueError for anything unparseable (ImplausibleTime outside PLAUSIBLE_RANGE); loaders
    count and skip those records.
    """
    if isinstance(value, bool) or value is None:
        raise ValueError(f"not a timestamp: {value!r}")
    if isinstance(value, datetime):
        dt = (value if value.tzinfo else value.replace(tzinfo=default_tz)).astimezone(timezone.utc)
        return check_plausible(dt, value)
    if isinstance(value, (int, float)):
        return check_plausible(from_unix(value), value)
    if not isinstance(value, str):
        raise ValueError(f"not a timestamp: {value!r} ({type(value).__name__})")
    key = (value, default_tz)
    dt = _cache.get(key)
    if dt is None:
        dt = check_plausible(_parse_string(value, default_tz), value)
        if len(_cache) >= _MAX_CACHE:
            _cache.clear()
        _cache[key] = dt
    return dt


def iso(dt: datetime) -> str:
    """ISO-8601 with offset, the form the generic format writes."""
    return dt.isoformat()
