"""Every timestamp form found in the sources parses to aware UTC; junk raises ValueError."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from mfmdp.data.dates import CHINA_TZ, parse_time

UTC_0325 = datetime(2020, 3, 9, 3, 25, tzinfo=timezone.utc)


@pytest.mark.parametrize("value", [
    "2020-03-09 11:25",  # CHECKED (China time)
    "2020-03-09 11:25:00",  # CED
    "2020/03/09 11:25",
    "2020年03月09日 11:25",
    "Mon Mar 09 11:25:00 +0800 2020",  # Weibo API (COVID-19)
    "2020-03-09T11:25:00+08:00",
    "2020-03-09T03:25:00Z",
    1583724300,  # unix seconds
    1583724300000,  # unix milliseconds
    "1583724300",
    1583724300.0,
    datetime(2020, 3, 9, 11, 25),  # naive datetime: China time
])
def test_forms(value):
    dt = parse_time(value)
    assert dt == UTC_0325 and dt.utcoffset() == timedelta(0)


def test_default_timezone_is_overridable():
    assert parse_time("2020-03-09 03:25", default_tz=timezone.utc) == UTC_0325
    assert CHINA_TZ.utcoffset(None) == timedelta(hours=8)


@pytest.mark.parametrize("value", ["", "昨天 12:00", "3分钟前", "2020-13-01 00:00", None, True, float("nan"), [1]])
def test_unparseable(value):
    with pytest.raises(ValueError):
        parse_time(value)
