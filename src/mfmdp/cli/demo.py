"""`mfmdp demo`: the whole pipeline on built-in synthetic events, in a few minutes on a laptop CPU."""

from __future__ import annotations

import time
from importlib.resources import files
from pathlib import Path

import typer
from rich.console import Console


def demo_config_path() -> Path:
    return Path(str(files("mfmdp") / "configs" / "demo.yaml"))


def demo(
    out: Path = typer.Option(Path("demo-out"), "--out", help="results directory (resumed if it exists)"),
    set_: list[str] = typer.Option([], "--set", help="override a config value, e.g. --set simulation.seeds=[0]"),
) -> None:
    """Generate synthetic events, annotate, train f_psi and the policies, simulate every method and
    floor, evaluate and write a report."""
    from mfmdp.cli.run import or_exit
    from mfmdp.experiment import run_experiment
    from mfmdp.simulate.config import load_config

    console = Console()
    cfg = or_exit(lambda: load_config(demo_config_path(), set_))
    console.print(f"[bold]mfmdp demo[/]: {cfg.data.synthetic.n_events} synthetic events, methods: {', '.join(cfg.methods)}")
    t0 = time.perf_counter()
    report = or_exit(lambda: run_experiment(cfg, out))
    console.print(f"done in {time.perf_counter() - t0:.0f} s")
    console.print(f"[bold green]report:[/] {report}  (also {report.with_suffix('.md')})")
