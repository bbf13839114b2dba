"""The Policy protocol: the simulator talks to every backend (neural, HF + LoRA, OpenAI) through it.

Per step: `propose` draws J candidates (J dropout masks shared by all the step's agents) and returns
each candidate's per-agent state distribution q_phi(y | z_i, lambda_j); the simulator scores the
candidate mixes mean_i q_j with K-step rollouts and calls `realise` on the chosen one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np


@dataclass
class StepContext:
    """Everything an agent at step t may see (the leakage rule: no real text/behavior/labels)."""

    t: int
    topic: str
    m_hat: np.ndarray  # float [S]: f_psi's forecast for step t (prior over states)
    synopsis: np.ndarray  # float [D]: r_{t-1} embedding
    synopsis_text: str  # extractive/LLM synopsis text, for LLM backends
    signal: np.ndarray  # float [Dc]: encoded c_t (zeros when none)
    signal_texts: list[str]
    time: np.ndarray  # float [F]: time features of step t
    profiles: np.ndarray  # float [n, P]: profiles of the step's active agents
    seconds: np.ndarray | None = None  # float [n]: arrival time of each agent's slot (unix s)
    own_previous: np.ndarray | None = None  # int [n]: the agent's latest state in this event (-1: none)


def sample_categorical(probs: np.ndarray, rng: np.random.Generator, u: np.ndarray | None = None) -> np.ndarray:
    """int64 [n]: one draw per row of probs [n, K] by inverse CDF, from uniforms `u` [n] (default:
    one fresh uniform per row)."""
    cdf = np.cumsum(probs, axis=-1)
    u = rng.random(len(probs)) if u is None else u
    return np.minimum((cdf < (u * cdf[:, -1])[:, None]).sum(axis=-1), probs.shape[-1] - 1)


def systematic_uniforms(n: int, rng: np.random.Generator) -> np.ndarray:
    """[n] uniforms (perm_i + U) / n: each one uniform on [0, 1) (every agent keeps its own
    distribution), jointly one per 1/n stratum, so a step's agents with the same q realise the
    mix with less than one agent of error per state instead of binomial noise."""
    return (rng.permutation(n) + rng.random()) / n


@dataclass
class Proposal:
    state_probs: np.ndarray  # float [J, n, S]: q_phi per candidate and agent
    handle: Any = None  # backend-private data needed by `realise` (e.g. hidden states per candidate)
    systematic: bool = False  # set by the simulator: low-variance draws of the step's states

    @property
    def mixes(self) -> np.ndarray:
        """Candidate state mixes mean_i q_j: [J, S] (what enters the K-step rollouts)."""
        return self.state_probs.mean(axis=1)

    def draw_states(self, j: int, rng: np.random.Generator) -> np.ndarray:
        """int64 [n]: each agent's state drawn from candidate j's q (every backend's `realise` uses it)."""
        q = self.state_probs[j]
        return sample_categorical(q, rng, systematic_uniforms(len(q), rng) if self.systematic else None)


@dataclass
class Actions:
    states: np.ndarray  # int8 [n]
    behaviors: np.ndarray  # int8 [n]
    texts: list[str]
    embeddings: np.ndarray | None = None  # float [n, D] text embeddings (for the synopsis), if known
    extra: dict = field(default_factory=dict)


@runtime_checkable
class Policy(Protocol):
    name: str

    def propose(self, ctx: StepContext, n_candidates: int, rng: np.random.Generator) -> Proposal: ...

    def realise(
        self, ctx: StepContext, proposal: Proposal, j: int, rng: np.random.Generator
    ) -> Actions: ...

    def nll(self, ctx: StepContext, states: np.ndarray, behaviors: np.ndarray) -> np.ndarray:
        """Per-agent negative log-likelihood of the real (state, behavior) in nats (neural backend;
        per-token NLL for LLM backends, reported in its own column)."""
        ...
