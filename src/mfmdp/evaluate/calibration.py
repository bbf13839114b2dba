"""Fitting the coupling of the agents' evidence with f_psi's forecast, in closed loop on validation.

q' ∝ m^^(1-w_t) q^w_t with w_t = w * 0.5^(age / half-life) (simulate/loop.py). DESIGN.md's
calibration rule: evidence that says nothing must leave each step's expected mix at the forecast.
With `simulation.evidence_weight: calibrate` the main agent method is simulated on a fixed, evenly
spread subset of the validation events for every coupling (w, half-life) in `calibration_grid`, each
scored by the long-horizon windowed state KL, as the report scores it. The chosen coupling is the one
with the least evidence (Coupling.order) within one paired standard error of the best (the
one-standard-error rule): an agent layer whose evidence does not measurably help draws from m^_t.
The result, with every score, is stored in RUN_DIR/models/calibration/calibration.json
(simulate/coupling.py), reused on resume and by `--models-from`.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from mfmdp.core.atomic import atomic_write_json
from mfmdp.simulate.config import ConfigError
from mfmdp.simulate.coupling import (CALIBRATION_DEPENDS_ON, CALIBRATION_MARKER, Couple, calibrated_method,
                                     calibration_dir, stored_coupling)
from mfmdp.simulate.stages import stage_record

log = logging.getLogger(__name__)

CALIBRATION_SETTING = "long"


def one_se_choice(kl: np.ndarray) -> tuple[int, dict]:
    """(index, summary) from per-event KLs [candidates, events], candidates ordered from the least
    evidence: the first whose mean is within one paired standard error of the best mean (events
    without a score under some candidate are left out)."""
    kl = kl[:, np.isfinite(kl).all(axis=0)]
    if kl.shape[1] == 0:
        raise ValueError("calibration: no validation event has a long-horizon score (too short after warm-up?)")
    means = kl.mean(axis=1)
    best = int(np.argmin(means))
    n = kl.shape[1]
    se = (kl - kl[best]).std(axis=1, ddof=1) / np.sqrt(n) if n > 1 else np.zeros(len(kl))
    chosen = next(i for i in range(len(kl)) if means[i] - means[best] <= se[i])
    return chosen, {"mean_kl": [float(v) for v in means], "paired_se": [float(v) for v in se], "best": best,
                    "scored_events": int(n)}


def fit_coupling(cfg, validation: list, models, progress: bool = True) -> dict:
    """Simulate the calibrated method on the validation subset under every coupling of the grid; the
    record that calibration.json stores (chosen coupling, grid, per-event KLs)."""
    from rich.progress import Progress

    from mfmdp.evaluate.protocol import evaluate_event
    from mfmdp.simulate.distributed import ray_session
    from mfmdp.simulate.prepare import evaluation_subset
    from mfmdp.simulate.runner import make_replay_for, run_tasks

    sim = cfg.simulation
    method = calibrated_method(cfg.methods)
    events = evaluation_subset(validation, sim.calibration_events)
    if not events:
        raise ConfigError("simulation.evidence_weight: calibrate needs validation events (there are none after "
                          "the split and the min_responses filter): set a number instead")
    replays = {p.event.id: make_replay_for(cfg, p, models.encoder) for p in events}
    position = {p.event.id: j for j, p in enumerate(events)}
    grid = list(sim.calibration_grid)
    kl = np.full((len(grid), len(events)), np.nan)
    tasks = [(p.event.id, method, cfg.seed) for p in events]
    with Progress(disable=not progress, transient=True) as bar, ray_session(cfg):
        task = bar.add_task("calibrating the coupling", total=len(grid) * len(events))
        for i, c in enumerate(grid):
            fixed = cfg.model_copy(update={"simulation": sim.model_copy(
                update={"evidence_weight": c.weight, "evidence_half_life": c.half_life})})
            for (eid, _, _), (labels, _) in run_tasks(fixed, tasks, replays, models):
                p = events[position[eid]]
                rows = evaluate_event(p.labels, labels, p.steps, replays[eid].warmup_slots,
                                      settings=(CALIBRATION_SETTING,), window=cfg.evaluation.window,
                                      dimensions=("state",))
                kl[i, position[eid]] = rows[0]["kl"]
                bar.update(task, advance=1)
    chosen, summary = one_se_choice(kl)
    log.info("coupling: %s (mean long-horizon state KL on %d validation events: %s)", grid[chosen].label(),
             len(events), "; ".join(f"{c.label()}: {m:.4f}" for c, m in zip(grid, summary["mean_kl"])))
    return {"evidence_weight": grid[chosen].weight, "evidence_half_life": grid[chosen].half_life,
            "method": method, "seed": cfg.seed, "setting": CALIBRATION_SETTING,
            "grid": [c.model_dump() for c in grid], "events": [p.event.id for p in events], "kl": kl.tolist(),
            **summary}


def resolve_coupling(cfg, validation: list, models, out: Path, progress: bool = True) -> Couple | None:
    """The run's (w, half-life): the configured ones, or the calibrated ones (fitted here once, then read
    back); None when no method reads the forecast."""
    marker = calibration_dir(out) / CALIBRATION_MARKER
    # fitted once: a marker made with another config was refused by check_resume before any work
    if cfg.simulation.evidence_weight == "calibrate" and calibrated_method(cfg.methods) and not marker.exists():
        record = fit_coupling(cfg, validation, models, progress)
        atomic_write_json(marker, {**record, "stage": stage_record(cfg, CALIBRATION_DEPENDS_ON)}, indent=1)
    return stored_coupling(cfg, out)
