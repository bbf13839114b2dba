"""`mfmdp simulate RUN_DIR EVENTS_PATH`: simulate events with the models of a finished run, with and
without a what-if scenario (injected exogenous signals), and plot the counterfactual against the
baseline with bands over seeds."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console


def parse_seeds(text: str) -> list[int]:
    """'0,1,2', '0 1 2' or '0-4' (inclusive range) -> seeds."""
    text = text.strip()
    try:
        if "-" in text and "," not in text and " " not in text:
            lo, hi = (int(x) for x in text.split("-", 1))
            if hi < lo:
                raise ValueError
            return list(range(lo, hi + 1))
        seeds = [int(x) for x in text.replace(",", " ").split()]
    except ValueError:
        raise typer.BadParameter(f"expected seeds like 0,1,2 or 0-4, got {text!r}", param_hint="--seeds") from None
    if not seeds:
        raise typer.BadParameter("give at least one seed", param_hint="--seeds")
    return seeds


def simulate(
    run_dir: Path = typer.Argument(..., exists=True, file_okay=False, help="results directory of `mfmdp run` / `mfmdp demo` (config.yaml + models/)"),
    events_path: Path = typer.Argument(..., exists=True, help="events to simulate: any format `mfmdp data` loads (generic JSONL/CSV, Weibo sets)"),
    event: list[str] = typer.Option([], "--event", "-e", help="simulate only this event id (repeatable; default: all)"),
    method: str = typer.Option("mf_mdp", "--method", "-m", help="method whose trained models simulate (mf_mdp, direct, ..., transition_only)"),
    scenario: Optional[Path] = typer.Option(None, "--scenario", "-s", exists=True, dir_okay=False, help="JSONL of signals to inject: {\"time\", \"source\", \"text\"} per line"),
    seeds: str = typer.Option("0,1,2", "--seeds", help="seeds, e.g. 0,1,2 or 0-9"),
    out: Path = typer.Option(Path("scenario-out"), "--out", "-o", help="output directory (never the run itself; its caches go to OUT/cache)"),
    annotator: Optional[str] = typer.Option(None, "--annotator", help="override the run's annotator (e.g. 'offline' for real events when the run used 'truth')"),
    skip_bad: bool = typer.Option(False, "--skip-bad", help="skip broken files of an EVENTS_PATH folder (counted and named) instead of stopping"),
) -> None:
    """Simulate events with a trained run's models; with --scenario also with the injected signals,
    and compare (PNG with bands over seeds + summary.json). The simulations are written as run
    directories OUT/baseline and OUT/scenario (`mfmdp evaluate OUT/baseline` scores them)."""
    from rich.markup import escape

    from mfmdp.annotate.registry import parse_annotator_spec
    from mfmdp.cli.data import SKIP_BAD_HINT, print_skipped_sources
    from mfmdp.data.errors import DataFormatError
    from mfmdp.data.loading import LoadReport, load
    from mfmdp.data.scenario import load_scenario
    from mfmdp.evaluate.whatif import run_scenario
    from mfmdp.simulate.scenario import check_out, load_trained

    console = Console()
    seed_list = parse_seeds(seeds)
    try:
        annotator_spec = parse_annotator_spec(annotator) if annotator is not None else None
    except ValueError as err:
        console.print(f"[red]error:[/] --annotator: {escape(str(err))}", soft_wrap=True, highlight=False)
        raise typer.Exit(2) from None
    try:
        check_out(run_dir, out)  # before anything is read or written
        signals = load_scenario(scenario) if scenario is not None else []
        run = load_trained(run_dir, methods=[method], annotator=annotator_spec, cache_dir=out / "cache")
    except (DataFormatError, ValueError, FileNotFoundError) as err:
        console.print(f"[red]error:[/] {escape(str(err))}")
        raise typer.Exit(2) from None
    report = LoadReport()
    try:
        events = load(events_path, report=report, progress=True, skip_bad=skip_bad)
    except DataFormatError as err:
        hint = SKIP_BAD_HINT if events_path.is_dir() and not skip_bad else ""
        console.print(f"[red]error:[/] {escape(str(err))}{hint}")
        raise typer.Exit(2) from None
    if report.skipped_sources:
        console.print(f"[yellow]warning:[/] {len(report.skipped_sources)} file(s)/folder(s) of {events_path} skipped:")
        print_skipped_sources(report, console)
    if event:
        known = {e.id for e in events}
        missing = [e for e in event if e not in known]
        if missing:
            console.print(f"[red]error:[/] {events_path}: no event(s) {missing}; it holds {len(known)} events, "
                          f"e.g. {sorted(known)[:5]}")
            raise typer.Exit(2)
        events = [e for e in events if e.id in set(event)]
    try:
        summary = run_scenario(run, events, signals, out, method=method, seeds=seed_list)
    except ValueError as err:
        hint = " (the run used annotator 'truth': pass --annotator offline)" if "'truth'" in str(err) else ""
        console.print(f"[red]error:[/] {err}{hint}")
        raise typer.Exit(2) from None
    for msg in summary["warnings"]:
        console.print(f"[yellow]warning:[/] {msg}")
    from mfmdp.simulate.coupling import calibration_events, describe_coupling
    from mfmdp.simulate.methods import get_method

    if run.models.coupling is not None and get_method(method).use_prior:
        console.print(describe_coupling(*run.models.coupling, run.cfg.simulation.evidence_weight == "calibrate",
                                        calibration_events(run.root)))
    if signals:
        from mfmdp.evaluate.eventstudy import load_validity, validity_line

        console.print(validity_line(load_validity(run_dir), method))
    for ev in summary["events"]:
        if "effect_mean" in ev:
            console.print(
                f"{ev['event']}: net polarity after the first injected signal: baseline "
                f"{ev['net_polarity_baseline']:+.3f}, scenario {ev['net_polarity_scenario']:+.3f} "
                f"(effect {ev['effect_mean']:+.3f}, 10-90 % over seeds {ev['effect_p10']:+.3f}..{ev['effect_p90']:+.3f}; "
                f"real {ev['net_polarity_real']:+.3f})")
        else:
            console.print(f"{ev['event']}: simulated {len(ev['seeds'])} seed(s)")
    console.print(f"[bold green]plots:[/] {', '.join(str(out / p) for p in summary['plots'])}")
    console.print(f"[bold green]simulated runs:[/] {', '.join(str(out / r) for r in summary['runs'])} "
                  "(run directories: score one with `mfmdp evaluate`)")
    console.print(f"[bold green]summary:[/] {out / 'summary.json'}")


def whatif_check(
    run_dir: Path = typer.Argument(..., exists=True, file_okay=False, help="results directory of `mfmdp run` / `mfmdp demo`"),
    side: str = typer.Option("validation", "--side", help="held-out side of the run's split: validation or test"),
    method: str = typer.Option("mf_mdp", "--method", "-m", help="method whose what-ifs are checked"),
    seeds: str = typer.Option("0,1", "--seeds", help="seeds, e.g. 0,1 or 0-4"),
    steps: int = typer.Option(8, "--steps", min=1, help="steps compared before and after each signal"),
    max_events: Optional[int] = typer.Option(None, "--max-events", min=1, help="at most this many events with a signal"),
) -> None:
    """The event study behind a what-if: on held-out events with a real signal after the warm-up, correlate
    the simulated effect of removing it with the real shift around it. Writes RUN_DIR/whatif_validity.json,
    which `mfmdp simulate` prints beside every scenario's result."""
    from mfmdp.evaluate.eventstudy import VALIDITY_FILE, run_event_study, validity_line
    from mfmdp.simulate.scenario import load_trained

    console = Console()
    if side not in ("validation", "test"):
        console.print(f"[red]error:[/] --side: expected validation or test, got {side!r}")
        raise typer.Exit(2)
    try:
        run = load_trained(run_dir, methods=[method])
        result = run_event_study(run, side=side, method=method, seeds=parse_seeds(seeds), span=steps,
                                 max_events=max_events)
    except (ValueError, FileNotFoundError) as err:
        console.print(f"[red]error:[/] {err}")
        raise typer.Exit(2) from None
    console.print(f"{result['events_with_signal']} of {result['events_on_side']} {side} events have a signal "
                  f"after the warm-up with {steps} steps on either side")
    for row in result["rows"]:
        console.print(f"  {row['event']}: step {row['signal_step']}, real shift {row['real_shift']:+.3f}, "
                      f"simulated effect {row['simulated_effect']:+.3f}")
    console.print(validity_line({method: {side: result}}, method))
    console.print(f"[bold green]wrote[/] {run_dir / VALIDITY_FILE}")
