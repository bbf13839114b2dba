"""`mfmdp run experiment.yaml`: data -> annotate -> train -> simulate every method -> evaluate -> report.

The stages compose the packages left to right (data, annotate, transition, policy, simulate,
evaluate); nothing here is method logic. Trained models, label and embedding caches and every
simulated run are written under the results directory as they are produced, so an interrupted run
resumes without redoing finished work, and `--test-data` reuses the trained models on other events.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from pathlib import Path

import numpy as np

from mfmdp.core.atomic import atomic_write_json
from mfmdp.simulate.config import ConfigError, ExperimentConfig
from mfmdp.simulate.coupling import CALIBRATION_MARKER, calibration_dir, calibration_events
from mfmdp.simulate.methods import MethodSpec, get_method
from mfmdp.simulate.models import (Models, agent_specs, check_models, needed_transitions, reuse_models,
                                   synopsis_factory, train_policy, train_transition)
from mfmdp.simulate.prepare import evaluation_subset, prepare_sides, select_sides
from mfmdp.simulate.results import RunDir, labels_frame, sim_frame, tree_hash, write_manifest
from mfmdp.simulate.runner import make_replay_for, policy_nll, run_tasks
from mfmdp.simulate.stages import EVERYTHING, check_marker, record_config, stage_record

log = logging.getLogger(__name__)


class StageClock:
    """Wall seconds and peak memory per stage of a run (written to the manifest)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.peak_mb: dict[str, float] = {}
        self._start = time.perf_counter()

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.seconds[name] = round(self.seconds.get(name, 0.0) + now - self._start, 2)
        self.peak_mb[name] = max(self.peak_mb.get(name, 0.0), take_peak_rss_mb())
        self._start = now


def take_peak_rss_mb() -> float:
    """Peak resident memory (MB) of this process since the last call: Linux's VmHWM, then reset
    through /proc/self/clear_refs so the next stage gets its own peak. NaN where /proc is absent."""
    try:
        status = Path("/proc/self/status").read_text()
        peak = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM:")) / 1024
    except (OSError, StopIteration, ValueError):
        return float("nan")
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass  # not resettable: later stages report the running peak, still an upper bound
    return round(peak, 1)


EVENTS_RECORD = "events.json"  # the config record of everything under events/


def check_resume(cfg: ExperimentConfig, out: Path) -> None:
    """Before any work: refuse (ResumeRefused) when `out` holds finished models or simulations that
    this run would reuse but that were made with another config."""
    check_models(cfg, out)
    check_marker(out / EVENTS_RECORD, cfg, str(out / "events"))
    check_marker(calibration_dir(out) / CALIBRATION_MARKER, cfg, str(calibration_dir(out)))


def claim_events(cfg: ExperimentConfig, out: Path) -> None:
    """Record the config that the simulations under events/ are made with, before the first one."""
    if (out / EVENTS_RECORD).exists():
        return  # same config: check_resume refuses any other
    events = out / "events"
    if events.is_dir() and any(events.iterdir()):
        log.warning("%s has no config record (made by an older mfmdp): reused as it is", events)
        return
    atomic_write_json(out / EVENTS_RECORD, {"stage": stage_record(cfg, EVERYTHING)})


def mark_done(rd: RunDir, event_id: str, cfg: ExperimentConfig, specs: list[MethodSpec]) -> None:
    """done.json: which methods and seeds the event's simulations cover (rewritten when they grow)."""
    done = {"methods": [s.name for s in specs], "seeds": cfg.simulation.seeds}
    if rd.read_done(event_id) != done:
        rd.write_done(event_id, done)


def require_inputs(cfg: ExperimentConfig, test_data: str | None) -> None:
    """Before any work: the files and folders the config names exist (one line naming the key)."""
    paths = {"data.path": cfg.data.path, "data.split": cfg.data.split, "data.scenario": cfg.data.scenario,
             "--test-data": test_data}
    if cfg.annotator.kind == "distilled":
        paths["annotator"] = cfg.annotator.path
    if cfg.encoder.kind == "hf":
        paths["encoder"] = cfg.encoder.path
    if cfg.policy_backend == "hf":
        paths.update({f"policy_checkpoints.{m}": d for m, d in cfg.policy_checkpoints.items()})
    for key, path in paths.items():
        if path and not Path(path).exists():
            raise ConfigError(f"{key}: {path} does not exist")


def coupling_record(cfg, out: Path, coupling) -> dict | None:
    """The manifest's `coupling`: the (w, half-life) used and, when calibrated, on how many events."""
    if coupling is None:
        return None
    record = {"evidence_weight": coupling[0], "evidence_half_life": coupling[1]}
    if cfg.simulation.evidence_weight == "calibrate":
        record["calibration_events"] = calibration_events(out)
    return record


def log_evaluation(out: Path, side: str, event_ids: list[str]) -> None:
    """Append one line per scored report: how often the test side was looked at is part of the protocol."""
    line = {"time": time.strftime("%Y-%m-%dT%H:%M:%S"), "side": side, "events": len(event_ids),
            "events_sha256": hashlib.sha256("\n".join(event_ids).encode()).hexdigest()[:16]}
    with open(out / "evaluations.jsonl", "a", encoding="utf-8") as f:
        f.write(json.dumps(line) + "\n")


def run_experiment(cfg: ExperimentConfig, out: str | Path, test_data: str | None = None, progress: bool = True,
                   models_from: str | Path | None = None) -> Path:
    """Run (or resume) an experiment into `out`; returns the report path. `cfg.data.evaluate_on` picks
    the scored side (validation while developing); `models_from` reuses another run's trained models.
    Missing inputs and a results directory made with another config are refused first (ConfigError)."""
    out = Path(out)
    require_inputs(cfg, test_data)
    out.mkdir(parents=True, exist_ok=True)
    rd = RunDir(out)
    if models_from is not None:
        reuse_models(Path(models_from), out, cfg)
    check_resume(cfg, out)
    if not (out / "config.yaml").exists():
        record_config(cfg, out)

    from rich.progress import Progress

    from mfmdp.data.split import save_split
    from mfmdp.evaluate.calibration import resolve_coupling
    from mfmdp.evaluate.report import write_report
    from mfmdp.evaluate.reversal import fit_reversal_thresholds
    from mfmdp.simulate import floors
    from mfmdp.simulate.scenario import signal_coverage

    clock = StageClock()
    split, sides = select_sides(cfg, test_data=test_data, progress=progress)
    save_split(split, out / "split.json")
    scored_side = "test" if test_data is not None else cfg.data.evaluate_on
    clock.lap("load")
    if not sides[scored_side]:
        raise ValueError(f"no {scored_side} events (after the split and the min_responses filter)")
    if not sides["train"]:
        raise ValueError("no training events (after the split and the min_responses filter)")

    cache = out / "cache"
    prep = prepare_sides(cfg, split, sides, cache, progress)
    prepared, encoder = prep.sides, prep.encoder
    clock.lap("annotate+encode")

    specs = agent_specs(cfg)
    transitions = {flag: train_transition(cfg, prepared["train"], prepared["validation"], encoder, flag, out)
                   for flag in sorted(needed_transitions(specs), reverse=True)}
    clock.lap("train_transition")
    policies = {}
    for spec in specs:
        if spec.floor is None and spec.policy_key not in policies:
            policies[spec.policy_key] = train_policy(cfg, spec, prepared["train"], encoder,
                                                     transitions.get(spec.lct_state), out)
    clock.lap("train_policy")

    train_replays = [make_replay_for(cfg, p, encoder) for p in prepared["train"]]
    regression = floors.RegressionFloor(window=cfg.evaluation.window).fit(train_replays, [p.labels for p in prepared["train"]])
    thresholds = fit_reversal_thresholds(
        [p.labels.codes["state"][floors.scored_slots(r)] for p, r in zip(prepared["train"], train_replays)],
        cfg.evaluation.window)
    thresholds.save(out / "reversal_thresholds.json")
    llm_summariser = cfg.summariser.kind == "llm"
    models = Models(encoder, prep.annotator, transitions, policies, regression, synopsis_factory(cfg, cache))
    models.coupling = resolve_coupling(cfg, prepared["validation"], models, out, progress)
    clock.lap("calibrate")

    scored = evaluation_subset(prepared[scored_side], cfg.data.evaluate_subset)
    replays = {p.event.id: make_replay_for(cfg, p, encoder) for p in scored}
    by_id = {p.event.id: p for p in scored}
    claim_events(cfg, out)
    for eid, p in by_id.items():
        if not rd.real_path(eid).exists():
            rd.write_real(eid, labels_frame(p.labels, p.steps.step_of(), p.steps.is_signal,
                                            replays[eid].warmup_slots))
    # by file, not by done.json: methods and seeds added to a finished run are simulated too
    tasks = [(eid, s.name, seed) for eid in by_id for s in specs
             for seed in cfg.simulation.seeds if not rd.sim_path(eid, s.name, seed).exists()]
    pending = {eid: sum(1 for t in tasks if t[0] == eid) for eid in by_id}
    nll_cache: dict[tuple, np.ndarray] = {}
    if tasks:
        record_config(cfg, out)
    clock.lap("prepare_simulation")
    with Progress(disable=not progress, transient=False) as bar:
        task = bar.add_task("simulating", total=len(tasks))
        for (eid, method, seed), (labels, traj) in run_tasks(cfg, tasks, replays, models):
            spec = get_method(method)
            nll = np.full(len(by_id[eid].event), np.nan)
            if spec.floor is None:
                key = (eid, spec.policy_key, spec.lct_state)
                if key not in nll_cache:
                    nll_cache[key] = policy_nll(cfg, spec, by_id[eid], models)
                nll = nll_cache[key]
            p = by_id[eid]
            frame = sim_frame(labels, p.steps.step_of(), p.steps.is_signal, replays[eid].warmup_slots, traj, nll)
            rd.write_sim(eid, method, seed, frame, traj)
            pending[eid] -= 1
            if pending[eid] == 0:
                mark_done(rd, eid, cfg, specs)
            bar.update(task, advance=1, description=f"{method} {eid} seed {seed}")
    for eid in by_id:
        mark_done(rd, eid, cfg, specs)
    clock.lap("simulate")

    data_paths = [Path(p) for p in (cfg.data.path, test_data) if p]
    write_manifest(
        out, cfg.model_dump(mode="json"), cfg.simulation.seeds,
        data_hash=tree_hash(data_paths) if data_paths else f"synthetic:{cfg.data.synthetic.model_dump_json()}",
        checkpoints={str(d.relative_to(out)): tree_hash([d]) for d in sorted((out / "models").glob("*")) if d.is_dir()},
        extra={
            "split": {k: [p.event.id for p in v] for k, v in prepared.items()},
            "evaluated_side": scored_side,
            "annotator": str(cfg.annotator),
            "llm_summariser": llm_summariser,
            "policy_backend": cfg.policy_backend,
            # the (w, half-life) used, calibrated when the config says so
            "coupling": coupling_record(cfg, out, models.coupling),
            "display_names": {s.name: get_method(s.name, llm_summariser).display for s in specs},
            "stage_seconds": clock.seconds,
            "stage_peak_rss_mb": clock.peak_mb,  # this process only (Ray workers not included)
            # read by scenarios: a model that never saw a signal cannot react to an injected one
            "signals_seen": signal_coverage([p.steps for p in prepared["train"]]),
        },
    )
    report = write_report(out, thresholds=thresholds, window=cfg.evaluation.window)
    log_evaluation(out, scored_side, sorted(by_id))
    clock.lap("evaluate")
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["stage_seconds"] = clock.seconds
    manifest["stage_peak_rss_mb"] = clock.peak_mb
    atomic_write_json(out / "manifest.json", manifest)
    record_config(cfg, out)
    return report
