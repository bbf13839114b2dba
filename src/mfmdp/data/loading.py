"""`load(path)`: every event under a file or folder, whatever its supported format.

Detection: a Parquet cache directory (index.json written by `mfmdp data convert`); a COVID-19 rumor
folder (detail/comments/reposts + edges); .jsonl/.ndjson/.csv generic files; .json files by content:
CHECKED object, CED response list (paired with ../original-microblog/<same name>), WEIBO list.
Folders are walked recursively in sorted order. Files a folder walk does not recognise, and COVID-19
folders whose source post is unknown, are skipped, counted in `LoadReport` and logged. A recognised
file that is broken stops the load with a DataFormatError naming it, unless `skip_bad=True` (the
CLI's --skip-bad): then it is skipped, named and counted in `LoadReport` like the others.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from mfmdp.data import cache as cache_mod
from mfmdp.data import generic
from mfmdp.data.errors import DataFormatError
from mfmdp.data.loaders import ced, checked, covid19, weibo
from mfmdp.data.loaders.common import read_json
from mfmdp.core.records import Event

log = logging.getLogger(__name__)

FORMATS = ("checked", "ced", "covid19", "weibo", "generic")


@dataclass
class LoadReport:
    """What a load skipped at the file/folder level (record-level skips live in `event.skipped`)."""

    skipped_sources: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)
    from_cache: bool = False

    def skip(self, path: Path, reason: str) -> None:
        log.warning("skipped %s: %s", path, reason)
        self.skipped_sources.append((str(path), reason))


def load_json_file(path: Path) -> Event:
    """One .json event file of any JSON-based format (CHECKED, CED, WEIBO)."""
    if path.parent.name == ced.SOURCE_DIR:
        raise DataFormatError(path, "this is a CED source post; load its response file "
                                    "(../rumor-repost or ../non-rumor-repost/<same name>) or the CED folder")
    obj = read_json(path)
    if checked.looks_like(obj):
        return checked.load(path, obj)
    if ced.looks_like(path, obj):
        return ced.load(path, obj)
    if weibo.looks_like(obj):
        return weibo.load(path, obj)
    raise DataFormatError(path, "unknown format: not a CHECKED object (id, date, comments, reposts), a CED "
                                "response list with ../original-microblog/<same name>, or a WEIBO list whose "
                                "element 0 has mid and t (or original_text/reposts_count)")


def load_file(path: Path) -> list[Event]:
    suffix = path.suffix.lower()
    if suffix in generic.SUFFIXES:
        return generic.load_generic(path)
    if suffix == ".json":
        return [load_json_file(path)]
    raise DataFormatError(path, f"unknown format: unsupported file type {suffix or '(none)'!r}; expected .json, "
                                ".jsonl, .ndjson, .csv, or a folder")


def _walk(folder: Path, report: LoadReport) -> Iterator[Path]:
    """Candidate event sources under `folder`: COVID-19 folders, cache folders and data files."""
    for entry in sorted(os.scandir(folder), key=lambda e: e.name):
        p = Path(entry.path)
        if entry.is_dir():
            if p.name == ced.SOURCE_DIR or p.name.startswith("."):
                continue  # CED source posts are read with their response files
            if cache_mod.is_cache(p) or covid19.looks_like(p):
                yield p
            else:
                yield from _walk(p, report)
        elif p.suffix.lower() in (".json", *generic.SUFFIXES):
            yield p


def _load_from_folder_entry(p: Path, report: LoadReport) -> list[Event]:
    if p.is_dir():
        if cache_mod.is_cache(p):
            return cache_mod.load_cache(p)
        try:
            return [covid19.load(p)]
        except covid19.SourceUnknown as e:
            report.skip(p, e.reason)
            return []
    if p.suffix.lower() in generic.SUFFIXES and not generic.looks_generic(p):
        report.skip(p, "not a generic event file (no event_id in its first record)")
        return []
    if p.suffix.lower() == ".json":
        try:
            return [load_json_file(p)]
        except DataFormatError as e:
            if e.reason.startswith("unknown format"):
                report.skip(p, "unrecognised JSON file")
                return []
            raise
    return load_file(p)


def _load_entry(p: Path, report: LoadReport, skip_bad: bool) -> list[Event]:
    """One folder entry's events; a broken one raises naming the file, or (skip_bad) is skipped and named."""
    try:
        return _load_from_folder_entry(p, report)
    except DataFormatError as e:
        err = e
    except (OSError, UnicodeDecodeError) as e:  # unreadable: name the file like any bad data
        err = DataFormatError(p, f"cannot read: {e}")
    if not skip_bad:
        raise err
    report.skip(p, err.without_path() if err.path == str(p) else str(err))
    return []


def _log_skips(path: Path, events: list[Event]) -> None:
    """One summary line per load: record-level skips by reason (each event keeps its own counts)."""
    total: dict[str, int] = {}
    for e in events:
        for k, v in e.skipped.items():
            total[k] = total.get(k, 0) + v
    if total:
        log.info("%s: skipped records over %d events: %s", path, len(events),
                 ", ".join(f"{k}={v}" for k, v in sorted(total.items())))


def load(path: str | os.PathLike, *, report: LoadReport | None = None, use_cache: bool = True,
         progress: bool = False, skip_bad: bool = False) -> list[Event]:
    """All events under `path` (a file or folder). Raises DataFormatError naming file, record and field;
    with `skip_bad`, broken files of a folder are skipped and listed in `report.skipped_sources` instead."""
    path = Path(path)
    report = report if report is not None else LoadReport()
    if not path.exists():
        raise DataFormatError(path, "no such file or folder")
    if path.is_file():
        return load_file(path)
    if cache_mod.is_cache(path):
        if use_cache:
            events = cache_mod.load_cache(path)
            report.from_cache = all(isinstance(e, cache_mod.CachedEvent) for e in events)  # False when stale
            return events
        source = cache_mod.source_of(path)
        if cache_mod.names_itself(path, source):
            raise DataFormatError(path, "this cache names itself as its source (written by an older mfmdp); "
                                        "convert the original data again into a new folder")
        if source is None or not Path(source).exists():
            raise DataFormatError(path, f"a cache was given with use_cache=False and its source {source} is gone")
        return load(source, report=report, use_cache=False, progress=progress, skip_bad=skip_bad)
    if covid19.looks_like(path):
        return [covid19.load(path)]
    entries = list(_walk(path, report))
    events: list[Event] = []
    if progress and len(entries) > 20:
        from rich.progress import Progress

        with Progress(transient=True) as bar:
            task = bar.add_task(f"loading {path}", total=len(entries))
            for p in entries:
                events.extend(_load_entry(p, report, skip_bad))
                bar.advance(task)
    else:
        for p in entries:
            events.extend(_load_entry(p, report, skip_bad))
    _log_skips(path, events)
    if not events:
        raise DataFormatError(path, "no events found (supported: CHECKED, CED, COVID-19 rumor folders, WEIBO "
                                    "JSON, generic JSONL/CSV, mfmdp Parquet caches)")
    return events
