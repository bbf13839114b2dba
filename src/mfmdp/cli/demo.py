"""`mfmdp demo`."""

from __future__ import annotations

import typer


def demo() -> None:
    """Not implemented yet."""
    raise typer.Exit(code=2)
