"""What-if scenarios, the batch: every event with and without the injected signals, for every seed.

    run = load_trained(RUN_DIR)                       # mfmdp.simulate.scenario: config + trained models
    summary = run_scenario(run, events, signals, method="mf_mdp", seeds=[0, 1, 2], out=OUT)

The simulation of one event (baseline and scenario, paired by seed) is mfmdp.simulate.scenario's
`simulate_event`; this module writes its results in the run-directory layout of
mfmdp.simulate.results (OUT/baseline and OUT/scenario are run directories: `mfmdp evaluate
OUT/baseline` scores them), summarises the effect of the signals (`effect_summary`) and plots it
(mfmdp.evaluate.plots.scenario_plot):

    OUT/baseline/events/<slug>/real.parquet, sim__<method>__seed<k>.parquet, trajectory__<method>__seed<k>.parquet
    OUT/baseline/manifest.json
    OUT/scenario/...                     (the same, with the signals; only when there are signals)
    OUT/plots/<slug>__<method>.png, OUT/summary.json, OUT/manifest.json
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from mfmdp.core.atomic import atomic_write_json
from mfmdp.core.records import Event, Signal
from mfmdp.evaluate.eventstudy import net_polarity
from mfmdp.evaluate.plots import scenario_plot
from mfmdp.evaluate.windows import SEED_BAND
from mfmdp.simulate.results import (SCENARIO_TREES, RunDir, labels_frame, scenario_plot_file, sim_frame, tree_hash,
                                    write_manifest)
from mfmdp.simulate.scenario import (EventOutcome, TrainedRun, check_out, check_signal_times, coverage_warning,
                                     placement, prepare_for_run, scenario_steps, simulate_event)

log = logging.getLogger(__name__)


def effect_summary(outcome: EventOutcome) -> dict:
    """Net polarity (positive - negative share) of the crowd's responses from the first injected
    step on (never before the end of the warm-up): real, baseline, scenario and the paired per-seed
    difference scenario - baseline (mean and 10-90 % over seeds)."""
    out: dict = {"event": outcome.event_id, "seeds": sorted(outcome.baseline), "injected": outcome.injected}
    if not outcome.scenario or not outcome.injected:
        return out
    first_step = min(s["step"] for s in outcome.injected)
    start = max(outcome.warmup_slots, int(outcome.bounds[first_step]))
    seeds = sorted(outcome.scenario)
    base = np.array([net_polarity(outcome.baseline[s], outcome.agent, start) for s in seeds])
    scen = np.array([net_polarity(outcome.scenario[s], outcome.agent, start) for s in seeds])
    diff = scen - base
    lo, hi = SEED_BAND
    out.update(
        from_slot=start,
        responses_compared=int(np.sum(outcome.agent[start:])),
        net_polarity_real=net_polarity(outcome.real, outcome.agent, start),
        net_polarity_baseline=float(np.mean(base)),
        net_polarity_scenario=float(np.mean(scen)),
        effect_mean=float(np.mean(diff)),
        effect_p10=float(np.percentile(diff, lo)),
        effect_p90=float(np.percentile(diff, hi)),
        effect_per_seed={int(s): float(d) for s, d in zip(seeds, diff)},
        # same seed, same models: nothing may differ before the first injected step
        identical_before_injection=bool(all(
            np.array_equal(outcome.baseline[s].codes["state"][:start], outcome.scenario[s].codes["state"][:start])
            for s in seeds)),
    )
    return out


def run_scenario(run: TrainedRun, events: Sequence[Event], signals: Sequence[Signal], out: str | Path,
                 method: str = "mf_mdp", seeds: Sequence[int] = (0, 1, 2), progress: bool = True) -> dict:
    """Simulate every event with and without `signals` for every seed; write the run directories
    OUT/baseline and (with signals) OUT/scenario (events/<slug>/real.parquet, sim__<method>__seed<k>.parquet,
    trajectory__<method>__seed<k>.parquet; manifest.json), OUT/plots/<slug>__<method>.png,
    OUT/summary.json and OUT/manifest.json. Returns the summary."""
    import torch
    from rich.progress import Progress

    from mfmdp.simulate.methods import get_method

    out = Path(out)
    check_out(run.root, out)
    cfg = run.cfg
    spec = get_method(method, llm_summariser=cfg.summariser.kind == "llm")
    # one run directory per kind of run simulate_event makes ("baseline", and "scenario" with signals)
    trees = {kind: RunDir(out / kind) for kind in SCENARIO_TREES if kind == "baseline" or signals}
    warnings = list(run.warnings)
    w = coverage_warning(run.signals_seen)
    if w and signals:
        warnings.append(w)
    long_enough = [e for e in events if len(e) > cfg.data.step_size * (cfg.simulation.warmup_steps + 1)]
    if not long_enough:
        raise ValueError(f"no event is longer than the warm-up ({cfg.simulation.warmup_steps} steps of "
                         f"{cfg.data.step_size} responses)")
    for e in events:
        if e not in long_enough:
            warnings.append(f"event {e.id!r}: {len(e)} responses do not outlast the warm-up; skipped")
    for e in long_enough:  # before any annotation or simulation
        check_signal_times(e, signals)
    torch.set_num_threads(cfg.executor.torch_threads)
    prepared = prepare_for_run(run, long_enough)
    for p in prepared:
        _, placed_warnings = placement(scenario_steps(cfg, p.event, signals), signals, cfg.simulation.warmup_steps,
                                       p.event) if signals else ([], [])
        warnings.extend(placed_warnings)
    for msg in warnings:
        log.warning(msg)

    def writer(event_id: str):
        def write(kind, seed, labels, traj, p, replay):
            frame = sim_frame(labels, p.steps.step_of(), p.steps.is_signal, replay.warmup_slots, traj)
            trees[kind].write_sim(event_id, method, seed, frame, traj)
        return write

    summaries, plots = [], []
    with Progress(disable=not progress, transient=False) as bar:
        task = bar.add_task("scenario", total=len(prepared))
        for p in prepared:
            bar.update(task, description=f"{method} {p.event.id} ({len(seeds)} seeds x {1 + bool(signals)} runs)")
            outcome = simulate_event(run, p.event, signals, method, seeds, prepared=p, write=writer(p.event.id))
            for rd in trees.values():  # the same real event is the reference of both runs
                rd.write_real(p.event.id, labels_frame(p.labels, p.steps.step_of(), p.steps.is_signal,
                                                       outcome.warmup_slots))
            summaries.append(effect_summary(outcome))
            plots.append(str(scenario_plot(outcome, spec.display, out / "plots" / scenario_plot_file(p.event.id, method),
                                           window=cfg.evaluation.window).relative_to(out)))
            bar.update(task, advance=1)
    summary = {
        "run_dir": str(run.root),
        "method": method,
        "display": spec.display,
        "seeds": list(seeds),
        "signals": [{"time": s.time.astimezone(timezone.utc).isoformat(), "source": s.source, "text": s.text}
                    for s in signals],
        "signals_seen_in_training": run.signals_seen,
        "warnings": warnings,
        "events": summaries,
        "plots": plots,
        "runs": list(trees),  # run directories under OUT, for `mfmdp evaluate OUT/<run>`
        "created": datetime.now(timezone.utc).isoformat(),
    }
    atomic_write_json(out / "summary.json", summary)
    checkpoints = {str(d.relative_to(run.root)): tree_hash([d])
                   for d in sorted((run.root / "models").glob("*")) if d.is_dir()}
    extra = {"run_dir": str(run.root), "method": method, "events": [p.event.id for p in prepared],
             "signals": summary["signals"]}
    for kind, rd in trees.items():
        write_manifest(rd.root, cfg.model_dump(mode="json"), list(seeds), data_hash="see run_dir manifest",
                       checkpoints=checkpoints,
                       extra={"kind": f"scenario {kind}", **extra, "display_names": {method: spec.display}})
    write_manifest(out, cfg.model_dump(mode="json"), list(seeds), data_hash="see run_dir manifest",
                   checkpoints=checkpoints, extra={"kind": "scenario", **extra, "runs": list(trees)})
    return summary
