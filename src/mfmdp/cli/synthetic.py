"""`mfmdp data synth OUT`: write synthetic events (with ground-truth labels) in the generic format."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

_console = Console()


def _parse_responses(text: str) -> int | tuple[int, int]:
    try:
        if "-" in text:
            lo, hi = (int(x) for x in text.split("-", 1))
            return lo, hi
        return int(text)
    except ValueError:
        raise typer.BadParameter(f"expected N or MIN-MAX (e.g. 1000-4000), got {text!r}") from None


def synth(
    out: Path = typer.Argument(None, help="Output file: .jsonl (default) or .csv, generic event format."),
    events: int = typer.Option(8, "--events", "-n", help="Number of events."),
    responses: str = typer.Option("1000-4000", help="Responses per event: N, or MIN-MAX (log-uniform)."),
    seed: int = typer.Option(0, help="Random seed (the same seed gives the same file)."),
    scenario: list[str] = typer.Option(None, "--scenario", "-s",
                                       help="Scenario(s) to cycle through (default: all). See --list."),
    list_scenarios: bool = typer.Option(False, "--list", help="List the built-in scenarios and exit."),
) -> None:
    """Generate synthetic Weibo-like events from a known agent-based mechanism and write them."""
    from mfmdp.data.synthetic import SCENARIOS, generate_events, write_synthetic

    if list_scenarios:
        for name, sc in SCENARIOS.items():
            _console.print(f"[bold]{name}[/bold]: {sc.description}")
        raise typer.Exit(0)
    if out is None:
        raise typer.BadParameter("give an output file (e.g. synthetic.jsonl)", param_hint="OUT")
    try:
        evs = generate_events(events, _parse_responses(responses), seed=seed, scenarios=scenario or None)
    except ValueError as e:
        Console(stderr=True).print(f"[red]error:[/red] {e}")
        raise typer.Exit(2)
    path = write_synthetic(evs, out)
    table = Table(title=f"{len(evs)} synthetic events -> {path}")
    for col in ("event", "scenario", "responses", "shares", "signals", "reversal step", "start (UTC)"):
        table.add_column(col)
    for ev in evs:
        shares = sum(r.behavior == "share" for r in ev.responses)
        table.add_row(ev.id, ev.metadata["scenario"], str(len(ev)), str(shares), str(len(ev.signals)),
                      str(ev.metadata.get("reversal_step", "-")), ev.topic.time.strftime("%Y-%m-%d %H:%M"))
    _console.print(table)
