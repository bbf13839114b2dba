"""The results directory: per-event Parquet of real and simulated labels, resume markers, manifest.

Layout (read by mfmdp.evaluate.report):
    RUN_DIR/manifest.json, RUN_DIR/config.yaml
    RUN_DIR/events/<slug>/real.parquet   (the event id itself in the Parquet metadata: attrs["event_id"])
    RUN_DIR/events/<slug>/sim__<method>__seed<k>.parquet
    RUN_DIR/events/<slug>/trajectory__<method>__seed<k>.parquet  (per-step m^_t, m_t, chosen j)
    RUN_DIR/events/<slug>/done.json
    RUN_DIR/metrics.csv, RUN_DIR/report.html, RUN_DIR/plots/*.png
<slug> = event_slug(event id): the id itself when it is a plain file name, else a readable ASCII part
plus a short hash of the id. Every file is written to a temporary name and renamed, so an interrupted
run leaves no torn files.
"""

from __future__ import annotations

import hashlib
import platform
import re
import sys
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from mfmdp.core.atomic import atomic_write_json, atomic_write_parquet
from mfmdp.core.schema import DIMENSIONS, Labels

_PLAIN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,79}$")  # starts alphanumeric: no '.', '..', hidden
_UNSAFE_RUN = re.compile(r"[^A-Za-z0-9._-]+")
SLUG_HASH_CHARS = 10


def event_slug(event_id: str) -> str:
    """The file/folder name of an event id, the one place such names are made.

    A plain ASCII id ('3509', 'ev-1.b') is kept as it is (older run folders stay valid); any other id
    (Chinese, '..', '/', spaces, very long) becomes its ASCII part plus a hash of the whole id, so two
    ids never share a folder and no name can step outside its parent ('新冠' -> 'event-abb3fea030').
    """
    event_id = str(event_id)
    if _PLAIN_NAME.match(event_id):
        return event_id
    readable = _UNSAFE_RUN.sub("_", event_id).strip("._-")[:40] or "event"
    digest = hashlib.sha256(event_id.encode("utf-8")).hexdigest()[:SLUG_HASH_CHARS]
    return f"{readable}-{digest}"


def labels_frame(labels: Labels, steps_of: np.ndarray, is_signal: np.ndarray, warmup_slots: int) -> pd.DataFrame:
    n = labels.n
    df = pd.DataFrame(
        {
            "slot": np.arange(n, dtype=np.int64),
            "step": steps_of.astype(np.int32),
            "is_signal": is_signal.astype(bool),
            "warmup": np.arange(n) < warmup_slots,
        }
    )
    for d in DIMENSIONS:
        df[d] = labels.codes[d].astype(np.int8)
    return df


class RunDir:
    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def event_dir(self, event_id: str) -> Path:
        return self.root / "events" / event_slug(event_id)

    def sim_path(self, event_id: str, method: str, seed: int) -> Path:
        return self.event_dir(event_id) / f"sim__{method}__seed{seed}.parquet"

    def trajectory_path(self, event_id: str, method: str, seed: int) -> Path:
        return self.event_dir(event_id) / f"trajectory__{method}__seed{seed}.parquet"

    def real_path(self, event_id: str) -> Path:
        return self.event_dir(event_id) / "real.parquet"

    def write_real(self, event_id: str, df: pd.DataFrame) -> None:
        """real.parquet, carrying the event id (folder names are slugs, see event_slug)."""
        df.attrs["event_id"] = str(event_id)
        atomic_write_parquet(self.real_path(event_id), df)

    def done_path(self, event_id: str) -> Path:
        return self.event_dir(event_id) / "done.json"

    def is_done(self, event_id: str) -> bool:
        return self.done_path(event_id).exists()


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def tree_hash(paths: list[Path]) -> str:
    """Hash of file names, sizes and contents of the files under the given paths (sorted)."""
    h = hashlib.sha256()
    files: list[Path] = []
    for p in paths:
        p = Path(p)
        files.extend(sorted(q for q in p.rglob("*") if q.is_file()) if p.is_dir() else [p])
    for f in files:
        h.update(str(f.name).encode())
        h.update(file_sha256(f).encode())
    return h.hexdigest()


def versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": sys.version.split()[0], "platform": platform.platform()}
    for pkg in ("mfmdp", "numpy", "pandas", "torch", "scikit-learn", "transformers", "peft", "ray"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            pass
    return out


def write_manifest(root: Path, config: dict, seeds: list[int], data_hash: str, checkpoints: dict[str, str], extra: dict | None = None) -> None:
    atomic_write_json(
        Path(root) / "manifest.json",
        {
            "created": datetime.now(timezone.utc).isoformat(),
            "config": config,
            "seeds": seeds,
            "versions": versions(),
            "data_hash": data_hash,
            "checkpoints": checkpoints,
            **(extra or {}),
        },
    )
