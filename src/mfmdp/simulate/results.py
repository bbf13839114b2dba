"""The results directory: its layout, its writer and its reader (the one module that names its files).

Layout of a run directory (`mfmdp run` writes it, `mfmdp evaluate` reads it):
    RUN_DIR/manifest.json, RUN_DIR/config.yaml
    RUN_DIR/events/<slug>/real.parquet   (the event id itself in the Parquet metadata: attrs["event_id"])
    RUN_DIR/events/<slug>/sim__<method>__seed<k>.parquet        (sim_file)
    RUN_DIR/events/<slug>/trajectory__<method>__seed<k>.parquet (trajectory_file: per-step m^_t, m_t, chosen j)
    RUN_DIR/events/<slug>/done.json
    RUN_DIR/metrics.csv, RUN_DIR/report.html, RUN_DIR/plots/*.png   (written by mfmdp.evaluate.report)
<slug> = event_slug(event id): the id itself when it is a plain file name, else a readable ASCII part
plus a short hash of the id. <method> is a method name ([A-Za-z0-9_]+), <k> a seed (0, 1, ...).

A what-if scenario's OUT directory holds one run-directory-shaped tree per kind of run (SCENARIO_TREES),
so `mfmdp evaluate OUT/baseline` scores it like any run:
    OUT/baseline/events/<slug>/{real.parquet, sim__<method>__seed<k>.parquet, trajectory__...}, OUT/baseline/manifest.json
    OUT/scenario/events/<slug>/...   (only when signals were injected)
    OUT/plots/<slug>__<method>.png, OUT/summary.json, OUT/manifest.json

Every file is written through mfmdp.core.atomic (temporary name + rename), so an interrupted run
leaves no torn files. The reader checks what it reads and names the file in every error.
"""

from __future__ import annotations

import hashlib
import json
import operator
import platform
import re
import sys
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from mfmdp.core.atomic import atomic_write_json, atomic_write_parquet
from mfmdp.core.schema import DIMENSIONS, Labels

# --- the layout: every name of a results directory ---------------------------------------------
EVENTS_DIR = "events"
REAL_FILE = "real.parquet"
DONE_FILE = "done.json"
MANIFEST_FILE = "manifest.json"
SIM_PREFIX = "sim"
TRAJECTORY_PREFIX = "trajectory"
SCENARIO_TREES = ("baseline", "scenario")  # OUT/<kind>/: a scenario's run-directory-shaped trees
REAL_COLUMNS = ("slot", "step", "is_signal", "warmup")  # besides the label columns (DIMENSIONS)

_PLAIN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,79}")  # fullmatch; starts alphanumeric: no '.', '..', hidden
_UNSAFE_RUN = re.compile(r"[^A-Za-z0-9._-]+")
_METHOD = re.compile(r"[A-Za-z0-9_]+")  # fullmatch
SLUG_HASH_CHARS = 10


def _run_file_pattern(prefix: str) -> re.Pattern:
    return re.compile(rf"{prefix}__(?P<method>[A-Za-z0-9_]+)__seed(?P<seed>[0-9]+)\.parquet")  # fullmatch


_SIM_FILE = _run_file_pattern(SIM_PREFIX)
_TRAJECTORY_FILE = _run_file_pattern(TRAJECTORY_PREFIX)
SIM_FILE_FORM = f"{SIM_PREFIX}__<method>__seed<k>.parquet"


def event_slug(event_id: str) -> str:
    """The file/folder name of an event id, the one place such names are made.

    A plain ASCII id ('3509', 'ev-1.b') is kept as it is (older run folders stay valid); any other id
    (Chinese, '..', '/', spaces, very long) becomes its ASCII part plus a hash of the whole id, so two
    ids never share a folder and no name can step outside its parent ('新冠' -> 'event-abb3fea030').
    """
    event_id = str(event_id)
    if _PLAIN_NAME.fullmatch(event_id):
        return event_id
    readable = _UNSAFE_RUN.sub("_", event_id).strip("._-")[:40] or "event"
    digest = hashlib.sha256(event_id.encode("utf-8")).hexdigest()[:SLUG_HASH_CHARS]
    return f"{readable}-{digest}"


def _run_file(prefix: str, method: str, seed: int) -> str:
    if not isinstance(method, str) or not _METHOD.fullmatch(method):
        raise ValueError(f"method name {method!r} cannot name a results file: use letters, digits and '_' only")
    try:
        k = None if isinstance(seed, (bool, np.bool_)) else operator.index(seed)
    except TypeError:
        k = None
    if k is None or k < 0:
        raise ValueError(f"seed {seed!r} cannot name a results file: it must be an integer >= 0")
    seed = k
    return f"{prefix}__{method}__seed{seed}.parquet"


def sim_file(method: str, seed: int) -> str:
    """'sim__<method>__seed<k>.parquet': the simulated labels of one method and seed."""
    return _run_file(SIM_PREFIX, method, seed)


def trajectory_file(method: str, seed: int) -> str:
    """'trajectory__<method>__seed<k>.parquet': the per-step record of that simulation."""
    return _run_file(TRAJECTORY_PREFIX, method, seed)


def parse_sim_file(name: str) -> tuple[str, int] | None:
    """(method, seed) of a sim file name (sim_file's inverse), None for any other name."""
    m = _SIM_FILE.fullmatch(name)
    return (m["method"], int(m["seed"])) if m else None


def parse_trajectory_file(name: str) -> tuple[str, int] | None:
    """(method, seed) of a trajectory file name (trajectory_file's inverse), None for any other name."""
    m = _TRAJECTORY_FILE.fullmatch(name)
    return (m["method"], int(m["seed"])) if m else None


def scenario_plot_file(event_id: str, method: str) -> str:
    """Name of a scenario's comparison plot of one event (under OUT/plots)."""
    return f"{event_slug(event_id)}__{method}.png"


# --- the writer ---------------------------------------------------------------------------------
def labels_frame(labels: Labels, steps_of: np.ndarray, is_signal: np.ndarray, warmup_slots: int) -> pd.DataFrame:
    """One row per slot: slot, step, is_signal, warmup and the label columns (int8, -1 unknown)."""
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


def sim_frame(labels: Labels, steps_of: np.ndarray, is_signal: np.ndarray, warmup_slots: int,
              trajectory: pd.DataFrame | None = None, nll: np.ndarray | None = None) -> pd.DataFrame:
    """A sim file's frame: labels_frame + the realised `text` of every slot (from the trajectory's
    attrs["texts"], None where there is none) + the policy's `nll` per slot when given."""
    df = labels_frame(labels, steps_of, is_signal, warmup_slots)
    texts = trajectory.attrs.get("texts") if trajectory is not None else None
    df["text"] = texts if texts is not None else [None] * len(df)
    if nll is not None:
        df["nll"] = nll
    return df


class RunDir:
    """A run directory (or one of a scenario's trees): where each file of an event goes, and its writers."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def event_dir(self, event_id: str) -> Path:
        return self.root / EVENTS_DIR / event_slug(event_id)

    def sim_path(self, event_id: str, method: str, seed: int) -> Path:
        return self.event_dir(event_id) / sim_file(method, seed)

    def trajectory_path(self, event_id: str, method: str, seed: int) -> Path:
        return self.event_dir(event_id) / trajectory_file(method, seed)

    def real_path(self, event_id: str) -> Path:
        return self.event_dir(event_id) / REAL_FILE

    def done_path(self, event_id: str) -> Path:
        return self.event_dir(event_id) / DONE_FILE

    def manifest_path(self) -> Path:
        return self.root / MANIFEST_FILE

    def write_real(self, event_id: str, df: pd.DataFrame) -> None:
        """real.parquet, carrying the event id (folder names are slugs, see event_slug)."""
        df.attrs["event_id"] = str(event_id)
        atomic_write_parquet(self.real_path(event_id), df)

    def write_sim(self, event_id: str, method: str, seed: int, frame: pd.DataFrame,
                  trajectory: pd.DataFrame | None = None) -> Path:
        """The sim file of (method, seed) (frame: see sim_frame), after its trajectory when given: a sim
        file on disk means the whole simulation was written (resume skips it)."""
        path = self.sim_path(event_id, method, seed)  # checks the names before anything is written
        if trajectory is not None:
            atomic_write_parquet(self.trajectory_path(event_id, method, seed), trajectory)
        atomic_write_parquet(path, frame)
        return path

    def write_done(self, event_id: str, record: dict) -> None:
        """done.json: which methods and seeds the event's simulations cover."""
        atomic_write_json(self.done_path(event_id), record)

    def read_done(self, event_id: str) -> dict | None:
        path = self.done_path(event_id)
        return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None

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
        Path(root) / MANIFEST_FILE,
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


# --- the reader ---------------------------------------------------------------------------------
def read_manifest(root: str | Path) -> dict:
    """ROOT/manifest.json ({} when there is none)."""
    path = Path(root) / MANIFEST_FILE
    if not path.exists():
        return {}
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: invalid JSON ({exc})") from exc


def event_dirs(root: str | Path) -> list[Path]:
    """The event folders of a run directory that hold a real.parquet, sorted by name."""
    root = Path(root)
    events = root / EVENTS_DIR
    if not events.is_dir():
        trees = [root / kind for kind in SCENARIO_TREES if (root / kind / EVENTS_DIR).is_dir()]
        hint = (f"; it looks like a scenario's output: evaluate {' or '.join(str(t) for t in trees)}"
                if trees else "")
        raise ValueError(f"{root}: no {EVENTS_DIR}/ folder (not a run directory){hint}")
    return sorted(p for p in events.iterdir() if p.is_dir() and (p / REAL_FILE).exists())


def read_parquet(path: Path) -> pd.DataFrame:
    try:
        return pd.read_parquet(path)
    except Exception as exc:  # pyarrow raises several types; name the file either way
        raise ValueError(f"{path}: cannot read Parquet ({exc})") from exc


def require_columns(df: pd.DataFrame, cols: tuple[str, ...], path: Path) -> None:
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise ValueError(f"{path}: missing column(s) {', '.join(missing)}")


def frame_labels(df: pd.DataFrame, path: Path) -> Labels:
    """The label columns of a real or sim frame as Labels, every code checked (-1 unknown)."""
    missing = [d for d in DIMENSIONS if d not in df.columns]
    if missing:
        raise ValueError(f"{path}: missing label column(s) {', '.join(missing)}")
    codes = {}
    for d in DIMENSIONS:
        col = df[d].to_numpy()
        if len(col) and (col.min() < -1 or col.max() >= len(DIMENSIONS[d])):
            raise ValueError(f"{path}: column {d!r} has codes outside -1..{len(DIMENSIONS[d]) - 1}")
        codes[d] = col.astype(np.int8)
    return Labels(codes)


def read_real(event_dir: Path) -> tuple[str, pd.DataFrame]:
    """(event id, real frame in slot order) of an event folder; the frame has REAL_COLUMNS and its
    warm-up slots are a prefix. The id is the one stored in the file (older runs: the folder name)."""
    path = Path(event_dir) / REAL_FILE
    df = read_parquet(path)
    event_id = df.attrs.get("event_id", Path(event_dir).name)
    require_columns(df, REAL_COLUMNS, path)
    df = df.sort_values("slot", kind="stable").reset_index(drop=True)
    warm = df["warmup"].to_numpy(bool)
    if not warm[: int(warm.sum())].all():
        raise ValueError(f"{path}: warm-up slots must be a prefix of the event")
    return str(event_id), df


def sim_files(event_dir: Path) -> list[tuple[str, int, Path]]:
    """(method, seed, path) of every sim file of an event folder, sorted by file name. A file named
    like a sim file that does not follow the layout is an error, never skipped."""
    out = []
    for path in sorted(Path(event_dir).glob(f"{SIM_PREFIX}__*.parquet")):
        parsed = parse_sim_file(path.name)
        if parsed is None:
            raise ValueError(f"{path}: name does not follow {SIM_FILE_FORM}")
        out.append((*parsed, path))
    return out


def read_sim(path: Path, slots: np.ndarray) -> tuple[Labels, np.ndarray | None]:
    """(labels, per-slot nll or None) of a sim file, in slot order; its slots must be `slots` (the
    real frame's)."""
    df = read_parquet(path)
    require_columns(df, ("slot",), path)
    df = df.sort_values("slot", kind="stable").reset_index(drop=True)
    if len(df) != len(slots) or not np.array_equal(df["slot"].to_numpy(), slots):
        raise ValueError(f"{path}: slots differ from {REAL_FILE} ({len(df)} vs {len(slots)} rows)")
    nll = df["nll"].to_numpy(np.float64) if "nll" in df.columns else None
    return frame_labels(df, path), nll
