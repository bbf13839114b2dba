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


def manifest(script: str, args, data_files: list[Path] = ()) -> dict:
    """What a result was made from: script, arguments, commit, packages, machine, data file hashes."""
    import hashlib
    import platform
    import subprocess
    import time
    from importlib.metadata import version

    try:
        commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True,
                                check=True).stdout.strip()
        dirty = bool(subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"],
                                    capture_output=True, text=True).stdout.strip())
    except (OSError, subprocess.CalledProcessError):
        commit, dirty = None, None
    return {
        "script": script,
        "args": {k: str(v) for k, v in vars(args).items()},
        "commit": commit, "uncommitted_changes": dirty,
        "when": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "machine": f"{platform.node()} ({platform.machine()}), {__import__('os').cpu_count()} cores, shared",
        "python": platform.python_version(),
        "packages": {p: version(p) for p in ("numpy", "scipy", "scikit-learn", "joblib")},
        "data": {str(p): hashlib.sha256(Path(p).read_bytes()).hexdigest() for p in data_files},
    }
