"""`mfmdp evaluate`."""

from __future__ import annotations

import typer


def evaluate() -> None:
    """Not implemented yet."""
    raise typer.Exit(code=2)
