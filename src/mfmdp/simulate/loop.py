"""Algorithm 1: one simulation loop over steps with injected components.

Warm-up (t < t_warm) replays the real actions; after it the policy acts for each step's active
agents (time and profile from the data only), the realised state histogram m_t feeds f_psi at t+1,
and the synopsis r_t is updated from the realised responses' cached embeddings. Signal slots are
replayed verbatim and never simulated. Every baseline and ablation is this loop with other parts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from mfmdp.annotate.base import Annotator
from mfmdp.core.schema import DIMENSIONS, STATES, TEXT_DIMENSIONS, Labels
from mfmdp.meanfield.histogram import normalise, step_counts
from mfmdp.meanfield.synopsis import EmbeddingSynopsis
from mfmdp.policy.base import Policy, StepContext
from mfmdp.policy.memory import AuthorMemory
from mfmdp.policy.reselection import select_candidate
from mfmdp.meanfield.social import SocialContext
from mfmdp.simulate.replay import Replay
from mfmdp.transition.api import TransitionModel

S = len(STATES)


@dataclass
class LoopParts:
    """The injected components and switches that make one method out of the loop."""

    policy: Policy
    annotator: Annotator  # labels realised texts when the policy does not supply labels
    encoder: object  # TextEncoder: embeds realised texts that come without embeddings
    transition: TransitionModel | None = None  # None: no forecast (prior is uniform)
    context: str = "synopsis"  # what r_{t-1} is: "synopsis" | "social" | "none"
    candidates: int = 1  # J; > 1 turns on rollout-scored reselection (needs a transition model)
    horizon: int = 30  # K
    beta: float = 1.0
    gamma: float = 0.95
    synopsis_decay: float = 0.8
    social_k: int = 8
    # (dim, decay, topic) -> a synopsis (EmbeddingSynopsis by default; an LLM summariser when configured)
    synopsis_factory: Callable | None = None
    # False: f_psi (and the reselection rollouts) read r frozen at the end of warm-up
    transition_reads_realised: bool = True
    # False: the policy's context (vector and text) is frozen at the end of warm-up too
    policy_reads_realised: bool = True
    # Coupling of f_psi's forecast with the agents' evidence (methods whose policy reads the prior):
    # q'_i ∝ m^_t^(1-w) * q_i^w, i.e. the evidence log q_i - log m^_t scaled by w. 1: the policy as
    # trained; 0: q' = m^_t, the agents add nothing
    evidence_weight: float = 1.0
    # None: w constant; else w halves every `evidence_half_life` steps after warm-up (the policy's
    # context is frozen at the end of warm-up: what it knows of the crowd grows stale, f_psi's forecast moves on)
    evidence_half_life: float | None = None
    prior: bool = False  # the policy reads m^_t (only then is evidence_weight applied)
    systematic_draws: bool = False  # low-variance draws of each step's states (Proposal.draw_states)
    selection_scale: str = "raw"  # "raw" | "standardised" V in softmax(-beta V) (select_candidate)


@dataclass
class SimResult:
    labels: Labels  # every slot: revealed slots keep their real labels, the rest are simulated
    texts: list[str]
    m_hat: np.ndarray  # float [T, S] forecasts (uniform where no transition model)
    m_realised: np.ndarray  # float [T, S]
    chosen: np.ndarray  # int [T] chosen candidate (-1 during warm-up)
    values: np.ndarray  # float [T, J] rollout costs V_j (nan where not scored)
    extra: dict = field(default_factory=dict)


def simulate(replay: Replay, parts: LoopParts, seed: int) -> SimResult:
    rng = np.random.default_rng(seed)
    n, T = replay.n_slots, replay.n_steps
    warm_steps = replay.warmup_steps
    J = parts.candidates if parts.transition is not None else 1
    dim = replay.revealed_embeddings.shape[1]

    labels = Labels.empty(n)
    texts: list[str] = [""] * n
    embeddings = np.zeros((n, dim), dtype=np.float32)
    for pos, slot in enumerate(replay.revealed):
        texts[slot] = replay.revealed_texts[pos]
    for d in DIMENSIONS:
        labels.codes[d][replay.revealed] = replay.revealed_labels.codes[d]
    labels.confidence[replay.revealed] = replay.revealed_labels.confidence
    embeddings[replay.revealed] = replay.revealed_embeddings

    session = parts.transition.session(replay.schedule, batch=1) if parts.transition else None
    if parts.synopsis_factory is not None:
        synopsis = parts.synopsis_factory(dim, decay=parts.synopsis_decay, topic=replay.topic)
    else:
        synopsis = EmbeddingSynopsis(dim, decay=parts.synopsis_decay)
    synopsis.reset()
    # Maintained only for the method that reads it: it costs a dict update per response.
    social = SocialContext(dim, k=parts.social_k) if parts.context == "social" else None

    m_prev = np.full(S, 1.0 / S)
    r_prev = np.zeros(dim, dtype=np.float32)
    r_psi = r_prev  # f_psi's synopsis input
    r_pol, text_pol, pol_set = r_prev, "", False  # the policy's context (fixed once set, when frozen)
    authors = replay.authors if replay.authors is not None else np.full(n, -1, dtype=np.int64)
    memory = AuthorMemory(int(authors.max()) + 1 if n else 0)  # each author's latest state so far
    m_hat_all = np.full((T, S), 1.0 / S)
    m_real_all = np.zeros((T, S))
    chosen = np.full(T, -1, dtype=np.int64)
    values = np.full((T, max(J, 1)), np.nan)

    for t in range(T):
        lo, hi = int(replay.bounds[t]), int(replay.bounds[t + 1])
        if session is not None:
            m_hat = session.step(m_prev[None], r_psi[None])[0]
        else:
            m_hat = np.full(S, 1.0 / S)
        m_hat_all[t] = m_hat

        if t >= warm_steps:
            agents = lo + np.flatnonzero(~replay.is_signal[lo:hi])
            if len(agents):
                if parts.policy_reads_realised or not pol_set:
                    r_pol = _context_vector(parts.context, r_prev, social)
                    text_pol = _context_text(parts.context, synopsis, social)
                    pol_set = True
                profiles = replay.profiles[agents]
                ctx = StepContext(
                    t=t,
                    topic=replay.topic,
                    m_hat=m_hat,
                    synopsis=r_pol,
                    synopsis_text=text_pol,
                    signal=replay.schedule.signals[t],
                    signal_texts=replay.signal_texts[t],
                    time=replay.schedule.time[t],
                    profiles=profiles,
                    seconds=replay.times[agents],
                    own_previous=memory.lookup(authors[agents]),
                )
                proposal = parts.policy.propose(ctx, J, rng)
                weight = evidence_weight_at(parts, t - warm_steps)
                if parts.prior and weight != 1.0:
                    proposal.state_probs = temper(proposal.state_probs, m_hat, weight)
                proposal.systematic = parts.systematic_draws
                j = 0
                # candidates with one state mix (w_t = 0: every agent draws from m^_t) cost the same: no rollouts
                if J > 1 and np.ptp(proposal.mixes, axis=0).max() > 1e-12:
                    j, v = select_candidate(session, proposal.mixes, r_psi, k=parts.horizon, beta=parts.beta,
                                            gamma=parts.gamma, rng=rng, m_hat=m_hat, scale=parts.selection_scale)
                    values[t, : len(v)] = v
                chosen[t] = j
                actions = parts.policy.realise(ctx, proposal, j, rng)
                _write_actions(labels, texts, embeddings, agents, actions, parts, replay.topic)

        step_texts = texts[lo:hi]
        agent_mask = ~replay.is_signal[lo:hi]
        counts = step_counts(labels.codes["state"][lo:hi], np.array([0, hi - lo]), S, mask=agent_mask)
        m_t = normalise(counts)[0]
        m_real_all[t] = m_t
        memory.update(authors[lo:hi], labels.codes["state"][lo:hi])
        r_t = synopsis.update(embeddings[lo:hi], step_texts)
        if social is not None:
            social.add(embeddings[lo:hi], step_texts)
        m_prev, r_prev = m_t, np.asarray(r_t, dtype=np.float32)
        if parts.transition_reads_realised or t < warm_steps:
            r_psi = r_prev

    return SimResult(labels, texts, m_hat_all, m_real_all, chosen, values)


def evidence_weight_at(parts: LoopParts, age: int) -> float:
    """w at `age` steps after warm-up: constant, or halved every `evidence_half_life` steps."""
    if parts.evidence_half_life is None:
        return parts.evidence_weight
    return parts.evidence_weight * 0.5 ** (age / parts.evidence_half_life)


def temper(state_probs: np.ndarray, m_hat: np.ndarray, weight: float) -> np.ndarray:
    """q' ∝ m^^(1-w) q^w per agent and candidate ([J, n, S]): the agents' evidence over the forecast,
    log q - log m^, scaled by w (0: every agent draws from m^; 1: q unchanged)."""
    log_q = np.log(np.maximum(state_probs, 1e-12))
    log_m = np.log(np.maximum(np.asarray(m_hat, dtype=np.float64), 1e-12))
    z = (1.0 - weight) * log_m + weight * log_q
    z -= z.max(axis=-1, keepdims=True)
    out = np.exp(z)
    return out / out.sum(axis=-1, keepdims=True)


def _context_vector(kind: str, r_prev: np.ndarray, social: SocialContext | None) -> np.ndarray:
    if kind == "synopsis":
        return r_prev
    return social.vector() if kind == "social" else np.zeros_like(r_prev)


def _context_text(kind: str, synopsis, social: SocialContext | None) -> str:
    """The context as text for LLM policies (the neural policy reads only the vector)."""
    if kind == "synopsis":
        return synopsis.text
    return social.text() if kind == "social" else ""


def _write_actions(labels: Labels, texts, embeddings, agents, actions, parts: LoopParts, topic: str) -> None:
    """Store the realised actions; text dimensions come from the policy (retrieval carries the pool
    annotator's labels) or from the annotator run on the realised texts."""
    for i, slot in enumerate(agents):
        texts[slot] = actions.texts[i]
    given = actions.extra.get("labels")
    if given is None:
        given = parts.annotator.annotate(actions.texts, topic)
    for d in TEXT_DIMENSIONS:
        labels.codes[d][agents] = given.codes[d]
    labels.confidence[agents] = given.confidence
    # The sampled action defines state and behavior, whatever the text's annotation says.
    labels.codes["state"][agents] = actions.states
    labels.codes["behavior"][agents] = actions.behaviors
    emb = actions.embeddings
    if emb is None:
        emb = parts.encoder.encode(actions.texts)
    embeddings[agents] = emb
