"""Long-horizon consistency training of the neural policy: L_total = L_pred + alpha * L_text.

Per event and epoch, f_psi (frozen) is stepped with the REAL (m_{t-1}, r_{t-1}) (teacher forcing)
and, at a few sampled start steps t, J dropout masks give J candidate state mixes
m^(j) = mean_i q_phi(. | z_i, lambda_j) (differentiable in phi). Each is fed to f_psi as step t's
realised mix and rolled out K steps (`session.rollout_torch`, r frozen at r_{t-1});
V_j = sum_k gamma^(k-1) KL(m*_{t+k} || m^_{t+k}) against the real future histograms;
w = softmax(-beta V) detached; L_pred = sum_j w_j V_j. L_text = -log q(y*) - log pi(b* | y*) on the
event's real actions. "w/o LCT-Policy" (`lct=False`) trains L_text only.
"""

from __future__ import annotations

import logging
import time
from typing import Sequence

import numpy as np
import torch
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from mfmdp.policy.costs import EPS
from mfmdp.policy.dataset import PolicyEvent, add_forecasts
from mfmdp.policy.network import NeuralPolicyConfig, PolicyNet, action_nll, agent_features, log_prior_of
from mfmdp.policy.neural import NeuralPolicy
from mfmdp.policy.options import LCTConfig
from mfmdp.transition.api import PrefixModel, TransitionModel

log = logging.getLogger(__name__)


def _features(cfg: NeuralPolicyConfig, ev: PolicyEvent, rows: np.ndarray) -> np.ndarray:
    steps = ev.agent_step[rows]
    sched = ev.schedule
    return agent_features(cfg, ev.profiles[rows], ev.context[steps], sched.signals[steps], sched.time[steps],
                          ev.own_previous[rows])


def _log_prior(cfg: NeuralPolicyConfig, ev: PolicyEvent, steps: np.ndarray) -> torch.Tensor | None:
    if not cfg.inputs.use_prior:
        return None
    if ev.m_hat is None:
        raise ValueError(f"event {ev.event_id!r}: no forecasts m^_t; call add_forecasts first")
    return log_prior_of(ev.m_hat[steps])


def text_loss(net: PolicyNet, ev: PolicyEvent, rows: np.ndarray) -> torch.Tensor:
    """Mean -log q(y*) - log pi(b* | y*) over the given agent rows (unknown codes marginalised)."""
    x = torch.from_numpy(_features(net.cfg, ev, rows))
    log_q, log_pi = net(x, _log_prior(net.cfg, ev, ev.agent_step[rows]))
    nll = action_nll(log_q, log_pi, torch.from_numpy(ev.states[rows]), torch.from_numpy(ev.behaviors[rows]))
    return nll[torch.isfinite(nll)].mean() if torch.isfinite(nll).any() else nll.new_zeros(())


def candidate_mixes(net: PolicyNet, ev: PolicyEvent, t: int, masks: torch.Tensor) -> torch.Tensor:
    """[J, S] = mean over step t's agents of q_phi(. | z_i, lambda_j), differentiable in phi."""
    rows = np.arange(ev.agents(t).start, ev.agents(t).stop)
    x = torch.from_numpy(_features(net.cfg, ev, rows))
    log_q, _ = net(x, _log_prior(net.cfg, ev, ev.agent_step[rows]), masks)
    return log_q.exp().mean(dim=1)


def rollout_costs(session, mixes: torch.Tensor, ev: PolicyEvent, t: int, k: int, gamma: float) -> torch.Tensor:
    """V [J] for candidate mixes [J, S] realised at step t (session already stepped through t)."""
    J = mixes.shape[0]
    r = torch.from_numpy(np.repeat(ev.r_prev[t][None], J, axis=0))
    traj = session.rollout_torch(mixes, r, k)  # [J, k, S]
    target = torch.from_numpy(ev.m_real[t + 1 : t + 1 + k])  # [k, S]
    valid = torch.from_numpy(ev.m_weight[t + 1 : t + 1 + k])
    kl = (torch.xlogy(target, target) - target * torch.log(traj.clamp_min(EPS))).sum(-1)  # [J, k]
    disc = gamma ** torch.arange(k, dtype=kl.dtype)
    return (kl * (disc * valid)).sum(-1)


def lct_weights(v: torch.Tensor, beta: float) -> torch.Tensor:
    """softmax(-beta V), detached: the lowest-cost candidate gets the largest weight."""
    return torch.softmax(-beta * v.detach(), dim=-1)


def pred_loss(net: PolicyNet, session, ev: PolicyEvent, t: int, cfg: LCTConfig, rng: np.random.Generator) -> torch.Tensor | None:
    k = min(cfg.K, ev.n_steps - 1 - t)
    if k < 1 or ev.agents(t).stop == ev.agents(t).start:
        return None
    masks = torch.from_numpy(net.sample_masks(cfg.J, rng))
    mixes = candidate_mixes(net, ev, t, masks)
    v = rollout_costs(session, mixes, ev, t, k, cfg.gamma)
    return (lct_weights(v, cfg.beta) * v).sum()


def _start_steps(ev: PolicyEvent, cfg: LCTConfig, rng: np.random.Generator) -> np.ndarray:
    hi = ev.n_steps - 1  # a start needs at least one future step
    if cfg.max_start_step is not None:
        hi = min(hi, cfg.max_start_step)
    has_agents = np.diff(ev.agent_offsets)[:hi] > 0
    cand = np.flatnonzero(has_agents)
    if len(cand) == 0:
        return cand
    return np.sort(rng.choice(cand, size=min(cfg.starts_per_event, len(cand)), replace=False))


def event_loss(net: PolicyNet, transition: TransitionModel | None, ev: PolicyEvent, cfg: LCTConfig,
               rng: np.random.Generator, batched: bool | None = None) -> tuple[torch.Tensor, dict]:
    """L_total for one event (L_pred averaged over its sampled starts). `batched` picks the
    Event Transformer's batched rollout path (default: whenever the model supports it)."""
    stats: dict = {}
    n_agents = len(ev.states)
    rows = np.arange(n_agents)
    if n_agents > cfg.text_batch:
        rows = np.sort(rng.choice(n_agents, size=cfg.text_batch, replace=False))
    l_text = text_loss(net, ev, rows) if n_agents else torch.zeros(())
    stats["text"] = float(l_text.detach())
    total = cfg.alpha * l_text
    if cfg.lct:
        if transition is None:
            raise ValueError("LCT needs a transition model (or train with lct=False)")
        starts = _start_steps(ev, cfg, rng)
        if len(starts):
            if batched is None:
                batched = isinstance(transition, PrefixModel)
            l_pred = (_pred_batched if batched else _pred_session)(net, transition, ev, starts, cfg, rng)
            stats["pred"] = float(l_pred.detach())
            total = total + l_pred
    return total, stats


def _pred_session(net, transition, ev: PolicyEvent, starts: np.ndarray, cfg: LCTConfig, rng) -> torch.Tensor:
    """Generic path: step a session with the real inputs, roll out at each start."""
    session = transition.session(ev.schedule, batch=1)
    todo = set(int(s) for s in starts)
    preds = []
    for t in range(int(starts[-1]) + 1):
        session.step(ev.m_prev[t][None], ev.r_prev[t][None])
        if t in todo:
            lp = pred_loss(net, session, ev, t, cfg, rng)
            if lp is not None:
                preds.append(lp)
    return torch.stack(preds).mean()


def _pred_batched(net, transition, ev: PolicyEvent, starts: np.ndarray, cfg: LCTConfig, rng) -> torch.Tensor:
    """PrefixModel path (the Event Transformer): one teacher-forced pass, all starts x J candidates in one rollout."""
    prefix = transition.teacher_forced(ev.schedule, ev.m_prev, ev.r_prev, upto=int(starts[-1]) + 1)
    mixes = torch.cat([candidate_mixes(net, ev, int(t), torch.from_numpy(net.sample_masks(cfg.J, rng)))
                       for t in starts])  # [B*J, S], rows of start b at b*J .. b*J+J-1
    T = ev.n_steps
    k = min(cfg.K, T - 1 - int(starts[0]))
    traj = prefix.rollout_torch(starts, mixes, cfg.J, k).reshape(len(starts), cfg.J, k, -1)
    fut = starts[:, None] + 1 + np.arange(k)[None]  # [B, k]
    inside = fut <= T - 1
    fut_c = np.minimum(fut, T - 1)
    target = torch.from_numpy(ev.m_real[fut_c])[:, None]  # [B, 1, k, S]
    valid = torch.from_numpy(ev.m_weight[fut_c] * inside)  # [B, k]
    kl = (torch.xlogy(target, target) - target * torch.log(traj.clamp_min(EPS))).sum(-1)  # [B, J, k]
    disc = cfg.gamma ** torch.arange(k, dtype=kl.dtype)
    v = (kl * (disc * valid)[:, None, :]).sum(-1)  # [B, J]
    return (lct_weights(v, cfg.beta) * v).sum(-1).mean()


def _fit_standardiser(net: PolicyNet, events: Sequence[PolicyEvent], rng: np.random.Generator, rows: int = 20000) -> None:
    parts = []
    per = max(1, rows // max(len(events), 1))
    for ev in events:
        n = len(ev.states)
        if n:
            idx = np.sort(rng.choice(n, size=min(per, n), replace=False))
            parts.append(_features(net.cfg, ev, idx))
    if parts:
        net.set_standardiser(np.concatenate(parts))


def train_policy(
    events: Sequence[PolicyEvent],
    policy_config: NeuralPolicyConfig,
    lct_config: LCTConfig,
    transition: TransitionModel | None = None,
    progress: bool = True,
) -> tuple[NeuralPolicy, list[dict]]:
    """Train a NeuralPolicy (no retrieval pool attached: see `mfmdp.policy.training`)."""
    cfg = lct_config
    threads = torch.get_num_threads()
    if cfg.torch_threads:
        torch.set_num_threads(cfg.torch_threads)
    # f_psi stays frozen: no gradient reaches its weights (flags restored afterwards)
    frozen = list(transition.parameters()) if hasattr(transition, "parameters") else []
    flags = [p.requires_grad for p in frozen]
    for p in frozen:
        p.requires_grad_(False)
    try:
        return _train(events, policy_config, cfg, transition, progress)
    finally:
        torch.set_num_threads(threads)
        for p, flag in zip(frozen, flags):
            p.requires_grad_(flag)


def _train(events, policy_config: NeuralPolicyConfig, cfg: LCTConfig, transition, progress: bool):
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    needs_forecast = policy_config.inputs.use_prior
    if (needs_forecast or cfg.lct) and transition is None:
        raise ValueError("this policy configuration needs a transition model (prior m^_t or LCT rollouts)")
    if needs_forecast:
        for ev in events:
            if ev.m_hat is None:
                add_forecasts(ev, transition)
    net = PolicyNet(policy_config)
    _fit_standardiser(net, events, rng)
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    history: list[dict] = []
    t0 = time.perf_counter()
    stop = False
    with Progress(TextColumn("policy {task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                  TimeElapsedColumn(), disable=not progress) as bar:
        task = bar.add_task("training", total=cfg.epochs * len(events))
        for epoch in range(cfg.epochs):
            net.train()
            sums: dict[str, list[float]] = {"text": [], "pred": []}
            for i in rng.permutation(len(events)):
                loss, stats = event_loss(net, transition, events[i], cfg, rng)
                if loss.requires_grad:
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    torch.nn.utils.clip_grad_norm_(net.parameters(), 5.0)
                    opt.step()
                for k, v in stats.items():
                    sums[k].append(v)
                bar.advance(task)
                if cfg.time_budget_s is not None and time.perf_counter() - t0 > cfg.time_budget_s:
                    stop = True
                    break
            row = {"epoch": epoch, "seconds": time.perf_counter() - t0,
                   **{f"l_{k}": float(np.mean(v)) for k, v in sums.items() if v}}
            history.append(row)
            log.info("policy epoch %d: %s", epoch, row)
            if stop:
                log.info("policy training stopped at the time budget (%.0f s)", cfg.time_budget_s)
                break
    net.eval()
    training = {"lct": cfg.model_dump(mode="json"), "history": history, "events": len(events)}
    return NeuralPolicy(policy_config, net, training=training), history


def evaluate_policy(net: PolicyNet, events: Sequence[PolicyEvent]) -> dict:
    """Held-out NLL of the real (y, b) in nats per action and macro-F1 of argmax q against y*
    (dropout-free network, teacher-forced prior)."""
    from sklearn.metrics import f1_score

    net.eval()
    nll_sum, nll_n, y_true, y_pred = 0.0, 0, [], []
    with torch.no_grad():
        for ev in events:
            rows = np.arange(len(ev.states))
            if not len(rows):
                continue
            x = torch.from_numpy(_features(net.cfg, ev, rows))
            log_q, log_pi = net(x, _log_prior(net.cfg, ev, ev.agent_step))
            nll = action_nll(log_q, log_pi, torch.from_numpy(ev.states), torch.from_numpy(ev.behaviors)).numpy()
            ok = np.isfinite(nll)
            nll_sum += float(nll[ok].sum())
            nll_n += int(ok.sum())
            known = ev.states >= 0
            y_true.append(ev.states[known])
            y_pred.append(log_q.argmax(-1).numpy()[known])
    yt = np.concatenate(y_true) if y_true else np.zeros(0)
    yp = np.concatenate(y_pred) if y_pred else np.zeros(0)
    labels = list(range(net.cfg.n_states))
    f1 = float(f1_score(yt, yp, labels=labels, average="macro", zero_division=0)) if len(yt) else float("nan")
    return {"nll": nll_sum / max(nll_n, 1), "state_f1": f1, "actions": nll_n}
