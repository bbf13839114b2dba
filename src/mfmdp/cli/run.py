"""`mfmdp run experiment.yaml`: the whole protocol, resumable, with a report at the end."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Optional, TypeVar

import typer
from rich.console import Console

T = TypeVar("T")


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

    cfg = or_exit(lambda: load_config(config, set_))
    report = or_exit(lambda: run_experiment(cfg, out, test_data=test_data, models_from=models_from))
    Console().print(f"[bold green]report:[/] {report}")


def or_exit(step: Callable[[], T]) -> T:
    """Run `step`; a config mistake (or a resume that would mix configs) is one line and exit code 2."""
    from mfmdp.simulate.config import ConfigError

    try:
        return step()
    except ConfigError as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(2) from None
