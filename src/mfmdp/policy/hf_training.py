"""LCT training for the Hugging Face (LoRA) policy backend: the same objective as the neural one.

L_text: HFPolicy.text_loss on the real actions (state, behavior and the text's token NLL).
L_pred: at sampled start steps, J MC-dropout masks (candidate seeds) give J differentiable
candidate mixes mean_i q_phi(. | z_i, lambda_j) (HFPolicy.state_log_probs_torch); each rolls out K
steps through the frozen transition session (`rollout_torch`) against the real future histograms;
weights softmax(-beta V) detached. "w/o LCT-Policy" = L_text only (lct=False).
The StepContexts are what the simulator builds at each step (prepare_hf_event).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
from pydantic import Field

from mfmdp.meanfield.synopsis import EmbeddingSynopsis
from mfmdp.policy.base import StepContext
from mfmdp.policy.dataset import PolicyEvent, add_forecasts, prepare_event
from mfmdp.policy.lct import LCTConfig, _start_steps, lct_weights, rollout_costs

log = logging.getLogger(__name__)


class HFTrainConfig(LCTConfig):
    """LCT settings for the LoRA policy (smaller defaults than the neural backend: LLM steps are slow)."""

    lr: float = Field(2e-4, gt=0.0)
    epochs: int = Field(1, ge=1)
    text_batch: int = Field(16, ge=1)  # real actions per event per update for L_text
    starts_per_event: int = Field(2, ge=1)
    K: int = Field(10, ge=1)


@dataclass
class HFEvent:
    """One training event for the HF policy: per-step contexts + the policy tensors (PolicyEvent)."""

    pev: PolicyEvent
    contexts: list[StepContext]  # one per step, agents = the step's non-signal slots
    texts: list[list[str]]  # per step: the agents' real texts

    def set_forecasts(self, transition) -> None:
        if self.pev.m_hat is None:
            add_forecasts(self.pev, transition)
        for t, ctx in enumerate(self.contexts):
            ctx.m_hat = self.pev.m_hat[t]


def prepare_hf_event(event, steps, labels, embeddings: np.ndarray, encoder, context: str = "synopsis",
                     decay: float = 0.8, social_k: int = 8) -> HFEvent:
    """Contexts of every step with the extractive synopsis text of the real steps before it."""
    pev = prepare_event(event, steps, labels, embeddings, encoder, context, decay, social_k)
    tab = event.table
    S = pev.m_real.shape[1]
    syn = EmbeddingSynopsis(embeddings.shape[1], decay=decay)
    agent_slots = np.flatnonzero(~steps.is_signal)
    contexts, texts = [], []
    for t in range(pev.n_steps):
        rows = pev.agents(t)
        slots = agent_slots[rows]
        contexts.append(StepContext(
            t=t, topic=pev.topic, m_hat=np.full(S, 1.0 / S),
            synopsis=pev.context[t], synopsis_text=syn.text if context == "synopsis" else "",
            signal=pev.schedule.signals[t],
            signal_texts=[s.text for s in steps.signals[t]] if steps.signals else [],
            time=pev.schedule.time[t], profiles=pev.profiles[rows], seconds=tab.times[slots],
            own_previous=pev.own_previous[rows],
        ))
        texts.append([str(x) for x in tab.texts[slots]])
        sl = steps.slots(t)
        syn.update(embeddings[sl], [str(x) for x in tab.texts[sl]])
    return HFEvent(pev, contexts, texts)


def _examples(hev: HFEvent):
    from mfmdp.policy.hf import examples_from_step

    out = []
    for t, ctx in enumerate(hev.contexts):
        rows = hev.pev.agents(t)
        out.extend(examples_from_step(ctx, hev.pev.states[rows], hev.pev.behaviors[rows], hev.texts[t]))
    return out


def hf_pred_loss(policy, session, hev: HFEvent, t: int, cfg: LCTConfig, rng: np.random.Generator) -> torch.Tensor | None:
    pev, ctx = hev.pev, hev.contexts[t]
    k = min(cfg.K, pev.n_steps - 1 - t)
    if k < 1 or len(ctx.profiles) == 0:
        return None
    seeds = rng.integers(0, 2**31 - 1, size=cfg.J)
    mixes = torch.stack([policy.state_log_probs_torch(ctx, int(s)).exp().mean(0) for s in seeds]).float()
    v = rollout_costs(session, mixes, pev, t, k, cfg.gamma)
    return (lct_weights(v, cfg.beta) * v).sum()


def train_hf_policy(policy, events: Sequence[HFEvent], cfg: HFTrainConfig | None = None, transition=None,
                    progress: bool = True) -> list[dict]:
    """Train `policy` (an HFPolicy with a trainable LoRA adapter) in place; returns the history."""
    cfg = cfg or HFTrainConfig()
    if (policy.config.inputs.use_prior or cfg.lct) and transition is None:
        raise ValueError("this policy configuration needs a transition model (prior m^_t or LCT rollouts)")
    if transition is not None:
        for hev in events:
            hev.set_forecasts(transition)
    rng = np.random.default_rng(cfg.seed)
    torch.manual_seed(cfg.seed)
    opt = policy.optimizer(cfg.lr)
    history, t0 = [], time.perf_counter()
    from rich.progress import Progress

    with Progress(disable=not progress) as bar:
        task = bar.add_task("LoRA policy (LCT)" if cfg.lct else "LoRA policy (L_text)", total=cfg.epochs * len(events))
        for epoch in range(cfg.epochs):
            sums: dict[str, list[float]] = {"text": [], "pred": []}
            for i in rng.permutation(len(events)):
                hev = events[i]
                examples = _examples(hev)
                if len(examples) > cfg.text_batch:
                    examples = [examples[k] for k in np.sort(rng.choice(len(examples), cfg.text_batch, replace=False))]
                policy.model.train()
                opt.zero_grad()
                total = None
                if examples and cfg.alpha > 0:
                    l_text, _ = policy.text_loss(examples)
                    total = cfg.alpha * l_text
                    sums["text"].append(float(l_text.detach()))
                if cfg.lct:
                    preds = []
                    starts = _start_steps(hev.pev, cfg, rng)
                    if len(starts):
                        session = transition.session(hev.pev.schedule, batch=1)
                        todo = set(int(s) for s in starts)
                        for t in range(int(starts[-1]) + 1):
                            session.step(hev.pev.m_prev[t][None], hev.pev.r_prev[t][None])
                            if t in todo:
                                lp = hf_pred_loss(policy, session, hev, t, cfg, rng)
                                if lp is not None:
                                    preds.append(lp)
                    if preds:
                        l_pred = torch.stack(preds).mean()
                        total = l_pred if total is None else total + l_pred
                        sums["pred"].append(float(l_pred.detach()))
                if total is not None and total.requires_grad:
                    total.backward()
                    opt.step()
                policy.model.eval()
                bar.advance(task)
            row = {"epoch": epoch, "seconds": time.perf_counter() - t0,
                   **{f"l_{k}": float(np.mean(v)) for k, v in sums.items() if v}}
            history.append(row)
            log.info("hf policy epoch %d: %s", epoch, row)
            if cfg.time_budget_s is not None and time.perf_counter() - t0 > cfg.time_budget_s:
                break
    return history


def evaluate_hf_policy(policy, events: Sequence[HFEvent], max_agents: int | None = None) -> dict:
    """Per-token NLL of the real actions (LLM units: never mix with the neural (y, b) NLL) and the
    macro-F1 of argmax q (dropout-free) against the annotated states, over agents with a known state."""
    from sklearn.metrics import f1_score

    nlls, y_true, y_pred = [], [], []
    left = max_agents if max_agents is not None else np.inf
    policy.model.eval()
    for hev in events:
        for t, ctx in enumerate(hev.contexts):
            if left <= 0:
                break
            rows = hev.pev.agents(t)
            states, behaviors = hev.pev.states[rows], hev.pev.behaviors[rows]
            known = np.flatnonzero(states >= 0)[: int(min(left, len(states)))]
            if not len(known):
                continue
            sub = StepContext(**{**ctx.__dict__, "profiles": ctx.profiles[known],
                                 "seconds": None if ctx.seconds is None else ctx.seconds[known],
                                 "own_previous": None if ctx.own_previous is None else ctx.own_previous[known]})
            texts = [hev.texts[t][i] for i in known]
            nlls.append(policy.nll(sub, states[known], behaviors[known], texts))
            with torch.no_grad():
                log_q = policy.state_log_probs_torch(sub, None)
            y_pred.append(log_q.argmax(-1).cpu().numpy())
            y_true.append(states[known])
            left -= len(known)
    if not nlls:
        return {"agents": 0, "nll_per_token": float("nan"), "state_macro_f1": float("nan")}
    yt, yp = np.concatenate(y_true), np.concatenate(y_pred)
    f1 = float(f1_score(yt, yp, labels=[0, 1, 2], average="macro", zero_division=0))
    return {"agents": int(len(yt)), "nll_per_token": float(np.nanmean(np.concatenate(nlls))), "state_macro_f1": f1}


def fit_hf_policy(events, steps, labels, embeddings, encoder, transition, inputs, overrides: dict | None = None,
                  lct: bool = True, decay: float = 0.8, progress: bool = True):
    """`mfmdp train policy --backend hf` on prepared events: (HFPolicy with a trained LoRA adapter,
    history). `overrides` hold HFPolicyConfig fields (model_path, a local model directory, is required)
    and HFTrainConfig fields."""
    from mfmdp.policy.hf import HFPolicy, HFPolicyConfig

    overrides = dict(overrides or {})
    hf_keys = set(HFPolicyConfig.model_fields) - {"inputs"}
    hf_cfg = HFPolicyConfig.model_validate({k: overrides.pop(k) for k in list(overrides) if k in hf_keys}
                                           | {"inputs": inputs})
    if not hf_cfg.model_path:
        raise ValueError("--backend hf needs a local model: --set model_path=/path/to/model")
    cfg = HFTrainConfig.model_validate(overrides | {"lct": lct})
    if not events:
        raise ValueError("no training events")
    hevs = [prepare_hf_event(e, s, lab, emb, encoder, inputs.context, decay)
            for e, s, lab, emb in zip(events, steps, labels, embeddings)]
    policy = HFPolicy.create(hf_cfg)
    history = train_hf_policy(policy, hevs, cfg, transition, progress=progress)
    return policy, history
