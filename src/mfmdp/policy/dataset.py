"""Per-event training data for the policy, aligned with what the simulator shows it at each step.

For step t the simulator gives the policy: the forecast m^_t (teacher-forced here: f_psi fed the
real (m_{t-1}, r_{t-1})), a context vector (the synopsis r_{t-1}, or the social-retrieval vector, or
nothing), the step's signal c_t and time features from the Schedule, and each active (non-signal)
agent's profile. Targets are the agents' annotated states and their data behaviors.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mfmdp.core.schema import Labels
from mfmdp.core.records import Event, author_index
from mfmdp.data.stepping import Steps
from mfmdp.policy.inputs import ContextKind
from mfmdp.policy.memory import previous_states
from mfmdp.transition.api import Schedule, TransitionModel


@dataclass
class PolicyEvent:
    event_id: str
    topic: str
    schedule: Schedule
    bounds: np.ndarray  # int64 [T+1]
    agent_step: np.ndarray  # int64 [a]: step of each active (non-signal) agent slot
    agent_offsets: np.ndarray  # int64 [T+1]: agents of step t are rows agent_offsets[t]:agent_offsets[t+1]
    profiles: np.ndarray  # float32 [a, P]
    states: np.ndarray  # int8 [a] annotated state (-1 unknown)
    behaviors: np.ndarray  # int8 [a] data behavior
    context: np.ndarray  # float32 [T, D]: StepContext.synopsis at step t
    r_prev: np.ndarray  # float32 [T, D]: real r_{t-1} (f_psi's input at t)
    m_prev: np.ndarray  # float32 [T, S]: real m_{t-1} (f_psi's input at t)
    m_real: np.ndarray  # float32 [T, S]: real m_t (LCT targets)
    m_weight: np.ndarray  # float32 [T]: 1 where step t has labelled agents (else m_t is a filler)
    own_previous: np.ndarray  # int64 [a]: each agent's latest real state in the event before its step (-1: none)
    m_hat: np.ndarray | None = None  # float32 [T, S]: teacher-forced forecasts (set by `add_forecasts`)

    @property
    def n_steps(self) -> int:
        return len(self.bounds) - 1

    def agents(self, t: int) -> slice:
        return slice(int(self.agent_offsets[t]), int(self.agent_offsets[t + 1]))


def social_context_series(embeddings: np.ndarray, texts: list[str], bounds: np.ndarray, k: int) -> np.ndarray:
    """float32 [T, D]: the social-retrieval vector the simulator would show at step t, built from the
    real responses of steps < t with the simulator's own SocialContext (same rule in both places)."""
    # Training uses the simulator's own macro channel class, so the rule is identical in both.
    from mfmdp.meanfield.social import SocialContext

    T = len(bounds) - 1
    dim = embeddings.shape[1]
    social = SocialContext(dim, k=k)
    out = np.zeros((T, dim), dtype=np.float32)
    for t in range(T):
        out[t] = social.vector()
        lo, hi = int(bounds[t]), int(bounds[t + 1])
        social.add(embeddings[lo:hi], [str(x) for x in texts[lo:hi]])
    return out


def prepare_event(
    event: Event,
    steps: Steps,
    labels: Labels,
    embeddings: np.ndarray,
    encoder,
    context: ContextKind = "synopsis",
    decay: float = 0.8,
    social_k: int = 8,
) -> PolicyEvent:
    """Build a PolicyEvent; `labels` and `embeddings` cover every slot of the event in table order."""
    from mfmdp.transition.features import event_features

    tab = event.table
    n = len(tab)
    if labels.n != n:
        raise ValueError(f"event {event.id!r}: {labels.n} label rows for {n} responses")
    embeddings = np.asarray(embeddings, dtype=np.float32)
    if embeddings.shape[0] != n:
        raise ValueError(f"event {event.id!r}: {embeddings.shape[0]} embeddings for {n} responses")
    feats = event_features(event, steps, labels.codes["state"], encoder, embeddings, decay=decay)
    r_prev, m_prev = feats.teacher_inputs()
    T = len(steps)
    agent_slots = np.flatnonzero(~steps.is_signal)
    agent_step = steps.step_of()[agent_slots].astype(np.int64)
    offsets = np.searchsorted(agent_step, np.arange(T + 1)).astype(np.int64)
    if context == "synopsis":
        ctx = r_prev
    elif context == "social":
        ctx = social_context_series(embeddings, list(tab.texts), steps.bounds, social_k)
    elif context == "none":
        ctx = np.zeros_like(r_prev)
    else:
        raise ValueError(f"unknown context {context!r}: synopsis | social | none")
    return PolicyEvent(
        event_id=event.id,
        topic=event.topic.text if event.topic is not None else "",
        schedule=feats.schedule,
        bounds=steps.bounds.astype(np.int64),
        agent_step=agent_step,
        agent_offsets=offsets,
        profiles=tab.profiles[agent_slots],
        states=labels.codes["state"][agent_slots].astype(np.int8),
        behaviors=tab.behavior[agent_slots].astype(np.int8),
        own_previous=previous_states(author_index(tab.user_ids), labels.codes["state"], steps.bounds)[agent_slots],
        context=np.asarray(ctx, dtype=np.float32),
        r_prev=np.asarray(r_prev, dtype=np.float32),
        m_prev=np.asarray(m_prev, dtype=np.float32),
        m_real=np.asarray(feats.m, dtype=np.float32),
        m_weight=(feats.counts > 0).astype(np.float32),
    )


def add_forecasts(ev: PolicyEvent, transition: TransitionModel) -> PolicyEvent:
    """Fill `ev.m_hat` with f_psi's teacher-forced forecasts (real m_{t-1}, r_{t-1} fed at t): one
    forward pass for the Event Transformer, else a session stepped through the event."""
    from mfmdp.transition.api import PrefixModel

    if isinstance(transition, PrefixModel):
        ev.m_hat = transition.teacher_forced(ev.schedule, ev.m_prev, ev.r_prev).forecasts
        return ev
    session = transition.session(ev.schedule, batch=1)
    out = np.zeros_like(ev.m_real)
    for t in range(ev.n_steps):
        out[t] = session.step(ev.m_prev[t][None], ev.r_prev[t][None])[0]
    ev.m_hat = out
    return ev
