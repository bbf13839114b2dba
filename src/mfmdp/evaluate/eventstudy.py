"""Is a simulated what-if worth anything? The event study of issue 13.

On held-out events with a real detected signal after the warm-up (an institution's post, a listed
debunk), the run's models simulate the event twice per seed: as it is, and with that step's signals
removed from what the models read (c_t and the agents' signal context; the signal's own
response stays in the replay). The simulated effect of the signal is the difference in the crowd's
net polarity (positive - negative share) over the `steps` steps from the signal on; the real shift
around it is the real net polarity over those steps minus over the `steps` steps before. A simulator
whose what-ifs mean something puts the effect where the real shift is: their correlation over events
(Pearson, with a bootstrap 95% CI over events) is the figure, written to RUN_DIR/whatif_validity.json
by `mfmdp whatif-check` and printed by `mfmdp simulate` beside every scenario's result.

The real shift also holds whatever else moved the crowd at that time, so even a perfect simulator
does not reach 1; a simulator that ignores signals has no effect to correlate (r undefined, reported
as such).
"""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from pathlib import Path
from typing import Sequence

import numpy as np

from mfmdp.core.atomic import atomic_write_json
from mfmdp.core.schema import Labels
from mfmdp.data.stepping import Steps

log = logging.getLogger(__name__)

VALIDITY_FILE = "whatif_validity.json"
STUDY_STEPS = 8  # 128 responses at 16 per step: the evaluation window


def first_signal_step(steps: Steps, warmup_steps: int, span: int) -> int | None:
    """The first step after the warm-up that carries a signal and has `span` steps before and after it
    inside the event (None when there is none)."""
    for t in range(max(warmup_steps, span), len(steps) - span + 1):
        if steps.signals[t]:
            return t
    return None


def without_signals_at(steps: Steps, t0: int) -> Steps:
    """The same steps with step t0's signals removed (the slots themselves are unchanged)."""
    return replace(steps, signals=[s if t != t0 else [] for t, s in enumerate(steps.signals)])


def net_polarity(labels: Labels, agent: np.ndarray, lo: int, hi: int | None = None) -> float:
    """Positive minus negative share of the crowd's labelled responses in slots lo:hi (to the end when
    hi is None; nan if none)."""
    codes = labels.codes["state"][lo:hi]
    ok = agent[lo:hi] & (codes >= 0)
    if not ok.any():
        return float("nan")
    return float(np.mean(codes[ok] == 0) - np.mean(codes[ok] == 2))


def study_event(cfg, prepared, models, method: str, seeds: Sequence[int], span: int = STUDY_STEPS) -> dict | None:
    """One event's row: its signal step, the real shift around it and the simulated effect (mean over
    seeds, and per seed); None when the event has no usable signal."""
    from mfmdp.simulate.methods import get_method
    from mfmdp.simulate.runner import make_replay_for, simulate_method

    steps = prepared.steps
    t0 = first_signal_step(steps, cfg.simulation.warmup_steps, span)
    if t0 is None:
        return None
    spec = get_method(method)
    agent = ~steps.is_signal
    before, start, end = int(steps.bounds[t0 - span]), int(steps.bounds[t0]), int(steps.bounds[t0 + span])
    with_replay = make_replay_for(cfg, prepared, models.encoder)
    without_replay = make_replay_for(cfg, replace(prepared, steps=without_signals_at(steps, t0)), models.encoder)
    effects = []
    for seed in seeds:
        kept, _ = simulate_method(cfg, spec, with_replay, models, seed)
        removed, _ = simulate_method(cfg, spec, without_replay, models, seed)
        effects.append(net_polarity(kept, agent, start, end) - net_polarity(removed, agent, start, end))
    real = prepared.labels
    return {"event": prepared.event.id, "signal_step": t0, "signals": len(steps.signals[t0]),
            "real_shift": net_polarity(real, agent, start, end) - net_polarity(real, agent, before, start),
            "simulated_effect": float(np.nanmean(effects)), "effect_per_seed": [float(e) for e in effects]}


def correlation(rows: list[dict], n_boot: int = 10_000, seed: int = 0) -> dict:
    """Pearson r of simulated effect against real shift over events, with a bootstrap 95% CI."""
    x = np.array([r["simulated_effect"] for r in rows], dtype=np.float64)
    y = np.array([r["real_shift"] for r in rows], dtype=np.float64)
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    out = {"events": int(ok.sum()), "r": float("nan"), "r_lo": float("nan"), "r_hi": float("nan"),
           "mean_abs_effect": float(np.mean(np.abs(x))) if len(x) else float("nan")}
    if len(x) < 3 or np.std(x) == 0 or np.std(y) == 0:
        return out
    out["r"] = float(np.corrcoef(x, y)[0, 1])
    rng = np.random.default_rng(seed)
    boots = []
    for _ in range(n_boot):
        i = rng.integers(0, len(x), len(x))
        if np.std(x[i]) > 0 and np.std(y[i]) > 0:
            boots.append(np.corrcoef(x[i], y[i])[0, 1])
    out["r_lo"], out["r_hi"] = (float(v) for v in np.percentile(boots, [2.5, 97.5]))
    return out


def run_event_study(run, side: str = "validation", method: str = "mf_mdp", seeds: Sequence[int] = (0, 1),
                    span: int = STUDY_STEPS, max_events: int | None = None, progress: bool = True) -> dict:
    """The event study on a side of the run's split (never its training events); returns it and stores it
    under the method's name and the side in RUN_DIR/whatif_validity.json (every other entry is kept)."""
    from rich.progress import Progress

    from mfmdp.data.split import load_split
    from mfmdp.simulate.prepare import load_events, prepare_events, side_events, steps_for

    cfg = run.cfg
    events = side_events(cfg, load_split(run.root / "split.json"), load_events(cfg, progress=progress), side)
    with_signal = [e for e in events
                   if first_signal_step(steps_for(cfg, e), cfg.simulation.warmup_steps, span) is not None]
    chosen = with_signal[:max_events] if max_events else with_signal
    prepared = prepare_events(cfg, chosen, run.models.annotator, run.models.encoder, run.cache, progress=progress)
    rows = []
    with Progress(disable=not progress, transient=True) as bar:
        task = bar.add_task("event study", total=len(prepared))
        for p in prepared:
            row = study_event(cfg, p, run.models, method, seeds, span)
            if row is not None:
                rows.append(row)
            bar.update(task, advance=1)
    result = {"method": method, "side": side, "seeds": list(seeds), "steps": span,
              "events_on_side": len(events), "events_with_signal": len(with_signal),
              **correlation(rows), "rows": rows}
    stored = load_validity(run.root)
    stored[method] = {**stored.get(method, {}), side: result}
    atomic_write_json(Path(run.root) / VALIDITY_FILE, stored, indent=1)
    return result


def load_validity(run_dir: str | Path) -> dict:
    """method -> side -> its event study, as stored in RUN_DIR/whatif_validity.json ({} when there is
    none). Files written before the side was a key (method -> one study) are read as that study's side."""
    path = Path(run_dir) / VALIDITY_FILE
    stored = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    return {m: {entry["side"]: entry} if "side" in entry else entry for m, entry in stored.items()}


def validity_line(results: dict, method: str) -> str:
    """For `mfmdp simulate`: how far this run's what-ifs of `method` can be trusted (a line per checked
    side, validation first), or how to find out."""
    sides = results.get(method)
    if not sides:
        return (f"what-if validity: not measured for {method!r} in this run (`mfmdp whatif-check RUN_DIR "
                f"--method {method}` correlates the simulated effect of real signals with the real shift around "
                "them on held-out events)")
    return "\n".join(_side_line(sides[side]) for side in sorted(sides, key=lambda s: s != "validation"))


def _side_line(result: dict) -> str:
    if not np.isfinite(result["r"]):
        return (f"what-if validity: undefined on {result['events']} held-out {result['side']} event(s) with a "
                f"signal (too few, or no simulated effect): treat the effect below as unvalidated")
    return (f"what-if validity: r = {result['r']:+.2f} [{result['r_lo']:+.2f}, {result['r_hi']:+.2f}] between "
            f"simulated signal effects and real shifts on {result['events']} held-out {result['side']} events")
