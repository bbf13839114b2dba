"""`mfmdp evaluate RUN_DIR`: score a run directory, print Table 1, write CSV/JSON, plots and the report."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import typer
from rich.console import Console
from rich.table import Table


def _print_table(console: Console, title: str, path: Path, horizons: dict) -> None:
    """One console table per setting (the CSV's columns are "setting / metric"), titled with the
    horizon in responses and in steps."""
    if not path.exists():
        return
    df = pd.read_csv(path, index_col=0)
    settings = list(dict.fromkeys(c.split(" / ")[0] for c in df.columns))
    for setting in settings:
        cols = [c for c in df.columns if c.startswith(setting + " / ")]
        size = horizons.get(setting)
        where = f" ({size[0]:.0f} responses ≈ {size[1]:.1f} steps, {size[2]} event(s))" if size else ""
        table = Table(title=f"{title} — {setting}{where}")
        table.add_column("method")
        for col in cols:
            table.add_column(col.split(" / ", 1)[1], justify="right")
        for idx, row in df[cols].iterrows():
            table.add_row(str(idx), *(str(v) for v in row.to_list()))
        console.print(table)


def evaluate(
    run_dir: Path = typer.Argument(..., help="Run directory of `mfmdp run`, or OUT/baseline or OUT/scenario "
                                             "of `mfmdp simulate` (events/<slug>/*.parquet)."),
    reversal_thresholds: Path = typer.Option(None, "--reversal-thresholds",
                                             help="JSON of fitted reversal thresholds (magnitude, duration)."),
    fit_thresholds_on: Path = typer.Option(None, "--fit-thresholds-on",
                                           help="Fit reversal thresholds on the real events of this (training) "
                                                "run directory; saved to RUN_DIR/reversal_thresholds.json."),
    window: int = typer.Option(128, help="Responses per window for the primary metrics."),
    max_event_plots: int = typer.Option(12, help="Plot trajectories for at most this many events."),
    n_boot: int = typer.Option(10_000, help="Bootstrap resamples for the paired CIs."),
    json_out: Path = typer.Option(None, "--json", help="Also copy summary.json (tables, CIs, thresholds) here."),
) -> None:
    """Score every simulated run in RUN_DIR against the real labels and write metrics.csv, tables/*.csv,
    summary.json, plots/*.png, report.md and report.html (Table 1 is printed)."""
    from mfmdp.evaluate.report import write_report
    from mfmdp.evaluate.reversal import REVERSAL_TOLERANCE, ReversalThresholds
    from mfmdp.evaluate.runs import THRESHOLDS_FILE, fit_thresholds_from_run

    console = Console()
    err = Console(stderr=True, soft_wrap=True)
    if not run_dir.is_dir():
        err.print(f"[red]error:[/red] {run_dir}: not a directory")
        raise typer.Exit(code=2)
    if reversal_thresholds is not None and fit_thresholds_on is not None:
        err.print("[red]error:[/red] give --reversal-thresholds or --fit-thresholds-on, not both")
        raise typer.Exit(code=2)
    try:
        thresholds = None
        if reversal_thresholds is not None:
            thresholds = ReversalThresholds.load(reversal_thresholds)
        elif fit_thresholds_on is not None:
            thresholds = fit_thresholds_from_run(fit_thresholds_on, window=window)
            thresholds.save(run_dir / THRESHOLDS_FILE)
            console.print(f"reversal thresholds fitted on {fit_thresholds_on}: magnitude {thresholds.magnitude:.2f}, "
                          f"duration {thresholds.duration} window(s), null FP rate {thresholds.fp_rate:.3f}")
        report = write_report(run_dir, thresholds=thresholds, window=window, max_event_plots=max_event_plots,
                              n_boot=n_boot, show_progress=True)
    except ValueError as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(code=1) from None
    summary = json.loads((run_dir / "summary.json").read_text())
    _print_table(console, "Table 1 — state", run_dir / "tables" / "table1_state.csv", summary["horizons"])
    _print_table(console, "Table 2 — ablations (state)", run_dir / "tables" / "table2_state.csv", summary["horizons"])
    if json_out is not None:
        shutil.copyfile(run_dir / "summary.json", json_out)
    th = summary["thresholds"]
    console.print(f"reversal thresholds: magnitude {th['magnitude']}, duration {th['duration']} ({th['source']})")
    if (run_dir / "tables" / "reversal_skill.csv").is_file():
        skill = pd.read_csv(run_dir / "tables" / "reversal_skill.csv")
        table = Table(title=f"Reversals: hits (same direction, within {REVERSAL_TOLERANCE} windows) − false alarms")
        for col in ("method", "reversing events", "hit rate", "quiet events", "false-alarm rate", "hits − FA"):
            table.add_column(col, justify="left" if col == "method" else "right")
        for row in skill.itertuples(index=False):
            table.add_row(*(f"{v:.3f}" if isinstance(v, float) else str(v) for v in row))
        console.print(table)
    console.print(f"wrote {run_dir / 'metrics.csv'}, {run_dir / 'tables'}/, {run_dir / 'plots'}/, {report} "
                  f"and {run_dir / 'report.md'}")
