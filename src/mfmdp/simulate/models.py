"""The model store: every trained part a method needs, under RUN_DIR/models, keyed by its MethodSpec.

f_psi is trained once per LCT-State flag (models/transition, models/transition_no_roll) and a neural
policy once per `MethodSpec.policy_key` (models/policy_...). A part is reused when its marker file
(written last) exists and its recorded config matches (stages.check_marker refuses otherwise), so an
interrupted run resumes and `--models-from` reuses another run's parts.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
from dataclasses import dataclass, fields
from pathlib import Path

from mfmdp.core.atomic import atomic_write_json
from mfmdp.simulate.coupling import CALIBRATION_MARKER, stored_coupling
from mfmdp.simulate.methods import MethodSpec, get_method
from mfmdp.simulate.stages import (TRANSITION_DEPENDS_ON, check_marker, drift, policy_depends_on, record_config,
                                   stage_record)

log = logging.getLogger(__name__)

TRANSITION_MARKER = "training.json"
POLICY_MARKER = "trained.json"
MODEL_MARKERS = (TRANSITION_MARKER, POLICY_MARKER, CALIBRATION_MARKER)


@dataclass
class Models:
    """Everything trained once and shared by the simulations (picklable, for Ray)."""

    encoder: object
    annotator: object | None
    transitions: dict[bool, object]  # lct_state -> EventTransformer
    policies: dict[tuple, object]  # MethodSpec.policy_key -> Policy
    regression: object | None
    synopsis_factory: object | None = None
    # (w, half-life) of the coupling, calibrated when simulation.evidence_weight is "calibrate"
    coupling: tuple | None = None


# --- where each part lives -----------------------------------------------------------------------
def transition_dir(out: Path, lct_state: bool) -> Path:
    return Path(out) / "models" / ("transition" if lct_state else "transition_no_roll")


def policy_dir(out: Path, spec: MethodSpec) -> Path:
    from mfmdp.policy.inputs import PolicyInputs

    key = f"prior{int(spec.use_prior)}_{spec.context}_lct{int(spec.lct_policy)}_state{int(spec.lct_state)}"
    usual = PolicyInputs(use_prior=spec.use_prior, context=spec.context, signal_memory=not spec.use_prior)
    if spec.inputs != usual:  # inputs beyond prior and context get their own folder
        key += "_" + hashlib.sha256(spec.inputs.model_dump_json().encode()).hexdigest()[:8]
    return Path(out) / "models" / f"policy_{key}"


def policy_uses_transition(spec: MethodSpec) -> bool:
    return spec.use_prior or spec.lct_policy


def needed_transitions(specs: list[MethodSpec]) -> set[bool]:
    """lct_state flags of the f_psi models the methods read (directly or through their policy)."""
    return {s.lct_state for s in specs if s.needs_transition or (s.floor is None and s.lct_policy)}


def agent_specs(cfg) -> list[MethodSpec]:
    """The config's methods that are simulated (the oracle is added by the evaluator)."""
    return [s for s in map(get_method, cfg.methods) if s.floor is None or s.floor.simulated]


# --- training (or reuse) -------------------------------------------------------------------------
def fit_transition(cfg, train: list, val: list, encoder, lct_state: bool, directory: Path,
                   progress: bool = True, extra: dict | None = None):
    """Train f_psi on prepared events, save it in `directory` with its stage record; (model, result)."""
    from mfmdp.transition.features import event_features
    from mfmdp.transition.model import TransitionConfig
    from mfmdp.transition.train import TrainConfig, train as fit

    section = cfg.transition
    options = {f.name: getattr(section, f.name) for f in fields(TrainConfig)}
    train_cfg = TrainConfig(**{**options, "seed": cfg.seed if section.seed is None else section.seed})
    if not lct_state:
        train_cfg.alpha = 0.0
    feats = [event_features(p.event, p.steps, p.labels.codes["state"], encoder, p.embeddings) for p in train]
    val_feats = [event_features(p.event, p.steps, p.labels.codes["state"], encoder, p.embeddings) for p in val] or None
    model_cfg = TransitionConfig.for_encoder(str(cfg.encoder), encoder.dim, **section.model.model_dump())
    if extra:
        model_cfg.extra = dict(extra)
    model, result = fit(feats, model_cfg, train_cfg, val_feats=val_feats, progress=progress)
    if extra is not None:
        model.cfg.extra["best_epoch"] = result.best_epoch
    model.save(directory)
    atomic_write_json(Path(directory) / TRANSITION_MARKER,
                      {**result.__dict__, "stage": stage_record(cfg, TRANSITION_DEPENDS_ON)})
    return model, result


def train_transition(cfg, train: list, val: list, encoder, lct_state: bool, out: Path):
    """f_psi of the run in `out`: reused when finished (check_resume matched its config), else trained."""
    from mfmdp.transition.model import EventTransformer

    directory = transition_dir(out, lct_state)
    if (directory / TRANSITION_MARKER).exists():
        return EventTransformer.load(directory)
    model, _ = fit_transition(cfg, train, val, encoder, lct_state, directory)
    record_config(cfg, out)
    return model


def fit_policy(cfg, spec: MethodSpec, train: list, encoder, transition, directory: Path, progress: bool = True):
    """Train the method's neural policy on prepared events and save it in `directory` with its record."""
    from mfmdp.policy.training import train_neural_policy

    pcfg = {**cfg.policy.model_dump(), "seed": cfg.seed if cfg.policy.seed is None else cfg.policy.seed}
    if not spec.lct_policy:
        pcfg["lct"] = False
    uses_transition = policy_uses_transition(spec)
    policy = train_neural_policy(
        [p.event for p in train], [p.labels for p in train], [p.embeddings for p in train], encoder,
        transition if uses_transition else None, inputs=spec.inputs, config=pcfg, steps=[p.steps for p in train],
        progress=progress,
    )
    policy.save(directory)
    atomic_write_json(Path(directory) / POLICY_MARKER,
                      {"method_key": Path(directory).name, "inputs": spec.inputs.model_dump(),
                       "stage": stage_record(cfg, policy_depends_on(uses_transition))})
    return policy


def train_policy(cfg, spec: MethodSpec, train: list, encoder, transition, out: Path):
    """The method's policy: a neural one trained here (reused from RUN_DIR/models when finished), or
    an LLM backend (hf: a LoRA adapter from `policy_checkpoints`; openai: the configured endpoint)."""
    if cfg.policy_backend != "neural":
        return llm_policy(cfg, spec)
    from mfmdp.policy.neural import NeuralPolicy

    directory = policy_dir(out, spec)
    if (directory / POLICY_MARKER).exists():
        return NeuralPolicy.load(directory, encoder=encoder)
    policy = fit_policy(cfg, spec, train, encoder, transition, directory)
    record_config(cfg, out)
    return policy


def llm_policy(cfg, spec: MethodSpec):
    if cfg.policy_backend == "hf":
        from mfmdp.policy.hf import HFPolicy

        directory = cfg.policy_checkpoints.get(spec.name)
        if directory is None:
            raise ValueError(f"policy_backend hf: no adapter for method {spec.name!r} in policy_checkpoints "
                             "(train one with `mfmdp train policy DATA --backend hf`)")
        return HFPolicy.load(directory)
    from mfmdp.policy.openai_policy import OpenAIPolicy

    return OpenAIPolicy.from_env(spec.inputs)


def synopsis_factory(cfg, cache: Path):
    """None for the offline embedding synopsis; an LLM summariser factory for `summariser: llm[:BACKEND]`."""
    if cfg.summariser.kind == "embedding":
        return None
    from mfmdp.llm.registry import get_chat_model
    from mfmdp.meanfield.llm_summary import llm_synopsis_factory

    return llm_synopsis_factory(get_chat_model(cfg.summariser.backend or "openai"), cache_dir=str(cache / "synopsis"))


def load_models(cfg, root: Path, methods, encoder, annotator, cache: Path) -> Models:
    """The finished parts that `methods` need, read from a run's models/ (never trained here)."""
    from mfmdp.policy.neural import NeuralPolicy
    from mfmdp.transition.model import EventTransformer

    transitions, policies = {}, {}
    for name in methods:
        spec = get_method(name)
        if spec.needs_transition and spec.lct_state not in transitions:
            d = transition_dir(root, spec.lct_state)
            if not (d / TRANSITION_MARKER).is_file():
                raise FileNotFoundError(f"{d}: no trained transition model for {name!r} (run `mfmdp run` with "
                                        f"method {name!r} first)")
            transitions[spec.lct_state] = EventTransformer.load(d)
        if spec.floor is not None or spec.policy_key in policies:
            continue
        if cfg.policy_backend != "neural":  # LLM backends are loaded (adapter dir / endpoint), never trained here
            policies[spec.policy_key] = llm_policy(cfg, spec)
            continue
        d = policy_dir(root, spec)
        if not (d / POLICY_MARKER).is_file():
            raise FileNotFoundError(f"{d}: no trained policy for {name!r} (run `mfmdp run` with method "
                                    f"{name!r} first)")
        policies[spec.policy_key] = NeuralPolicy.load(d, encoder=encoder)
    return Models(encoder, annotator, transitions, policies, None, synopsis_factory=synopsis_factory(cfg, cache),
                  coupling=stored_coupling(cfg, root))


# --- resume and reuse ----------------------------------------------------------------------------
def check_models(cfg, out: Path) -> None:
    """Refuse (ResumeRefused) when `out` holds finished models this run would reuse that were made
    with another config."""
    specs = agent_specs(cfg)
    for flag in sorted(needed_transitions(specs)):
        directory = transition_dir(out, flag)
        check_marker(directory / TRANSITION_MARKER, cfg, str(directory))
    if cfg.policy_backend == "neural":
        for spec in specs:
            if spec.floor is None:
                check_marker(policy_dir(out, spec) / POLICY_MARKER, cfg, str(policy_dir(out, spec)))


def reuse_models(source: Path, out: Path, cfg) -> None:
    """Start `out` from another run's finished models and label/embedding caches (hard links, so
    nothing is copied): a test run then scores exactly the models that were developed on validation.
    A model trained with another config than `cfg` is left behind, to be trained here."""
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
