"""`mfmdp run experiment.yaml`: the whole protocol, resumable, with a report at the end."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console


def run(
    config: Path = typer.Argument(..., exists=True, dir_okay=False, help="experiment YAML"),
    out: Path = typer.Option(Path("runs/experiment"), "--out", help="results directory (resumed if it exists)"),
    test_data: Optional[str] = typer.Option(None, "--test-data", help="evaluate the trained models on these events instead of the split's test side"),
    models_from: Optional[Path] = typer.Option(None, "--models-from", help="reuse the trained models and caches of this earlier run (e.g. the validation run)"),
    set_: list[str] = typer.Option([], "--set", help="override a config value, e.g. --set simulation.seeds=[0]"),
) -> None:
    """Train, simulate every configured method, evaluate and report (resumes finished work)."""
    from mfmdp.experiment import run_experiment
    from mfmdp.simulate.config import load_config

    try:
        cfg = load_config(config, set_)
    except ValueError as err:
        raise typer.BadParameter(str(err)) from None
    report = run_experiment(cfg, out, test_data=test_data, models_from=models_from)
    Console().print(f"[bold green]report:[/] {report}")
