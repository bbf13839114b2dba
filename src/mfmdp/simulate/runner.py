"""One way to run a method: `simulate_method(cfg, spec, replay, models, seed)`, used by `mfmdp run`,
`mfmdp simulate` (scenarios) and the Ray runner alike.

An agent method is Algorithm 1 (simulate/loop.py) wired by its MethodSpec; a floor is its Floor object.
`policy_nll` scores a method's policy teacher-forced on the real history (separate from the blind
simulation), and `run_tasks` runs (event, method, seed) tasks locally or on Ray.
"""

from __future__ import annotations

from typing import Iterator

import numpy as np
import pandas as pd

from mfmdp.core.schema import DIMENSIONS
from mfmdp.simulate.methods import MethodSpec, get_method
from mfmdp.simulate.prepare import PreparedEvent


def make_replay_for(cfg, p: PreparedEvent, encoder):
    """The replay of a prepared event: what the simulator may see (the leakage boundary)."""
    from mfmdp.simulate.replay import make_replay
    from mfmdp.transition.features import event_features

    feats = event_features(p.event, p.steps, p.labels.codes["state"], encoder, p.embeddings)
    return make_replay(p.event, p.steps, p.labels, p.embeddings, feats.schedule, cfg.simulation.warmup_steps)


def simulate_method(cfg, spec: MethodSpec, replay, models, seed: int):
    """(Labels of every slot, per-step trajectory frame or None) for one method, event and seed."""
    from mfmdp.simulate.loop import LoopParts, simulate
    from mfmdp.simulate.replay import resample_pool

    if spec.floor is not None:
        return spec.floor.simulate(replay, models, seed, systematic=cfg.simulation.state_draws == "systematic")
    sim = cfg.simulation
    weight, half_life = coupling(cfg, spec, models)
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
        policy_reads_realised=sim.policy_synopsis == "realised",
        evidence_weight=weight,
        evidence_half_life=half_life,
        prior=spec.use_prior,
        systematic_draws=sim.state_draws == "systematic",
        selection_scale=sim.selection_scale,
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


def coupling(cfg, spec: MethodSpec, models) -> tuple[float, float | None]:
    """(w, half-life) of a method that reads the forecast: the configured ones or the run's calibrated
    ones (methods without the prior ignore them)."""
    sim = cfg.simulation
    if sim.evidence_weight != "calibrate":
        return float(sim.evidence_weight), sim.evidence_half_life
    if not spec.use_prior:
        return 1.0, None
    if getattr(models, "coupling", None) is None:
        raise ValueError("simulation.evidence_weight is 'calibrate' but the run has no calibrated coupling "
                         "(models/calibration/calibration.json): finish `mfmdp run`, or set a number")
    return models.coupling


def policy_nll(cfg, spec: MethodSpec, p: PreparedEvent, models) -> np.ndarray:
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
            time=ev.schedule.time[t], profiles=ev.profiles[rows], own_previous=ev.own_previous[rows],
        )
        nll[agent_slots[rows]] = policy.nll(ctx, ev.states[rows], ev.behaviors[rows])
    return nll


def run_tasks(cfg, tasks: list[tuple[str, str, int]], replays: dict, models) -> Iterator:
    """Yield ((event_id, method, seed), (labels, trajectory)) for every task, locally or on Ray."""
    if cfg.executor.kind == "ray":
        from mfmdp.simulate.distributed import run_on_ray

        yield from run_on_ray(cfg, tasks, replays, models)
        return
    import torch

    torch.set_num_threads(cfg.executor.torch_threads)
    for eid, method, seed in tasks:
        yield (eid, method, seed), simulate_method(cfg, get_method(method), replays[eid], models, seed)
