"""Score every simulated file of a run directory (read through mfmdp.simulate.results, which owns the layout).

Produces metrics rows (metrics.csv columns), slot-F1 references, per-event reversal comparisons and
the windowed series the plots draw. An event whose files disagree (lengths, slots, columns) fails
with an error naming the file; nothing is silently skipped.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from rich.progress import Progress

from mfmdp.core.schema import DIMENSIONS, Labels
from mfmdp.data.stepping import Steps
from mfmdp.evaluate import metrics as M
from mfmdp.evaluate.oracle import oracle_labels
from mfmdp.evaluate.protocol import METRICS, SETTINGS, evaluate_event, horizons
from mfmdp.evaluate.reversal import (DEFAULT_THRESHOLDS, ReversalThresholds, compare_reversals, fit_reversal_thresholds,
                                     null_false_positive_rate, polarity_series)
from mfmdp.evaluate.windows import group_counts, steps_from_column, window_ids
from mfmdp.simulate import results

log = logging.getLogger(__name__)

METRICS_CSV_COLUMNS: tuple[str, ...] = ("setting", "method", "dimension", "event", "seed", *METRICS,
                                        "responses", "steps")
THRESHOLDS_FILE = "reversal_thresholds.json"


@dataclass
class EventData:
    event: str
    real: Labels
    steps: Steps
    warmup_slots: int
    sims: dict[tuple[str, int], tuple[Labels, np.ndarray | None]]  # (method, seed) -> labels, nll


@dataclass
class RunEvaluation:
    metrics: pd.DataFrame
    references: pd.DataFrame  # event, setting, dimension, macro/micro F1 of majority and random
    reversals: pd.DataFrame  # event, method, seed + compare_reversals fields
    thresholds: ReversalThresholds
    null_fp_rate: float  # on this run's real polarity series
    series: dict = field(default_factory=dict)  # event -> {"centres", "real": {dim: [W,K]}, method: {...}}
    manifest: dict = field(default_factory=dict)


def load_event(event_dir: Path, with_sims: bool = True) -> EventData:
    """The event's real labels and steps, and (with_sims) every sim file checked against them."""
    event_id, real_df = results.read_real(event_dir)
    steps = Steps(bounds=steps_from_column(real_df["step"].to_numpy()),
                  is_signal=real_df["is_signal"].to_numpy(bool))
    slots = real_df["slot"].to_numpy()
    real = results.frame_labels(real_df, Path(event_dir) / results.REAL_FILE)
    sims = {(method, seed): results.read_sim(path, slots)
            for method, seed, path in (results.sim_files(event_dir) if with_sims else [])}
    return EventData(event_id, real, steps, int(real_df["warmup"].sum()), sims)


def windowed_shares(codes: np.ndarray, slots: np.ndarray, window: int, k: int) -> np.ndarray:
    """Raw label shares per window ([W, K]; NaN rows where every label is unknown), for plots."""
    ids = window_ids(len(slots), window)
    n_win = int(ids[-1]) + 1 if len(ids) else 0
    counts = group_counts(np.asarray(codes)[slots], ids, n_win, k)
    total = counts.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, counts / np.where(total > 0, total, 1), np.nan)


def _resolve_thresholds(run_dir: Path, given: ReversalThresholds | None, real_codes: list[np.ndarray],
                        window: int) -> ReversalThresholds:
    if given is not None:
        return given
    path = Path(run_dir) / THRESHOLDS_FILE
    if path.exists():
        return ReversalThresholds.load(path)
    if any(len(c) >= 2 * window for c in real_codes):
        log.warning("no reversal thresholds given: fitting them on this run's own real events")
        return fit_reversal_thresholds(real_codes, window,
                                       source="this run's real events (no training thresholds given)")
    return DEFAULT_THRESHOLDS


def evaluate_run(run_dir: str | Path, thresholds: ReversalThresholds | None = None, window: int = 128,
                 settings: tuple[str, ...] = SETTINGS, add_oracle: bool = True,
                 show_progress: bool = True) -> RunEvaluation:
    """Score every sim file of every event; adds the oracle floor (seeded like the run's seeds) for
    events that have no oracle file. Thresholds: given > RUN_DIR/reversal_thresholds.json > fitted on
    this run's real events (flagged in the report)."""
    run_dir = Path(run_dir)
    dirs = results.event_dirs(run_dir)
    if not dirs:
        raise ValueError(f"{run_dir}/{results.EVENTS_DIR}: no event folder with a {results.REAL_FILE}")
    long_slots = {}
    real_codes = []  # scored state codes per event, for thresholds and the null FP rate
    for d in dirs:  # first pass: real labels only (sim files are read one event at a time below)
        ev = load_event(d, with_sims=False)
        (hz,) = horizons(ev.real.n, ev.steps, ev.warmup_slots, ("long",), window=window)
        long_slots[ev.event] = hz.slots
        real_codes.append(ev.real.codes["state"][hz.slots])
    th = _resolve_thresholds(run_dir, thresholds, real_codes, window)
    rows, refs, revs, series = [], [], [], {}
    with Progress(disable=not show_progress, transient=True) as progress:
        task = progress.add_task("evaluating", total=len(dirs))
        for d in dirs:
            ev = load_event(d)
            if add_oracle and not any(m == "oracle" for m, _ in ev.sims):
                seeds = sorted({s for _, s in ev.sims}) or [0]
                for s in seeds:
                    ev.sims[("oracle", s)] = (oracle_labels(ev.real, ev.steps.is_signal, ev.warmup_slots,
                                                            window, seed=s), None)
            slots = long_slots[ev.event]
            real_pol, centres = polarity_series(ev.real.codes["state"], slots, window) if len(slots) else (np.zeros(0), np.zeros(0))
            series[ev.event] = {"centres": centres, "real": {
                d: windowed_shares(ev.real.codes[d], slots, window, M.n_labels(d)) for d in DIMENSIONS}}
            for hz in horizons(ev.real.n, ev.steps, ev.warmup_slots, settings, ev.real.codes["state"],
                               window, th):
                for d in DIMENSIONS:
                    ref = M.f1_references(ev.real.codes[d][hz.slots], M.n_labels(d))
                    refs.append({"event": ev.event, "setting": hz.name, "dimension": d, **ref})
            for (method, seed), (labels, nll) in sorted(ev.sims.items()):
                for row in evaluate_event(ev.real, labels, ev.steps, ev.warmup_slots, settings, nll,
                                          window, th):
                    rows.append({**row, "method": method, "event": ev.event, "seed": seed})
                if len(slots):
                    sim_pol, _ = polarity_series(labels.codes["state"], slots, window)
                    revs.append({"event": ev.event, "method": method, "seed": seed,
                                 **compare_reversals(real_pol, sim_pol, centres, th)})
                if method not in series[ev.event] or seed < series[ev.event][method]["seed"]:
                    series[ev.event][method] = {"seed": seed, **{
                        d: windowed_shares(labels.codes[d], slots, window, M.n_labels(d)) for d in DIMENSIONS}}
            progress.advance(task)
    metrics = pd.DataFrame(rows, columns=list(METRICS_CSV_COLUMNS))
    fp = null_false_positive_rate(real_codes, th, window)
    return RunEvaluation(metrics, pd.DataFrame(refs), pd.DataFrame(revs), th, fp, series,
                         results.read_manifest(run_dir))


def fit_thresholds_from_run(train_run_dir: str | Path, window: int = 128, seed: int = 0) -> ReversalThresholds:
    """Reversal thresholds fitted on the real trajectories of another run directory (training events)."""
    codes = []
    for d in results.event_dirs(Path(train_run_dir)):
        ev = load_event(d, with_sims=False)
        (hz,) = horizons(ev.real.n, ev.steps, ev.warmup_slots, ("long",), window=window)
        codes.append(ev.real.codes["state"][hz.slots])
    return fit_reversal_thresholds(codes, window, seed=seed, source=f"real events of {Path(train_run_dir).name}")
