"""The results directory: per-event Parquet of real and simulated labels, resume markers, manifest.

Layout (read by mfmdp.evaluate.report):
    RUN_DIR/manifest.json, RUN_DIR/config.yaml
    RUN_DIR/events/<event_id>/real.parquet
    RUN_DIR/events/<event_id>/sim__<method>__seed<k>.parquet
    RUN_DIR/events/<event_id>/trajectory__<method>__seed<k>.parquet  (per-step m^_t, m_t, chosen j)
    RUN_DIR/events/<event_id>/done.json
    RUN_DIR/metrics.csv, RUN_DIR/report.html, RUN_DIR/plots/*.png
Every file is written to a temporary name and renamed, so an interrupted run leaves no torn files.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import sys
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from mfmdp.annotate.schema import DIMENSIONS, Labels

_SAFE = re.compile(r"[^A-Za-z0-9._-]")


def safe_name(event_id: str) -> str:
    return _SAFE.sub("_", event_id)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def atomic_write_json(path: Path, obj) -> None:
    atomic_write_bytes(path, json.dumps(obj, indent=2, ensure_ascii=False, default=str).encode("utf-8"))


def atomic_write_parquet(path: Path, df: pd.DataFrame) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    df.to_parquet(tmp, index=False)
    os.replace(tmp, path)


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
        return self.root / "events" / safe_name(event_id)

    def sim_path(self, event_id: str, method: str, seed: int) -> Path:
        return self.event_dir(event_id) / f"sim__{method}__seed{seed}.parquet"

    def trajectory_path(self, event_id: str, method: str, seed: int) -> Path:
        return self.event_dir(event_id) / f"trajectory__{method}__seed{seed}.parquet"

    def real_path(self, event_id: str) -> Path:
        return self.event_dir(event_id) / "real.parquet"

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
