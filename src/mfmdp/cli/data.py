"""`mfmdp data ...` commands: stats, convert (Parquet cache), split."""

from __future__ import annotations

import json
import math
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(no_args_is_help=True)
_console = Console()


def _fail(err: Exception | str) -> None:
    from rich.markup import escape

    Console(stderr=True).print(f"[red]error:[/red] {escape(str(err))}", soft_wrap=True, highlight=False)  # "[3]" is not markup
    raise typer.Exit(2)


SKIP_BAD_HELP = "Skip broken files of a folder (counted and named) instead of stopping at the first."
SKIP_BAD_HINT = " (pass --skip-bad to skip broken files of a folder, each named, and go on)"


def _load(path: Path, use_cache: bool = True, skip_bad: bool = False):
    from mfmdp.data.errors import DataFormatError
    from mfmdp.data.loading import LoadReport, load

    report = LoadReport()
    try:
        events = load(path, report=report, use_cache=use_cache, progress=True, skip_bad=skip_bad)
    except DataFormatError as e:
        _fail(f"{e}{SKIP_BAD_HINT if path.is_dir() and not skip_bad else ''}")
    return events, report


def print_skipped_sources(report, console: Console) -> None:
    """One line per file or folder a load skipped, naming it and why."""
    for p, reason in report.skipped_sources:
        console.print(f"  skipped {p}: {reason}", markup=False, soft_wrap=True)  # paths stay whole


def event_stats(event, step_size: int) -> dict:
    """The per-event row of `data stats` (the JSON keys are a stable interface)."""
    import numpy as np

    from mfmdp.core.records import BARE_REPOST_TEXT

    tab = event.table
    shares = int(np.count_nonzero(tab.behavior == 0))
    texts = tab.texts
    return {
        "id": event.id,
        "format": event.format,
        "responses": len(tab),
        "steps": math.ceil(len(tab) / step_size),
        "shares": shares,
        "comments": len(tab) - shares,
        "skipped": int(sum(event.skipped.values())),
        "first_time": _iso(tab.times[0]),
        "last_time": _iso(tab.times[-1]),
        # table-only extras (not in --json):
        "_span_hours": (tab.times[-1] - tab.times[0]) / 3600.0,
        "_empty_texts": int(sum(1 for t in texts if not t or t == BARE_REPOST_TEXT)),
        "_skipped_by_reason": dict(event.skipped),
    }


def _iso(ts: float) -> str:
    from mfmdp.data.stepping import utc_from_unix

    return utc_from_unix(float(ts)).isoformat()


@app.command()
def stats(
    path: Path = typer.Argument(..., help="An event file, a folder of them, or a cache made by `data convert`."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON document instead of a table."),
    step_size: int = typer.Option(16, "--step-size", min=1, help="Responses per step."),
    skip_bad: bool = typer.Option(False, "--skip-bad", help=SKIP_BAD_HELP),
) -> None:
    """Per event: responses, time span, steps, behavior mix, empty texts, skipped records."""
    events, report = _load(path, skip_bad=skip_bad)
    rows = [event_stats(e, step_size) for e in events]
    total = sum(r["responses"] for r in rows)
    if json_out:
        doc = {"events": [{k: v for k, v in r.items() if not k.startswith("_")} for r in rows],
               "total_responses": total}
        typer.echo(json.dumps(doc, ensure_ascii=False))
        return
    table = Table(title=f"{path}: {len(rows)} event(s)")
    for col in ("id", "format", "responses", "steps", "span h", "share %", "empty/bare", "skipped", "first (UTC)"):
        table.add_column(col, justify="left" if col in ("id", "format", "skipped", "first (UTC)") else "right")
    for r in rows:
        skipped = ", ".join(f"{k}={v}" for k, v in r["_skipped_by_reason"].items()) or "-"
        table.add_row(r["id"], r["format"], str(r["responses"]), str(r["steps"]), f"{r['_span_hours']:.1f}",
                      f"{100 * r['shares'] / max(r['responses'], 1):.0f}", str(r["_empty_texts"]), skipped,
                      r["first_time"][:16])
    _console.print(table)
    shares = sum(r["shares"] for r in rows)
    skipped = sum(r["skipped"] for r in rows)
    _console.print(f"{len(rows)} events, {total} responses ({shares} shares, {total - shares} comments), "
                   f"{sum(r['steps'] for r in rows)} steps of {step_size}, {skipped} skipped records"
                   + (f", {len(report.skipped_sources)} skipped files/folders" if report.skipped_sources else ""))
    print_skipped_sources(report, _console)


@app.command()
def convert(
    path: Path = typer.Argument(..., help="Events to convert (file or folder, any supported format)."),
    out: Path = typer.Argument(..., help="Cache folder to write: new, empty, or a cache to refresh (other files "
                                         "in it, such as labels, are kept)."),
    skip_bad: bool = typer.Option(False, "--skip-bad", help=SKIP_BAD_HELP),
) -> None:
    """Write a Parquet cache that `load(OUT)` (and every command taking a data path) reuses."""
    import time

    from mfmdp.data.cache import check_cache_target, original_source, write_cache

    source = original_source(path)
    try:  # before loading: a refusal should cost nothing
        check_cache_target(out, source)
    except ValueError as e:
        _fail(e)
    t0 = time.perf_counter()
    events, report = _load(path, use_cache=False, skip_bad=skip_bad)
    write_cache(events, out, source=source)
    n = sum(len(e) for e in events)
    _console.print(f"wrote {out}: {len(events)} events, {n} responses in {time.perf_counter() - t0:.1f} s"
                   + (f" ({len(report.skipped_sources)} files/folders skipped)" if report.skipped_sources else ""))
    print_skipped_sources(report, _console)


@app.command()
def split(
    path: Path = typer.Argument(..., help="Events to split (file, folder or cache)."),
    out: Path = typer.Option(Path("split.json"), "--out", "-o", help="Split file to write."),
    seed: int = typer.Option(0, "--seed", help="Seed for ordering events with equal dates."),
    fractions: tuple[float, float, float] = typer.Option((0.7, 0.15, 0.15), "--fractions",
                                                         help="Train, validation, test fractions."),
    threshold: float = typer.Option(0.5, "--threshold", help="4-gram Jaccard above which topics are grouped."),
    per_format: bool = typer.Option(False, "--per-format", help="Split each source format on its own dates."),
    skip_bad: bool = typer.Option(False, "--skip-bad", help=SKIP_BAD_HELP),
) -> None:
    """Assign events to train < validation < test by date, near-duplicate topics on one side."""
    from mfmdp.data.split import make_split, save_split

    events, report = _load(path, skip_bad=skip_bad)
    if report.skipped_sources:
        _console.print(f"{len(report.skipped_sources)} file(s)/folder(s) skipped:")
        print_skipped_sources(report, _console)
    try:
        s = make_split(events, seed=seed, fractions=fractions, threshold=threshold, per_format=per_format,
                       source=str(path))
    except ValueError as e:
        _fail(e)
    save_split(s, out)
    c = s.counts()
    _console.print(f"wrote {out}: train {c['train']}, validation {c['validation']}, test {c['test']} events; "
                   f"{len(s.groups)} near-duplicate group(s) kept together")
