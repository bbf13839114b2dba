"""Parquet cache: identical events back, lazy responses, columnar table, staleness detection."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from data_fixtures import checked_event, dump, weibo_event, write_covid
from mfmdp.data import load
from mfmdp.data.cache import CachedEvent, LazyResponses, is_cache, profile_feature_matrix, write_cache
from mfmdp.data.errors import DataFormatError
from mfmdp.data.generic import load_generic, write_events
from mfmdp.data.loading import LoadReport
from mfmdp.core.records import ResponseTable, profile_features
from test_data_generic import _event


@pytest.fixture
def source(tmp_path):
    root = tmp_path / "src"
    dump(root / "checked" / "c1.json", checked_event("c1"))
    write_covid(root / "covid")
    dump(root / "weibo" / "w.json", weibo_event())
    write_events([_event("g1")], root / "generic.jsonl")  # carries labels and signals
    return root


def _table_equal(a: ResponseTable, b: ResponseTable) -> None:
    for f in ("ids", "user_ids", "texts", "parents", "behavior", "profiles"):
        np.testing.assert_array_equal(getattr(a, f), getattr(b, f), err_msg=f)
    np.testing.assert_allclose(a.times, b.times)
    np.testing.assert_array_equal(a.likes, b.likes)


def test_cache_round_trip(source, tmp_path):
    events = load(source)
    out = write_cache(events, tmp_path / "cache", source=source)
    assert is_cache(out) and not is_cache(source)
    report = LoadReport()
    cached = load(out, report=report)
    assert report.from_cache
    assert [e.id for e in cached] == [e.id for e in events]
    for a, b in zip(events, cached):
        assert isinstance(b, CachedEvent) and isinstance(b.responses, LazyResponses)
        assert len(b) == len(a) and b.responses._items is None  # len() does not build responses
        _table_equal(a.table, b.table)
        assert b.responses._items is None  # nor does the table
        assert list(b.responses) == list(a.responses)
        assert (b.topic, b.signals, b.skipped, b.format) == (a.topic, a.signals, a.skipped, a.format)
        assert {k: v for k, v in b.metadata.items() if k != "labels"} == \
            {k: v for k, v in a.metadata.items() if k != "labels"}
        if "labels" in a.metadata:
            for d, codes in a.metadata["labels"].codes.items():
                np.testing.assert_array_equal(b.metadata["labels"].codes[d], codes)
    report = LoadReport()
    fresh = load(out, use_cache=False, report=report)  # the cache's source, parsed again
    assert not report.from_cache and not any(isinstance(e, CachedEvent) for e in fresh)
    assert [len(e) for e in fresh] == [len(e) for e in events]


def test_vectorised_profile_features_match_reference(source):
    events = [e for e in load(source) if any(r.profile for r in e.responses)]
    assert events
    for e in events:
        ref = np.stack([profile_features(r.profile) for r in e.responses])
        np.testing.assert_array_equal(e.table.profiles, ref)


def test_stale_cache_reloads_source(source, tmp_path, caplog):
    out = write_cache(load(source), tmp_path / "cache", source=source)
    f = source / "checked" / "c1.json"
    dump(f, checked_event("c1", reposts=[]))
    os.utime(f, ns=(1, 1))
    report = LoadReport()
    with caplog.at_level("WARNING"):
        events = load(out, report=report)
    assert "stale" in caplog.text and not report.from_cache
    assert not any(isinstance(e, CachedEvent) for e in events)
    assert len(next(e for e in events if e.id == "c1")) == 3


def test_cache_inside_a_folder_and_bad_index(source, tmp_path):
    root = tmp_path / "many"
    write_cache(load_generic(source / "generic.jsonl"), root / "cache_a")
    dump(root / "c2.json", checked_event("c2"))
    assert sorted(e.id for e in load(root)) == ["c2", "g1"]
    (root / "cache_a" / "index.json").write_text('{"format": "mfmdp-cache", "version": 99, "events": []}')
    with pytest.raises(DataFormatError, match="version"):
        load(root / "cache_a")


def test_profile_feature_matrix_handles_missing_profiles():
    cols = {"followers": np.array([np.nan, 100.0]), "friends": np.array([1.0, np.nan]),
            "statuses": np.array([np.nan, np.nan]), "verified": np.array([None, True], dtype=object),
            "verified_type": np.array([np.nan, 3.0]), "gender": np.array([None, "f"], dtype=object),
            "description": np.array([None, "x"], dtype=object)}
    m = profile_feature_matrix(cols, np.array([False, True]))
    assert (m[0] == 0).all()
    assert m[1].tolist() == pytest.approx([1, np.log1p(100) / 10, 0, 0, 1, 0, 1, 0, 1, 1])


def test_a_cache_that_names_itself_fails_cleanly(source, tmp_path):
    out = write_cache(load(source), tmp_path / "cache", source=source)
    index = json.loads((out / "index.json").read_text(encoding="utf-8"))
    index["source"] = str(out.resolve())  # what older versions wrote for `data convert X X`
    (out / "index.json").write_text(json.dumps(index), encoding="utf-8")
    assert len(load(out)) == len(load(source))  # the cached rows are still readable
    with pytest.raises(DataFormatError, match="names itself as its source"):
        load(out, use_cache=False)  # used to recurse until RecursionError


def test_index_and_rows_that_disagree_are_reported(source, tmp_path):
    out = write_cache(load(source), tmp_path / "cache", source=source)
    index = json.loads((out / "index.json").read_text(encoding="utf-8"))
    index["rows"] += 1  # as if the conversion was killed between replacing the two files
    (out / "index.json").write_text(json.dumps(index), encoding="utf-8")
    with pytest.raises(DataFormatError, match="convert` again"):
        load(out)


def test_write_cache_never_replaces_foreign_files(source, tmp_path):
    foreign = tmp_path / "results"
    foreign.mkdir()
    (foreign / "keep.txt").write_text("x", encoding="utf-8")
    with pytest.raises(ValueError, match="neither empty nor an mfmdp cache"):
        write_cache(load(source), foreign, source=source)
    assert (foreign / "keep.txt").read_text(encoding="utf-8") == "x"
    (tmp_path / "cache.tmp").mkdir()  # a user's folder that happens to share the old temporary name
    (tmp_path / "cache.tmp" / "keep.txt").write_text("y", encoding="utf-8")
    write_cache(load(source), tmp_path / "cache", source=source)
    assert (tmp_path / "cache.tmp" / "keep.txt").is_file()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".cache.")]  # no temporary left behind
