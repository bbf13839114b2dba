"""What-if scenarios, the simulation side: inject exogenous signals into an event and simulate it
with and without them.

    run = load_trained(RUN_DIR)                       # config + models trained by `mfmdp run`
    outcome = simulate_event(run, event, signals, method="mf_mdp", seeds=[0, 1, 2])

For every event the same method is simulated twice per seed with the same models and seed: once on
the event as it is (baseline) and once with the scenario's signals added to the steps they fall in
(`make_steps(..., scenario=...)` -> Steps.signals -> the Schedule's c_t and StepContext.signal).
Both runs consume the random stream identically until the first injected step, so any difference
is the signals' effect (plus the chaos they start). The batch over events and seeds, its files
(OUT/baseline and OUT/scenario, run directories in the layout of mfmdp.simulate.results), the
summary and the plot are mfmdp.evaluate.whatif's `run_scenario`.

A scenario never modifies the run it reads: OUT may not be the run or lie inside the run's own
files and folders (`check_out`), and the label/embedding/LLM caches are read from a copy of
RUN_DIR/cache made in OUT/cache (or a temporary folder) the first time.

A scenario can only move what the models learned to read: when no training step carried a signal
(e.g. CHECKED has no profiles, so no account is a designated source and c_t is always empty), the
learned weights on c_t are untrained and the counterfactual is noise; that is warned about loudly.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Sequence

import numpy as np

from mfmdp.core.schema import Labels
from mfmdp.annotate.registry import AnnotatorSpec, parse_annotator_spec
from mfmdp.data.cache import is_within
from mfmdp.core.records import Event, Signal
from mfmdp.data.stepping import Steps
from mfmdp.simulate.results import SCENARIO_TREES

log = logging.getLogger(__name__)

# what `mfmdp run` writes in a results directory: a scenario writes none of these, nor inside them
RUN_OWNED = ("config.yaml", "manifest.json", "split.json", "summary.json", "metrics.csv", "report.md",
             "report.html", "reversal_thresholds.json", "evaluations.jsonl", "events", "models", "cache",
             "plots", "tables")
SCENARIO_OUTPUTS = (*SCENARIO_TREES, "plots", "summary.json", "manifest.json")
# how far outside an event's first..last response a signal may lie (further: a wrong date or event)
SIGNAL_SLACK = timedelta(days=1)


# --- never write into the source run ------------------------------------------------------------
def refuse_run_overlap(run_root: Path, targets: Sequence[Path], what: str) -> None:
    """ValueError when a path we are about to write is a file or folder of the run (or holds the run)."""
    root = Path(run_root).resolve()
    owned = [root / name for name in RUN_OWNED]
    for target in targets:
        t = Path(target).resolve()
        if is_within(root, t) or any(is_within(t, o) for o in owned):
            where = "holds" if is_within(root, t) else "is part of"
            raise ValueError(f"{what} would write {target}, which {where} the source run {run_root}; a "
                             "scenario never modifies the run it reads: give another folder (a new subfolder "
                             "of the run, e.g. RUN_DIR/scenarios/NAME, is fine)")


def check_out(run_root: Path, out: Path) -> None:
    """Refuse an OUT whose summary, manifest, run trees or plots would land in the source run."""
    refuse_run_overlap(run_root, [Path(out) / name for name in SCENARIO_OUTPUTS], f"--out {out}")


def scenario_cache(run_root: Path, cache_dir: Path | None) -> tuple[Path, object]:
    """The cache folder a scenario writes (never RUN_DIR/cache): `cache_dir`, or a temporary folder,
    started as a copy of the run's cache (copied, not linked: SQLite caches change files in place).
    Returns (folder, the TemporaryDirectory to keep alive or None)."""
    holder = None
    if cache_dir is None:
        holder = tempfile.TemporaryDirectory(prefix="mfmdp-scenario-cache-")
        cache_dir = Path(holder.name)
    cache_dir = Path(cache_dir)
    refuse_run_overlap(run_root, [cache_dir], f"the cache folder {cache_dir}")
    source = Path(run_root) / "cache"
    if source.is_dir() and not (cache_dir.is_dir() and any(cache_dir.iterdir())):
        shutil.copytree(source, cache_dir, dirs_exist_ok=True)
    return cache_dir, holder


# --- signal coverage of training ----------------------------------------------------------------
def signal_coverage(steps_list: Sequence[Steps]) -> dict:
    """How many training steps carried an exogenous signal (c_t non-zero): recorded in the manifest
    at training time as `signals_seen`, read back by scenarios."""
    total = sum(len(s) for s in steps_list)
    with_signal = sum(sum(1 for sig in s.signals if sig) for s in steps_list)
    events = sum(1 for s in steps_list if any(s.signals))
    return {"train_steps": int(total), "train_steps_with_signals": int(with_signal),
            "train_events_with_signals": int(events), "train_events": len(steps_list)}


def coverage_warning(coverage: dict | None) -> str | None:
    if coverage is None:
        return ("cannot tell whether the trained models ever saw a signal (the run's manifest has no "
                "'signals_seen'): treat the scenario's effect with suspicion")
    if coverage.get("train_steps_with_signals", 0) == 0:
        return ("the trained models never saw an exogenous signal: no training step had a non-empty c_t "
                f"({coverage.get('train_steps', 0)} steps in {coverage.get('train_events', 0)} events; e.g. data "
                "without profiles has no designated source accounts). The weights that read c_t are "
                "untrained, so the scenario's effect is noise, not a prediction")
    return None


# --- the trained run ----------------------------------------------------------------------------
@dataclass
class TrainedRun:
    """A results directory's config, trained models and training facts, ready to simulate."""

    root: Path
    cfg: object  # ExperimentConfig
    models: object  # mfmdp.simulate.models.Models
    signals_seen: dict | None
    warnings: list[str] = field(default_factory=list)
    cache: Path | None = None  # label/embedding caches this scenario reads and writes (not RUN_DIR/cache)
    _cache_holder: object = field(default=None, repr=False)  # keeps a temporary cache folder alive


def load_trained(run_dir: str | Path, methods: Sequence[str] = ("mf_mdp",),
                 annotator: str | AnnotatorSpec | None = None,
                 cache_dir: str | Path | None = None) -> TrainedRun:
    """Load RUN_DIR/config.yaml and the checkpoints under RUN_DIR/models needed by `methods`.
    `annotator` overrides the run's (e.g. models trained on synthetic ground truth, "truth", applied
    to real events that need the offline annotator for their warm-up labels). Caches are written to
    `cache_dir` (default: a temporary folder), started from a copy of RUN_DIR/cache; the run is only read."""
    import json

    from mfmdp.simulate.config import load_config
    from mfmdp.simulate.methods import get_method
    from mfmdp.simulate.models import load_models
    from mfmdp.simulate.prepare import get_parts

    root = Path(run_dir)
    if not (root / "config.yaml").is_file():
        raise FileNotFoundError(f"{root}: not a results directory of `mfmdp run` (config.yaml is missing)")
    cfg = load_config(root / "config.yaml")
    if annotator is not None:
        cfg = cfg.model_copy(update={"annotator": parse_annotator_spec(annotator) if isinstance(annotator, str)
                                         else annotator})
    for name in methods:
        spec = get_method(name)
        if spec.floor is not None and not spec.floor.reads_signals:
            raise ValueError(f"method {name!r} is a floor that never reads exogenous signals; a scenario "
                             "needs an agent method or transition_only")
    cache, cache_holder = scenario_cache(root, Path(cache_dir) if cache_dir is not None else None)
    encoder, labeller = get_parts(cfg, cache)
    models = load_models(cfg, root, methods, encoder, labeller, cache)
    policies = models.policies
    coverage = None
    manifest = root / "manifest.json"
    if manifest.is_file():
        coverage = json.loads(manifest.read_text(encoding="utf-8")).get("signals_seen")
    if coverage is None:  # a run from before `signals_seen` was recorded: recount from its split
        coverage = recount_coverage(root, cfg)
    warnings = []
    for name in methods:
        spec = get_method(name)
        policy = policies.get(spec.policy_key)
        inputs = getattr(getattr(policy, "config", None), "inputs", None)
        if inputs is not None and not inputs.use_signals:
            warnings.append(f"method {name!r}: its policy was trained without the signal input c_t; only "
                            "f_psi's forecast can react to the scenario")
    return TrainedRun(root, cfg, models, coverage, warnings, cache, cache_holder)


def recount_coverage(root: Path, cfg) -> dict | None:
    """`signal_coverage` of a run's training events, recounted from RUN_DIR/split.json and the data
    (None when the split or the data cannot be read back)."""
    from mfmdp.data.split import load_split
    from mfmdp.simulate.prepare import load_events, side_events, steps_for

    try:
        train = side_events(cfg, load_split(root / "split.json"), load_events(cfg), "train")
        steps = [steps_for(cfg, e) for e in train]
    except (OSError, ValueError) as err:
        log.warning("could not recount the training signals of %s: %s", root, err)
        return None
    return signal_coverage(steps) if steps else None


# --- one event, baseline and scenario -----------------------------------------------------------
def scenario_steps(cfg, event: Event, signals: Sequence[Signal]) -> Steps:
    from mfmdp.simulate.prepare import steps_for

    return steps_for(cfg, event, scenario=list(signals))


def check_signal_times(event: Event, signals: Sequence[Signal]) -> None:
    """ValueError naming the event's time range when a signal lies more than SIGNAL_SLACK outside it."""
    times = event.table.times
    first, last = (datetime.fromtimestamp(float(t), tz=timezone.utc) for t in (times[0], times[-1]))
    for sig in signals:
        if not first - SIGNAL_SLACK <= sig.time <= last + SIGNAL_SLACK:
            raise ValueError(f"event {event.id!r}: the signal at {sig.time.isoformat()} lies outside the event's "
                             f"time range {first.isoformat()} .. {last.isoformat()} (a signal may lie at most "
                             f"{SIGNAL_SLACK.days} day outside it); check its date, or pick the event it is about "
                             "with --event")


def placement(steps: Steps, signals: Sequence[Signal], warmup_steps: int, event: Event) -> tuple[list[dict], list[str]]:
    """Where each injected signal lands (step, hours after the first response) and warnings for
    signals that fall in the warm-up (replayed, so only later forecasts can react) or past the end."""
    ends = np.asarray(steps.end_times, float)
    first = float(event.table.times[0])
    rows, warnings = [], []
    for sig in signals:
        ts = sig.time.timestamp()
        t = int(min(np.searchsorted(ends, ts, side="left"), len(ends) - 1))
        rows.append({"time": sig.time.isoformat(), "source": sig.source, "text": sig.text, "step": t,
                     "hours": (ts - first) / 3600.0})
        if t < warmup_steps:
            warnings.append(f"event {event.id!r}: the signal at {sig.time.isoformat()} falls in the warm-up "
                            f"(step {t} < {warmup_steps}); the warm-up is replayed, so it acts only through "
                            "later forecasts")
        if ts > ends[-1]:
            warnings.append(f"event {event.id!r}: the signal at {sig.time.isoformat()} is after the event's last "
                            "response; it is attached to the last step")
    return rows, warnings


@dataclass
class EventOutcome:
    event_id: str
    real: Labels
    baseline: dict[int, Labels]  # seed -> labels of every slot
    scenario: dict[int, Labels]
    times: np.ndarray  # float64 [n] unix seconds of every slot
    agent: np.ndarray  # bool [n] non-signal slots (what the crowd did)
    warmup_slots: int
    bounds: np.ndarray  # int64 [T+1] step bounds (the same with and without the scenario)
    injected: list[dict]


def simulate_event(run: TrainedRun, event: Event, signals: Sequence[Signal], method: str, seeds: Sequence[int],
                   prepared=None, write=None) -> EventOutcome:
    """Baseline and scenario runs of one event for every seed. `write(kind, seed, labels, traj,
    prepared, replay)` (optional) stores each run as it finishes."""
    from mfmdp.simulate.methods import get_method
    from mfmdp.simulate.prepare import prepare_events
    from mfmdp.simulate.runner import make_replay_for, simulate_method

    cfg, models = run.cfg, run.models
    check_signal_times(event, signals)
    if prepared is None:
        prepared = prepare_events(cfg, [event], models.annotator, models.encoder, run.cache)[0]
    spec = get_method(method)
    base_replay = make_replay_for(cfg, prepared, models.encoder)
    injected_steps = scenario_steps(cfg, prepared.event, signals)
    scen_prepared = replace(prepared, steps=injected_steps)
    scen_replay = make_replay_for(cfg, scen_prepared, models.encoder)
    injected, _ = placement(injected_steps, signals, cfg.simulation.warmup_steps, prepared.event)
    out = EventOutcome(event.id, prepared.labels, {}, {}, prepared.event.table.times.copy(),
                       ~prepared.steps.is_signal, base_replay.warmup_slots,
                       prepared.steps.bounds.copy(), injected)
    for seed in seeds:
        for kind, p, replay, store in (("baseline", prepared, base_replay, out.baseline),
                                       ("scenario", scen_prepared, scen_replay, out.scenario)):
            if kind == "scenario" and not signals:
                continue
            labels, traj = simulate_method(cfg, spec, replay, models, seed)
            store[seed] = labels
            if write is not None:
                write(kind, seed, labels, traj, p, replay)
    return out


def prepare_for_run(run: TrainedRun, events: Sequence[Event]) -> list:
    """The events' labels, steps and embeddings with the run's annotator, encoder and caches, in one
    batch (before any simulation: an event that cannot be labelled stops the batch before it starts)."""
    from mfmdp.simulate.prepare import prepare_events

    return prepare_events(run.cfg, list(events), run.models.annotator, run.models.encoder, run.cache)
