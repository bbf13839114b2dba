"""`mfmdp run`."""

from __future__ import annotations

import typer


def run() -> None:
    """Not implemented yet."""
    raise typer.Exit(code=2)
