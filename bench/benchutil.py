"""Helpers shared by the benchmark scripts (run as `python bench/NAME.py`, so this imports as a sibling)."""

from __future__ import annotations

import resource
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"


def rss_mb() -> float:
    """Peak resident memory of this process in MB (VmHWM: reset by exec, unlike ru_maxrss)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def write_json(path: Path, obj) -> None:
    """Write a benchmark's figures (numpy scalars and tuples become plain JSON)."""
    import json

    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=2, default=lambda o: o.item() if hasattr(o, "item") else str(o)))
