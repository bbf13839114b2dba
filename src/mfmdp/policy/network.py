"""pi_phi: a small MLP over an agent's encoded inputs with two heads.

q_phi(y | z_i)  ∝ m^_t(y) * exp(g_phi(y; z_i))   (the prior factor is switchable, PolicyInputs.use_prior)
pi_phi(b | y, z_i) = softmax over behaviors of one logit row per state.

Candidates: J explicit dropout masks (one per hidden layer) per STEP, shared by all the step's agents,
so candidate j is reproducible from the rng that drew the masks and the same for every agent.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from mfmdp.core.schema import STATES
from mfmdp.core.records import BEHAVIORS, PROFILE_FEATURES
from mfmdp.policy.inputs import PolicyInputs
from mfmdp.policy.memory import OWN_HISTORY_DIM, own_history_features
from mfmdp.transition.features import signal_pulse_dim

N_LAYERS = 2  # hidden layers, each followed by (explicit) dropout


class NeuralPolicyConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    context_dim: int = Field(ge=1)  # D: synopsis / social context vector
    signal_dim: int = Field(ge=0)  # Dc: encoded exogenous signal
    time_dim: int = Field(ge=0)  # F: time features of the step
    profile_dim: int = len(PROFILE_FEATURES)
    n_states: int = len(STATES)
    n_behaviors: int = len(BEHAVIORS)
    hidden: int = Field(128, ge=1)
    dropout: float = Field(0.2, ge=0.0, lt=1.0)
    inputs: PolicyInputs = PolicyInputs()

    @property
    def signal_width(self) -> int:
        """Columns of c_t the network reads: all of it, or only the pulse half (inputs.signal_memory off)."""
        return self.signal_dim if self.inputs.signal_memory else signal_pulse_dim(self.signal_dim)

    @property
    def input_dim(self) -> int:
        i = self.inputs
        return (
            1  # constant: keeps the input non-empty when every switch is off
            + (self.profile_dim if i.use_profiles else 0)
            + (self.context_dim if i.context != "none" else 0)
            + (self.signal_width if i.use_signals else 0)
            + self.time_dim
            + (OWN_HISTORY_DIM if i.use_own_history else 0)
        )


def agent_features(
    cfg: NeuralPolicyConfig,
    profiles: np.ndarray,
    context: np.ndarray,
    signal: np.ndarray,
    time: np.ndarray,
    own_previous: np.ndarray | None = None,
) -> np.ndarray:
    """float32 [n, input_dim]. `profiles` is [n, P]; the step-level inputs are [D]/[Dc]/[F] (one
    step, broadcast to every agent) or [n, D]/[n, Dc]/[n, F] (one row per agent, for training);
    `own_previous` [n] each agent's latest state in the event (-1 none; read with use_own_history)."""
    profiles = np.asarray(profiles, dtype=np.float32)
    n = len(profiles)
    parts = [np.ones((n, 1), dtype=np.float32)]

    def rows(x: np.ndarray, dim: int, what: str) -> np.ndarray:
        x = np.asarray(x, dtype=np.float32)
        if x.shape[-1] != dim:
            raise ValueError(f"policy input {what!r} has dimension {x.shape[-1]}, the policy expects {dim}")
        return np.broadcast_to(x, (n, dim)) if x.ndim == 1 else x

    i = cfg.inputs
    if i.use_profiles:
        parts.append(rows(profiles, cfg.profile_dim, "profiles"))
    if i.context != "none":
        parts.append(rows(context, cfg.context_dim, f"context ({i.context})"))
    if i.use_signals:
        parts.append(rows(signal, cfg.signal_dim, "signal")[:, : cfg.signal_width])
    parts.append(rows(time, cfg.time_dim, "time"))
    if i.use_own_history:
        parts.append(own_history_features(own_previous, n))
    return np.concatenate(parts, axis=1)


class PolicyNet(nn.Module):
    def __init__(self, cfg: NeuralPolicyConfig):
        super().__init__()
        self.cfg = cfg
        d, h = cfg.input_dim, cfg.hidden
        self.register_buffer("feat_mean", torch.zeros(d))
        self.register_buffer("feat_std", torch.ones(d))
        self.layers = nn.ModuleList([nn.Linear(d, h), nn.Linear(h, h)])
        self.state_head = nn.Linear(h, cfg.n_states)  # g_phi
        self.behavior_head = nn.Linear(h, cfg.n_states * cfg.n_behaviors)

    def set_standardiser(self, x: np.ndarray) -> None:
        """Standardise inputs with statistics of training features x [N, input_dim]."""
        x = torch.as_tensor(np.asarray(x, dtype=np.float32))
        std = x.std(dim=0, unbiased=False)
        self.feat_mean.copy_(x.mean(dim=0))
        self.feat_std.copy_(torch.where(std > 1e-6, std, torch.ones_like(std)))

    def sample_masks(self, j: int, rng: np.random.Generator) -> np.ndarray:
        """float32 [J, N_LAYERS, hidden] inverted-dropout masks (0 or 1/(1-p)); all ones when p=0."""
        p = self.cfg.dropout
        if p == 0:
            return np.ones((j, N_LAYERS, self.cfg.hidden), dtype=np.float32)
        keep = rng.random((j, N_LAYERS, self.cfg.hidden)) >= p
        return (keep / (1.0 - p)).astype(np.float32)

    def forward(
        self,
        x: torch.Tensor,
        log_prior: torch.Tensor | None = None,
        masks: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """x [n, d]; log_prior [S] or [n, S] (ignored unless inputs.use_prior); masks [J, L, H].

        Returns log q [n, S] and log pi [n, S, B], or [J, n, S] / [J, n, S, B] with masks. Without
        masks, ordinary (per-element) dropout applies in train mode and none in eval mode."""
        h = (x - self.feat_mean) / self.feat_std
        for layer_idx, layer in enumerate(self.layers):
            h = F.gelu(layer(h))
            if masks is not None:
                # [J, 1, H] broadcasts over agents: one mask per candidate, shared by the step.
                h = h * masks[:, layer_idx, None, :]
            else:
                h = F.dropout(h, self.cfg.dropout, self.training)
        g = self.state_head(h)
        if self.cfg.inputs.use_prior:
            if log_prior is None:
                raise ValueError("this policy uses the forecast prior m^_t: pass log_prior")
            g = g + log_prior
        log_q = F.log_softmax(g, dim=-1)
        b = self.behavior_head(h).unflatten(-1, (self.cfg.n_states, self.cfg.n_behaviors))
        log_pi = F.log_softmax(b, dim=-1)
        return log_q, log_pi


def log_prior_of(m_hat: np.ndarray | torch.Tensor) -> torch.Tensor:
    """log m^ with a floor, so a forecast of exactly 0 stays finite."""
    m = torch.as_tensor(np.asarray(m_hat, dtype=np.float32)) if not torch.is_tensor(m_hat) else m_hat
    return torch.log(m.clamp_min(1e-8))


def action_nll(log_q: torch.Tensor, log_pi: torch.Tensor, states: torch.Tensor, behaviors: torch.Tensor) -> torch.Tensor:
    """Per-agent -log p(y, b) in nats. Unknown codes (< 0) are marginalised: an unknown state sums
    over y (-log sum_y q(y) pi(b|y)); an unknown behavior leaves -log q(y); both unknown gives NaN."""
    n = log_q.shape[0]
    y = states.long().clamp_min(0)
    b = behaviors.long().clamp_min(0)
    idx = torch.arange(n)
    joint = log_q[idx, y] + log_pi[idx, y, b]
    marg_state = torch.logsumexp(log_q + log_pi[idx, :, b], dim=-1)
    only_state = log_q[idx, y]
    known_y, known_b = states >= 0, behaviors >= 0
    out = torch.where(known_y & known_b, -joint, torch.full_like(joint, float("nan")))
    out = torch.where(~known_y & known_b, -marg_state, out)
    out = torch.where(known_y & ~known_b, -only_state, out)
    return out
