"""Where a run's calibrated coupling lives and how it is read back (fitted by evaluate/calibration.py).

q' ∝ m^^(1-w_t) q^w_t with w_t = w * 0.5^(age / half-life) (simulate/loop.py). A run's (w, half-life)
is either configured (`simulation.evidence_weight` a number) or, with `calibrate`, fitted once on
validation and stored in RUN_DIR/models/calibration/calibration.json, with the config it depends on.
"""

from __future__ import annotations

import json
from pathlib import Path

from mfmdp.simulate.methods import get_method

CALIBRATION_MARKER = "calibration.json"
# what the chosen w depends on: the trained models, the loop's settings and the scoring window
CALIBRATION_DEPENDS_ON = ("seed", "data", "annotator", "encoder", "transition", "policy", "simulation",
                          "evaluation.window")
Couple = tuple[float, "float | None"]  # (w, half-life) as LoopParts reads them


def calibration_dir(out: Path) -> Path:
    return Path(out) / "models" / "calibration"


def calibrated_method(methods) -> str | None:
    """The method the weight is fitted with: MF-MDP when it runs, else the first agent method that reads
    the forecast (None: no method reads it, so no weight is needed)."""
    names = [m for m in methods if get_method(m).floor is None and get_method(m).use_prior]
    if not names:
        return None
    return "mf_mdp" if "mf_mdp" in names else names[0]


def read_calibration(marker: Path) -> dict:
    return json.loads(Path(marker).read_text(encoding="utf-8"))


def stored_coupling(cfg, root: Path) -> Couple | None:
    """A finished run's (w, half-life) (scenarios, the what-if check): the configured ones or its
    calibration.json (None when it has none)."""
    sim = cfg.simulation
    if sim.evidence_weight != "calibrate":
        return float(sim.evidence_weight), sim.evidence_half_life
    marker = calibration_dir(root) / CALIBRATION_MARKER
    if not marker.is_file():
        return None
    record = read_calibration(marker)
    return float(record["evidence_weight"]), record.get("evidence_half_life")


def calibration_events(root: Path) -> int | None:
    """How many validation events a run's calibration scored (None: not calibrated)."""
    marker = calibration_dir(root) / CALIBRATION_MARKER
    return read_calibration(marker).get("scored_events") if marker.is_file() else None


def describe_coupling(weight: float, half_life: float | None, calibrated: bool, events: int | None = None) -> str:
    """One sentence for reports and the scenario command: how much the agents' evidence moved their states."""
    fade = f", halved every {half_life:g} steps after warm-up" if half_life else ""
    how = "as configured"
    if calibrated:  # the choice holds for events like those it was fitted on, no further
        how = f"calibrated on {events} validation events" if events else "calibrated on validation"
    meaning = " (every agent draws from the forecast m^_t: the agents add nothing to the state)" if weight == 0 else ""
    return f"Coupling of the agents' evidence with f_psi's forecast: w = {weight:g}{fade}, {how}{meaning}."
