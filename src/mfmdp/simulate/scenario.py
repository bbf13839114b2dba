"""What-if scenarios: inject exogenous signals into an event and compare with the baseline run.

    run = load_trained(RUN_DIR)                       # config + models trained by `mfmdp run`
    result = run_scenario(run, events, signals, method="mf_mdp", seeds=[0, 1, 2], out=OUT)

For every event the same method is simulated twice per seed with the same models and seed: once on
the event as it is (baseline) and once with the scenario's signals added to the steps they fall in
(`make_steps(..., scenario=...)` -> Steps.signals -> the Schedule's c_t and StepContext.signal).
Both runs consume the random stream identically until the first injected step, so any difference
is the signals' effect (plus the chaos they start). The comparison is a PNG with bands over seeds
(windowed net polarity and state shares: mean and 10-90 % band, baseline vs scenario, the real event
for reference, vertical markers at the injected times) and a JSON summary.

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

from mfmdp.core.schema import STATES, Labels
from mfmdp.data.cache import is_within
from mfmdp.core.records import Event, Signal
from mfmdp.data.stepping import Steps, make_steps

log = logging.getLogger(__name__)

SEED_BAND = (10, 90)  # percentiles of the band over seeds
# what `mfmdp run` writes in a results directory: a scenario writes none of these, nor inside them
RUN_OWNED = ("config.yaml", "manifest.json", "split.json", "summary.json", "metrics.csv", "report.md",
             "report.html", "reversal_thresholds.json", "evaluations.jsonl", "events", "models", "cache",
             "plots", "tables")
SCENARIO_OUTPUTS = ("events", "plots", "summary.json", "manifest.json")
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
    """Refuse an OUT whose summary, manifest, events or plots would land in the source run."""
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
    models: object  # mfmdp.experiment.Models
    signals_seen: dict | None
    warnings: list[str] = field(default_factory=list)
    cache: Path | None = None  # label/embedding caches this scenario reads and writes (not RUN_DIR/cache)
    _cache_holder: object = field(default=None, repr=False)  # keeps a temporary cache folder alive


def load_trained(run_dir: str | Path, methods: Sequence[str] = ("mf_mdp",), annotator: str | None = None,
                 cache_dir: str | Path | None = None) -> TrainedRun:
    """Load RUN_DIR/config.yaml and the checkpoints under RUN_DIR/models needed by `methods`.
    `annotator` overrides the run's (e.g. models trained on synthetic ground truth, "truth", applied
    to real events that need the offline annotator for their warm-up labels). Caches are written to
    `cache_dir` (default: a temporary folder), started from a copy of RUN_DIR/cache; the run is only read."""
    import json

    from mfmdp.annotate.registry import get_annotator
    from mfmdp.experiment import Models, policy_dir, synopsis_factory, train_policy, transition_dir
    from mfmdp.policy.neural import NeuralPolicy
    from mfmdp.simulate.config import load_config
    from mfmdp.simulate.methods import get_method
    from mfmdp.encoders import get_encoder
    from mfmdp.transition.model import EventTransformer

    root = Path(run_dir)
    if not (root / "config.yaml").is_file():
        raise FileNotFoundError(f"{root}: not a results directory of `mfmdp run` (config.yaml is missing)")
    cfg = load_config(root / "config.yaml")
    if annotator is not None:
        cfg = cfg.model_copy(update={"annotator": annotator})
    cache, cache_holder = scenario_cache(root, Path(cache_dir) if cache_dir is not None else None)
    encoder = get_encoder(cfg.encoder, cache_dir=str(cache / "embeddings"))
    labeller = None if cfg.annotator == "truth" else get_annotator(cfg.annotator, cache_dir=str(cache))
    transitions, policies = {}, {}
    for name in methods:
        spec = get_method(name)
        if spec.floor in ("persistence", "regression", "oracle"):
            raise ValueError(f"method {name!r} is a floor that never reads exogenous signals; a scenario "
                             "needs an agent method or transition_only")
        if spec.needs_transition and spec.lct_state not in transitions:
            d = transition_dir(root, spec.lct_state)
            if not (d / "training.json").is_file():
                raise FileNotFoundError(f"{d}: no trained transition model for {name!r} (run `mfmdp run` with "
                                        f"method {name!r} first)")
            transitions[spec.lct_state] = EventTransformer.load(d)
        if spec.floor is None and spec.policy_key not in policies and cfg.policy_backend != "neural":
            # LLM backends are loaded (adapter dir / endpoint from the config), never trained here
            policies[spec.policy_key] = train_policy(cfg, spec, [], encoder, transitions.get(spec.lct_state), root)
        if spec.floor is None and spec.policy_key not in policies:
            d = policy_dir(root, spec)
            if not (d / "trained.json").is_file():
                raise FileNotFoundError(f"{d}: no trained policy for {name!r} (run `mfmdp run` with method "
                                        f"{name!r} first)")
            policies[spec.policy_key] = NeuralPolicy.load(d, encoder=encoder)
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
    models = Models(encoder, labeller, transitions, policies, None, synopsis_factory=synopsis_factory(cfg, cache))
    return TrainedRun(root, cfg, models, coverage, warnings, cache, cache_holder)


def recount_coverage(root: Path, cfg) -> dict | None:
    """`signal_coverage` of a run's training events, recounted from RUN_DIR/split.json and the data
    (None when the split or the data cannot be read back)."""
    from mfmdp.data.split import load_split
    from mfmdp.experiment import load_events, signal_rule

    try:
        split = load_split(root / "split.json")
        train = split.select(load_events(cfg), "train")
        train = [e for e in train if len(e) >= cfg.data.min_responses]
        if cfg.data.max_events is not None:
            train = train[: cfg.data.max_events]
        steps = [make_steps(e, cfg.data.step_size, signal_rule=signal_rule(cfg)) for e in train]
    except (OSError, ValueError) as err:
        log.warning("could not recount the training signals of %s: %s", root, err)
        return None
    return signal_coverage(steps) if steps else None


# --- one event, baseline and scenario -----------------------------------------------------------
def scenario_steps(cfg, event: Event, signals: Sequence[Signal]) -> Steps:
    from mfmdp.experiment import signal_rule

    return make_steps(event, cfg.data.step_size, signal_rule=signal_rule(cfg), scenario=list(signals))


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
    from mfmdp.experiment import make_replay_for, prepare, simulate_method
    from mfmdp.simulate.methods import get_method

    cfg, models = run.cfg, run.models
    check_signal_times(event, signals)
    if prepared is None:
        prepared = prepare(cfg, [event], models.annotator, models.encoder, run.cache)[0]
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


# --- windowed series and the comparison ---------------------------------------------------------
def windowed_states(codes: np.ndarray, agent: np.ndarray, window: int, stride: int) -> tuple[np.ndarray, np.ndarray]:
    """(window centres as slot indices [W], state shares [W, S]) over the agents' slots with known
    states; windows of `window` agent slots every `stride`."""
    idx = np.flatnonzero(agent & (codes >= 0))
    S = len(STATES)
    if len(idx) == 0:
        return np.zeros(0), np.zeros((0, S))
    window = min(window, len(idx))
    starts = np.arange(0, len(idx) - window + 1, max(1, stride))
    onehot = np.zeros((len(idx), S))
    onehot[np.arange(len(idx)), codes[idx]] = 1.0
    csum = np.r_[np.zeros((1, S)), np.cumsum(onehot, axis=0)]
    shares = (csum[starts + window] - csum[starts]) / window
    centres = idx[starts + window // 2]
    return centres, shares


def band(runs: dict[int, Labels], agent: np.ndarray, window: int, stride: int) -> dict:
    """Mean and 10-90 % band over seeds of the windowed shares and net polarity (positive - negative)."""
    series = [windowed_states(lab.codes["state"], agent, window, stride) for lab in runs.values()]
    centres = series[0][0]
    shares = np.stack([s for _, s in series])  # [seeds, W, S]
    net = shares[..., 0] - shares[..., 2]
    lo, hi = SEED_BAND
    return {
        "centres": centres,
        "shares_mean": shares.mean(0), "shares_lo": np.percentile(shares, lo, 0), "shares_hi": np.percentile(shares, hi, 0),
        "net_mean": net.mean(0), "net_lo": np.percentile(net, lo, 0), "net_hi": np.percentile(net, hi, 0),
        "net_per_seed": net,
    }


def _net_after(lab: Labels, agent: np.ndarray, start: int) -> float:
    codes = lab.codes["state"][start:]
    ok = agent[start:] & (codes >= 0)
    if not ok.any():
        return float("nan")
    c = codes[ok]
    return float(np.mean(c == 0) - np.mean(c == 2))


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
    base = np.array([_net_after(outcome.baseline[s], outcome.agent, start) for s in seeds])
    scen = np.array([_net_after(outcome.scenario[s], outcome.agent, start) for s in seeds])
    diff = scen - base
    lo, hi = SEED_BAND
    out.update(
        from_slot=start,
        responses_compared=int(np.sum(outcome.agent[start:])),
        net_polarity_real=_net_after(outcome.real, outcome.agent, start),
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


def scenario_plot(outcome: EventOutcome, method_display: str, path: Path, window: int = 128,
                  stride: int | None = None) -> Path:
    """Net polarity and the three state shares along the event: real (dotted), baseline and scenario
    (mean over seeds with a 10-90 % band), warm-up shaded, signals as vertical lines.

    x is the response index (real events have long tails: months of stragglers after a day of
    activity, which a time axis squeezes into a corner); the top axis gives hours at those indices.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from mfmdp.evaluate.plots import plot_text

    n_agents = int(outcome.agent.sum())
    window = max(8, min(window, n_agents // 4 or 8))
    stride = stride or max(1, window // 4)
    slots = np.arange(len(outcome.times), dtype=float)
    hours = (outcome.times - float(outcome.times[0])) / 3600.0
    real_c, real_s = windowed_states(outcome.real.codes["state"], outcome.agent, window, stride)
    panels = [("net polarity (pos - neg)", None)] + [(f"{s} share", k) for k, s in enumerate(STATES)]
    fig = Figure(figsize=(10, 8.5), layout="constrained")
    axes = [fig.add_subplot(len(panels), 1, i + 1) for i in range(len(panels))]
    runs = [("baseline", outcome.baseline, "#1d3557")]
    if outcome.scenario:
        runs.append(("scenario", outcome.scenario, "#e76f51"))
    bands = {name: band(labs, outcome.agent, window, stride) for name, labs, _ in runs}
    for ax, (title, k) in zip(axes, panels):
        real_y = real_s[:, 0] - real_s[:, 2] if k is None else real_s[:, k]
        ax.plot(real_c, real_y, color="#6c757d", lw=1.2, ls=":", label="real")
        for name, labs, colour in runs:
            b = bands[name]
            mean, lo_, hi_ = ((b["net_mean"], b["net_lo"], b["net_hi"]) if k is None
                              else (b["shares_mean"][:, k], b["shares_lo"][:, k], b["shares_hi"][:, k]))
            ax.plot(b["centres"], mean, color=colour, lw=1.6, label=f"{name} (mean of {len(labs)} seeds)")
            ax.fill_between(b["centres"], lo_, hi_, color=colour, alpha=0.2, lw=0)
        ax.axvspan(0, outcome.warmup_slots, color="#adb5bd", alpha=0.25, lw=0)
        for slot in np.flatnonzero(~outcome.agent):  # signals already in the data
            ax.axvline(slot, color="#6c757d", lw=0.8, ls="-.")
        for sig in outcome.injected:
            ax.axvline(int(outcome.bounds[sig["step"]]), color="#d62828", lw=1.0, ls="--")
        ax.set_ylabel(title, fontsize=8)
        ax.set_ylim(-1.05, 1.05) if k is None else ax.set_ylim(0, 1)
        ax.set_xlim(0, len(slots))
        ax.tick_params(labelsize=7)
    top = axes[0].secondary_xaxis("top", functions=(lambda x: np.interp(x, slots, hours),
                                                    lambda h: np.interp(h, hours, slots)))
    at = hours[np.linspace(0, len(hours) - 1, 7).astype(int)]
    top.set_ticks(at, labels=[f"{h:.1f} h" if h < 48 else f"{h / 24:.0f} d" for h in at])
    top.set_xlabel("time since the first response", fontsize=7)
    top.tick_params(labelsize=6)
    axes[0].legend(fontsize=7, loc="best")
    axes[-1].set_xlabel("response index (shaded: warm-up replayed; red dashes: injected signals, at the start of "
                        "their step; grey dash-dots: signals in the data)", fontsize=8)
    title, font = plot_text(f"{outcome.event_id} - {method_display}: scenario vs baseline "
                            f"(windows of {window} responses, band = {SEED_BAND[0]}-{SEED_BAND[1]} % over seeds)")
    fig.suptitle(title, fontsize=9, **font)
    path.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(fig)
    fig.savefig(path, dpi=90, bbox_inches="tight")
    return path


# --- the whole comparison -----------------------------------------------------------------------
def run_scenario(run: TrainedRun, events: Sequence[Event], signals: Sequence[Signal], out: str | Path,
                 method: str = "mf_mdp", seeds: Sequence[int] = (0, 1, 2), progress: bool = True) -> dict:
    """Simulate every event with and without `signals` for every seed; write OUT/events/<id>/
    {baseline,scenario}__<method>__seed<k>.parquet (+ per-step trajectories), OUT/plots/<id>__<method>.png,
    OUT/summary.json and OUT/manifest.json. Returns the summary."""
    from rich.progress import Progress

    from mfmdp.experiment import prepare
    from mfmdp.simulate.methods import get_method
    from mfmdp.core.atomic import atomic_write_json, atomic_write_parquet
    from mfmdp.simulate.results import RunDir, event_slug, labels_frame, tree_hash, write_manifest

    import torch

    out = Path(out)
    check_out(run.root, out)
    rd = RunDir(out)
    cfg = run.cfg
    spec = get_method(method, llm_summariser=cfg.summariser != "embedding")
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
    prepared = prepare(cfg, long_enough, run.models.annotator, run.models.encoder, run.cache)
    for p in prepared:
        _, placed_warnings = placement(scenario_steps(cfg, p.event, signals), signals, cfg.simulation.warmup_steps,
                                       p.event) if signals else ([], [])
        warnings.extend(placed_warnings)
    for msg in warnings:
        log.warning(msg)

    def writer(event_id: str):
        def write(kind, seed, labels, traj, p, replay):
            df = labels_frame(labels, p.steps.step_of(), p.steps.is_signal, replay.warmup_slots)
            texts = traj.attrs.get("texts") if traj is not None else None
            df["text"] = texts if texts is not None else [None] * len(df)
            atomic_write_parquet(rd.event_dir(event_id) / f"{kind}__{method}__seed{seed}.parquet", df)
            if traj is not None:
                atomic_write_parquet(rd.event_dir(event_id) / f"trajectory_{kind}__{method}__seed{seed}.parquet", traj)
        return write

    summaries, plots = [], []
    with Progress(disable=not progress, transient=False) as bar:
        task = bar.add_task("scenario", total=len(prepared))
        for p in prepared:
            bar.update(task, description=f"{method} {p.event.id} ({len(seeds)} seeds x {1 + bool(signals)} runs)")
            outcome = simulate_event(run, p.event, signals, method, seeds, prepared=p, write=writer(p.event.id))
            rd.write_real(p.event.id, labels_frame(p.labels, p.steps.step_of(), p.steps.is_signal,
                                                   outcome.warmup_slots))
            summaries.append(effect_summary(outcome))
            plots.append(str(scenario_plot(outcome, spec.display,
                                           out / "plots" / f"{event_slug(p.event.id)}__{method}.png",
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
        "created": datetime.now(timezone.utc).isoformat(),
    }
    atomic_write_json(out / "summary.json", summary)
    write_manifest(out, cfg.model_dump(mode="json"), list(seeds), data_hash="see run_dir manifest",
                   checkpoints={str(d.relative_to(run.root)): tree_hash([d])
                                for d in sorted((run.root / "models").glob("*")) if d.is_dir()},
                   extra={"kind": "scenario", "run_dir": str(run.root), "method": method,
                          "events": [p.event.id for p in prepared], "signals": summary["signals"]})
    return summary
