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
import os
import time
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from mfmdp.core.schema import DIMENSIONS, Labels
from mfmdp.core.records import Event
from mfmdp.data.stepping import Steps, make_steps, verified_institution_rule
from mfmdp.simulate.config import ConfigError, ExperimentConfig
from mfmdp.simulate.methods import MethodSpec, get_method
from mfmdp.core.atomic import atomic_write_bytes, atomic_write_json, atomic_write_parquet
from mfmdp.simulate.results import RunDir, labels_frame, tree_hash, write_manifest
from mfmdp.simulate.stages import (EVERYTHING, TRANSITION_DEPENDS_ON, check_marker, drift, policy_depends_on,
                                   stage_record)

log = logging.getLogger(__name__)


@dataclass
class PreparedEvent:
    event: Event
    steps: Steps
    labels: Labels  # real labels of every slot (behavior from the data)
    embeddings: np.ndarray  # float32 [n, D] of every slot's text


# --- data ----------------------------------------------------------------------------------------
def load_events(cfg: ExperimentConfig, path: str | None = None) -> list[Event]:
    from mfmdp.data import load

    path = path if path is not None else cfg.data.path
    if path is None:
        from mfmdp.data.synthetic import generate_events

        syn = cfg.data.synthetic
        return generate_events(syn.n_events, (syn.min_responses, syn.max_responses), seed=syn.seed)
    return load(path, progress=True)


def split_events(cfg: ExperimentConfig, events: list[Event], out: Path) -> dict[str, list[Event]]:
    from mfmdp.data.split import load_split, make_split, save_split

    if cfg.data.split:
        split = load_split(cfg.data.split)
    else:
        split = make_split(events, seed=cfg.seed, fractions=cfg.data.fractions)
    save_split(split, out / "split.json")
    sides = {side: split.select(events, side) for side in ("train", "validation", "test")}
    long_enough = cfg.data.min_responses
    for side, evs in sides.items():
        evs = [e for e in evs if len(e) >= long_enough]
        if cfg.data.max_events is not None:
            evs = evs[: cfg.data.max_events]
        sides[side] = evs
    return sides


def signal_rule(cfg: ExperimentConfig):
    return verified_institution_rule if cfg.data.signal_rule == "verified_institution" else None


def prepare(cfg: ExperimentConfig, events: list[Event], annotator, encoder, cache: Path) -> list[PreparedEvent]:
    from mfmdp.data.scenario import load_scenario

    scenario = load_scenario(cfg.data.scenario) if cfg.data.scenario else None
    if annotator is None:  # "truth": the synthetic generator's ground-truth labels
        labels = []
        for e in events:
            if "labels" not in e.metadata:
                raise ValueError(f"annotator 'truth' needs ground-truth labels; event {e.id!r} has none")
            labels.append(e.metadata["labels"])
    else:
        from mfmdp.annotate.store import LabelStore, annotate_events

        labels = annotate_events(events, annotator, store=LabelStore(cache / "labels", annotator))
    out = []
    for e, lab in zip(events, labels):
        lab = lab.take(np.arange(lab.n))
        lab.codes["behavior"] = e.table.behavior.astype(np.int8)
        steps = make_steps(e, cfg.data.step_size, signal_rule=signal_rule(cfg), scenario=scenario)
        emb = encoder.encode([str(t) for t in e.table.texts])
        out.append(PreparedEvent(e, steps, lab, emb))
    return out


# --- training ------------------------------------------------------------------------------------
def transition_dir(out: Path, lct_state: bool) -> Path:
    return out / "models" / ("transition" if lct_state else "transition_no_roll")


def train_transition(cfg: ExperimentConfig, train: list[PreparedEvent], val: list[PreparedEvent], encoder,
                     lct_state: bool, out: Path):
    from mfmdp.transition.features import event_features
    from mfmdp.transition.model import EventTransformer, TransitionConfig
    from mfmdp.transition.train import TrainConfig, train as fit

    directory = transition_dir(out, lct_state)
    if (directory / "training.json").exists():  # written last: complete, and check_resume matched its config
        return EventTransformer.load(directory)
    section = cfg.transition
    options = {f.name: getattr(section, f.name) for f in fields(TrainConfig)}
    train_cfg = TrainConfig(**{**options, "seed": cfg.seed if section.seed is None else section.seed})
    if not lct_state:
        train_cfg.alpha = 0.0
    feats = [event_features(p.event, p.steps, p.labels.codes["state"], encoder, p.embeddings) for p in train]
    val_feats = [event_features(p.event, p.steps, p.labels.codes["state"], encoder, p.embeddings) for p in val] or None
    model_cfg = TransitionConfig.for_encoder(cfg.encoder, encoder.dim, **cfg.transition.model.model_dump())
    model, result = fit(feats, model_cfg, train_cfg, val_feats=val_feats)
    model.save(directory)
    atomic_write_json(directory / "training.json",
                      {**result.__dict__, "stage": stage_record(cfg, TRANSITION_DEPENDS_ON)})
    record_config(cfg, out)
    return model


def policy_uses_transition(spec: MethodSpec) -> bool:
    return spec.use_prior or spec.lct_policy


def policy_dir(out: Path, spec: MethodSpec) -> Path:
    key = f"prior{int(spec.use_prior)}_{spec.context}_lct{int(spec.lct_policy)}_state{int(spec.lct_state)}"
    return out / "models" / f"policy_{key}"


def train_policy(cfg: ExperimentConfig, spec: MethodSpec, train: list[PreparedEvent], encoder, transition, out: Path):
    """The method's policy: a neural one trained here (reused from RUN_DIR/models when finished), or
    an LLM backend (hf: a LoRA adapter from `policy_checkpoints`; openai: the configured endpoint)."""
    from mfmdp.policy.inputs import PolicyInputs

    # with f_psi's prior, the policy reads only c_t's pulse (the prior carries the signal memory; see
    # policy/inputs.py METHOD_INPUTS)
    inputs = PolicyInputs(use_prior=spec.use_prior, context=spec.context, signal_memory=not spec.use_prior)
    if cfg.policy_backend == "hf":
        from mfmdp.policy.hf import HFPolicy

        directory = cfg.policy_checkpoints.get(spec.name)
        if directory is None:
            raise ValueError(f"policy_backend hf: no adapter for method {spec.name!r} in policy_checkpoints "
                             "(train one with `mfmdp train policy DATA --backend hf`)")
        return HFPolicy.load(directory)
    if cfg.policy_backend == "openai":
        from mfmdp.policy.openai_policy import OpenAIPolicy

        return OpenAIPolicy.from_env(inputs)
    from mfmdp.policy.neural import NeuralPolicy
    from mfmdp.policy.training import train_neural_policy

    directory = policy_dir(out, spec)
    if (directory / "trained.json").exists():  # written last: complete, and check_resume matched its config
        return NeuralPolicy.load(directory, encoder=encoder)
    pcfg = {**cfg.policy.model_dump(), "seed": cfg.seed if cfg.policy.seed is None else cfg.policy.seed}
    if not spec.lct_policy:
        pcfg["lct"] = False
    uses_transition = policy_uses_transition(spec)
    policy = train_neural_policy(
        [p.event for p in train], [p.labels for p in train], [p.embeddings for p in train], encoder,
        transition if uses_transition else None, inputs=inputs, config=pcfg, steps=[p.steps for p in train],
    )
    policy.save(directory)
    atomic_write_json(directory / "trained.json", {"method_key": directory.name, "inputs": inputs.model_dump(),
                                                   "stage": stage_record(cfg, policy_depends_on(uses_transition))})
    record_config(cfg, out)
    return policy


def synopsis_factory(cfg: ExperimentConfig, cache: Path):
    """None for the offline embedding synopsis; an LLM summariser factory for `summariser: llm[:BACKEND]`."""
    kind, _, backend = cfg.summariser.partition(":")
    if kind == "embedding" and not backend:
        return None
    if kind != "llm":
        raise ValueError(f"summariser {cfg.summariser!r}: use 'embedding' or 'llm[:BACKEND]' (e.g. llm:openai, llm:fake)")
    from mfmdp.llm.registry import get_chat_model
    from mfmdp.meanfield.llm_summary import llm_synopsis_factory

    return llm_synopsis_factory(get_chat_model(backend or "openai"), cache_dir=str(cache / "synopsis"))


# --- simulation ----------------------------------------------------------------------------------
@dataclass
class Models:
    """Everything trained once and shared by the simulations (picklable, for Ray)."""

    encoder: object
    annotator: object | None
    transitions: dict[bool, object]  # lct_state -> EventTransformer
    policies: dict[tuple, object]  # MethodSpec.policy_key -> Policy
    regression: object | None
    synopsis_factory: object | None = None


def make_replay_for(cfg: ExperimentConfig, p: PreparedEvent, encoder):
    from mfmdp.simulate.replay import make_replay
    from mfmdp.transition.features import event_features

    feats = event_features(p.event, p.steps, p.labels.codes["state"], encoder, p.embeddings)
    return make_replay(p.event, p.steps, p.labels, p.embeddings, feats.schedule, cfg.simulation.warmup_steps)


def simulate_method(cfg: ExperimentConfig, spec: MethodSpec, replay, models: Models, seed: int):
    """(Labels of every slot, per-step trajectory frame or None) for one method, event and seed."""
    from mfmdp.simulate import floors
    from mfmdp.simulate.loop import LoopParts, simulate
    from mfmdp.simulate.replay import resample_pool

    sim = cfg.simulation
    if spec.floor == "persistence":
        return floors.persistence(replay, seed), None
    if spec.floor == "regression":
        return models.regression.sample(replay, seed), None
    if spec.floor == "transition_only":
        labels, forecasts = floors.transition_only(replay, models.transitions[True], seed)
        return labels, pd.DataFrame({f"m_hat_{k}": forecasts[:, i] for i, k in enumerate(DIMENSIONS["state"])})
    if spec.floor is not None:
        raise ValueError(f"floor {spec.floor!r} is computed by the evaluator, not simulated")
    if spec.pool == "warmup":
        replay = resample_pool(replay, seed)
    parts = LoopParts(
        policy=models.policies[spec.policy_key],
        annotator=models.annotator,
        encoder=models.encoder,
        transition=models.transitions[spec.lct_state] if spec.needs_transition else None,
        context=spec.context,
        candidates=sim.candidates if spec.reselect else 1,
        horizon=sim.horizon,
        beta=sim.beta,
        gamma=sim.gamma,
        synopsis_decay=sim.synopsis_decay,
        transition_reads_realised=sim.transition_synopsis == "realised",
        social_k=sim.social_k,
        synopsis_factory=models.synopsis_factory,
    )
    res = simulate(replay, parts, seed)
    traj = {"step": np.arange(replay.n_steps), "chosen": res.chosen}
    for i, k in enumerate(DIMENSIONS["state"]):
        traj[f"m_hat_{k}"] = res.m_hat[:, i]
        traj[f"m_{k}"] = res.m_realised[:, i]
    for j in range(res.values.shape[1]):
        traj[f"V_{j}"] = res.values[:, j]
    frame = pd.DataFrame(traj)
    frame.attrs["texts"] = res.texts
    return res.labels, frame


def policy_nll(cfg: ExperimentConfig, spec: MethodSpec, p: PreparedEvent, models: Models) -> np.ndarray:
    """Per-slot NLL (nats) of the real (state, behavior) under the method's policy, teacher-forced
    on the real history: an evaluation of the policy, separate from the blind simulation."""
    from mfmdp.policy.base import StepContext
    from mfmdp.policy.dataset import add_forecasts, prepare_event

    nll = np.full(len(p.event), np.nan)
    policy = models.policies.get(spec.policy_key)
    if policy is None or spec.floor is not None:
        return nll
    ev = prepare_event(p.event, p.steps, p.labels, p.embeddings, models.encoder, context=spec.context,
                       decay=cfg.simulation.synopsis_decay, social_k=cfg.simulation.social_k)
    transition = models.transitions.get(spec.lct_state) if spec.needs_transition else None
    if transition is not None:
        add_forecasts(ev, transition)
    agent_slots = np.flatnonzero(~p.steps.is_signal)
    S = len(DIMENSIONS["state"])
    for t in range(cfg.simulation.warmup_steps, ev.n_steps):
        rows = ev.agents(t)
        if rows.stop == rows.start:
            continue
        ctx = StepContext(
            t=t, topic=ev.topic, m_hat=ev.m_hat[t] if ev.m_hat is not None else np.full(S, 1.0 / S),
            synopsis=ev.context[t], synopsis_text="", signal=ev.schedule.signals[t], signal_texts=[],
            time=ev.schedule.time[t], profiles=ev.profiles[rows],
        )
        nll[agent_slots[rows]] = policy.nll(ctx, ev.states[rows], ev.behaviors[rows])
    return nll


# --- the whole run -------------------------------------------------------------------------------
def _write_sim(rd: RunDir, p: PreparedEvent, replay, method: str, seed: int, labels: Labels,
               traj: pd.DataFrame | None, nll: np.ndarray) -> None:
    df = labels_frame(labels, p.steps.step_of(), p.steps.is_signal, replay.warmup_slots)
    texts = traj.attrs.get("texts") if traj is not None else None
    df["text"] = texts if texts is not None else [None] * len(df)
    df["nll"] = nll
    if traj is not None:
        atomic_write_parquet(rd.trajectory_path(p.event.id, method, seed), traj)
    atomic_write_parquet(rd.sim_path(p.event.id, method, seed), df)


def _run_tasks(cfg: ExperimentConfig, tasks: list[tuple[str, str, int]], replays: dict, models: Models):
    """Yield ((event_id, method, seed), (labels, trajectory)) for every task, locally or on Ray."""
    if cfg.executor.kind == "ray":
        from mfmdp.simulate.distributed import run_on_ray

        yield from run_on_ray(cfg, tasks, replays, models)
        return
    import torch

    torch.set_num_threads(cfg.executor.torch_threads)
    for eid, method, seed in tasks:
        yield (eid, method, seed), simulate_method(cfg, get_method(method), replays[eid], models, seed)


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


MODEL_MARKERS = ("training.json", "trained.json")  # written last by train_transition / train_policy


def reuse_models(source: Path, out: Path, cfg: ExperimentConfig) -> None:
    """Start `out` from another run's finished models and label/embedding caches (hard links, so
    nothing is copied): a test run then scores exactly the models that were developed on validation.
    A model trained with another config than `cfg` is left behind, to be trained here."""
    import shutil

    if not (source / "models").is_dir():
        raise FileNotFoundError(f"--models-from {source}: no models/ folder there (run it first)")
    for model in sorted(p for p in (source / "models").iterdir() if p.is_dir()):
        marker = next((model / m for m in MODEL_MARKERS if (model / m).exists()), None)
        target = out / "models" / model.name
        if marker is None or target.exists():
            continue
        changed = drift(marker, cfg)
        if changed:
            log.info("--models-from: %s was trained with another config (%s): training it here",
                     model, "; ".join(changed))
            continue
        shutil.copytree(model, target, copy_function=os.link)
    if (source / "cache").is_dir() and not (out / "cache").exists():  # none when the labels are the generator's truth
        shutil.copytree(source / "cache", out / "cache", copy_function=os.link)


def agent_specs(cfg: ExperimentConfig) -> list[MethodSpec]:
    return [get_method(m) for m in cfg.methods if m != "oracle"]


def needed_transitions(specs: list[MethodSpec]) -> set[bool]:
    """lct_state flags of the f_psi models the methods read (directly or through their policy)."""
    return {s.lct_state for s in specs if s.needs_transition or (s.floor is None and s.lct_policy)}


def check_resume(cfg: ExperimentConfig, out: Path) -> None:
    """Before any work: refuse (ResumeRefused) when `out` holds finished models or simulations that
    this run would reuse but that were made with another config."""
    specs = agent_specs(cfg)
    for flag in sorted(needed_transitions(specs)):
        directory = transition_dir(out, flag)
        check_marker(directory / "training.json", cfg, str(directory))
    if cfg.policy_backend == "neural":
        for spec in specs:
            if spec.floor is None:
                check_marker(policy_dir(out, spec) / "trained.json", cfg, str(policy_dir(out, spec)))
    check_marker(out / EVENTS_RECORD, cfg, str(out / "events"))


EVENTS_RECORD = "events.json"  # the config record of everything under events/


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
    if not rd.is_done(event_id) or json.loads(rd.done_path(event_id).read_text()) != done:
        atomic_write_json(rd.done_path(event_id), done)


def record_config(cfg: ExperimentConfig, out: Path) -> None:
    """RUN_DIR/config.yaml := `cfg`. Called when results made with `cfg` are written (and when a run
    starts in a new directory), never before: a run that fails or is refused leaves it as it was."""
    text = yaml.safe_dump(cfg.model_dump(mode="json"), allow_unicode=True, sort_keys=False).encode("utf-8")
    path = out / "config.yaml"
    if not path.exists() or path.read_bytes() != text:
        atomic_write_bytes(path, text)


def require_inputs(cfg: ExperimentConfig, test_data: str | None) -> None:
    """Before any work: the files and folders the config names exist (one line naming the key)."""
    paths = {"data.path": cfg.data.path, "data.split": cfg.data.split, "data.scenario": cfg.data.scenario,
             "--test-data": test_data}
    kind, _, arg = cfg.annotator.partition(":")
    if kind == "distilled":
        paths["annotator"] = arg
    if cfg.encoder.startswith("hf:"):
        paths["encoder"] = cfg.encoder[3:]
    if cfg.policy_backend == "hf":
        paths.update({f"policy_checkpoints.{m}": d for m, d in cfg.policy_checkpoints.items()})
    for key, path in paths.items():
        if path and not Path(path).exists():
            raise ConfigError(f"{key}: {path} does not exist")


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

    from mfmdp.annotate.registry import get_annotator
    from mfmdp.evaluate.reversal import fit_reversal_thresholds
    from mfmdp.evaluate.report import write_report
    from mfmdp.simulate import floors
    from mfmdp.simulate.scenario import signal_coverage
    from mfmdp.encoders import get_encoder

    stage_seconds: dict[str, float] = {}
    stage_peak_mb: dict[str, float] = {}
    clock = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        stage_seconds[name] = round(stage_seconds.get(name, 0.0) + now - clock, 2)
        stage_peak_mb[name] = max(stage_peak_mb.get(name, 0.0), take_peak_rss_mb())
        clock = now

    events = load_events(cfg)
    sides = split_events(cfg, events, out)
    if test_data is not None:
        sides["test"] = [e for e in load_events(cfg, test_data) if len(e) >= cfg.data.min_responses]
    scored_side = "test" if test_data is not None else cfg.data.evaluate_on
    lap("load")
    log.info("events: %s", {k: len(v) for k, v in sides.items()})
    if not sides[scored_side]:
        raise ValueError(f"no {scored_side} events (after the split and the min_responses filter)")
    if not sides["train"]:
        raise ValueError("no training events (after the split and the min_responses filter)")

    cache = out / "cache"
    encoder = get_encoder(cfg.encoder, cache_dir=str(cache / "embeddings"))
    annotator = None if cfg.annotator == "truth" else get_annotator(cfg.annotator, cache_dir=str(cache))
    prepared = {side: prepare(cfg, evs, annotator, encoder, cache) for side, evs in sides.items()}
    lap("annotate+encode")

    specs = agent_specs(cfg)
    transitions = {flag: train_transition(cfg, prepared["train"], prepared["validation"], encoder, flag, out)
                   for flag in sorted(needed_transitions(specs), reverse=True)}
    lap("train_transition")
    policies = {}
    for spec in specs:
        if spec.floor is None and spec.policy_key not in policies:
            policies[spec.policy_key] = train_policy(cfg, spec, prepared["train"], encoder,
                                                     transitions.get(spec.lct_state), out)
    lap("train_policy")

    train_replays = [make_replay_for(cfg, p, encoder) for p in prepared["train"]]
    regression = floors.RegressionFloor(window=cfg.evaluation.window).fit(train_replays, [p.labels for p in prepared["train"]])
    thresholds = fit_reversal_thresholds(
        [p.labels.codes["state"][floors.scored_slots(r)] for p, r in zip(prepared["train"], train_replays)],
        cfg.evaluation.window)
    thresholds.save(out / "reversal_thresholds.json")
    llm_summariser = cfg.summariser != "embedding"
    models = Models(encoder, annotator, transitions, policies, regression, synopsis_factory(cfg, cache))

    replays = {p.event.id: make_replay_for(cfg, p, encoder) for p in prepared[scored_side]}
    by_id = {p.event.id: p for p in prepared[scored_side]}
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
    lap("prepare_simulation")
    with Progress(disable=not progress, transient=False) as bar:
        task = bar.add_task("simulating", total=len(tasks))
        for (eid, method, seed), (labels, traj) in _run_tasks(cfg, tasks, replays, models):
            spec = get_method(method)
            key = (eid, spec.policy_key, spec.lct_state)
            if spec.floor is None and key not in nll_cache:
                nll_cache[key] = policy_nll(cfg, spec, by_id[eid], models)
            nll = nll_cache.get(key, np.full(len(by_id[eid].event), np.nan)) if spec.floor is None else np.full(len(by_id[eid].event), np.nan)
            _write_sim(rd, by_id[eid], replays[eid], method, seed, labels, traj, nll)
            pending[eid] -= 1
            if pending[eid] == 0:
                mark_done(rd, eid, cfg, specs)
            bar.update(task, advance=1, description=f"{method} {eid} seed {seed}")
    for eid in by_id:
        mark_done(rd, eid, cfg, specs)
    lap("simulate")

    data_paths = [Path(p) for p in (cfg.data.path, test_data) if p]
    write_manifest(
        out, cfg.model_dump(mode="json"), cfg.simulation.seeds,
        data_hash=tree_hash(data_paths) if data_paths else f"synthetic:{cfg.data.synthetic.model_dump_json()}",
        checkpoints={str(d.relative_to(out)): tree_hash([d]) for d in sorted((out / "models").glob("*")) if d.is_dir()},
        extra={
            "split": {k: [p.event.id for p in v] for k, v in prepared.items()},
            "evaluated_side": scored_side,
            "annotator": cfg.annotator,
            "llm_summariser": llm_summariser,
            "policy_backend": cfg.policy_backend,
            "display_names": {s.name: get_method(s.name, llm_summariser).display for s in specs},
            "stage_seconds": stage_seconds,
            "stage_peak_rss_mb": stage_peak_mb,  # this process only (Ray workers not included)
            # read by scenarios: a model that never saw a signal cannot react to an injected one
            "signals_seen": signal_coverage([p.steps for p in prepared["train"]]),
        },
    )
    report = write_report(out, thresholds=thresholds, window=cfg.evaluation.window)
    log_evaluation(out, scored_side, sorted(by_id))
    lap("evaluate")
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["stage_seconds"] = stage_seconds
    manifest["stage_peak_rss_mb"] = stage_peak_mb
    atomic_write_json(out / "manifest.json", manifest)
    record_config(cfg, out)
    return report
