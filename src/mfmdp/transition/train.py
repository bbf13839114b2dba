"""Training f_psi: L_trans = L_seq + alpha * L_roll, with an event-level validation split.

L_seq: teacher-forced KL(m*_t || m^_t) over every labelled step (real m_{t-1}, r_{t-1} as inputs).
L_roll: from `starts_per_event` sampled start points s per event, the model is fed the real m_{s-1}
and then its own forecasts for K steps, r frozen at r_{s-1} (the future synopsis would leak the real
future), p, c and time from the schedule; KL(m*_{s+k} || m^_{s+k}) averaged over k. Rollouts start
from the teacher-forced keys/values of the same forward pass (one graph), batched over all starts of
a minibatch. Both losses are means per scored step, so alpha is a ratio of per-step KLs.
alpha = 0 is the "w/o LCT-State" ablation. Early stopping on the validation rollout KL.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from torch.nn import functional as F

from mfmdp.transition import incremental as inc
from mfmdp.transition.features import EventFeatures
from mfmdp.transition.model import EventTransformer, TransitionConfig, params
from mfmdp.transition.options import TrainConfig
from mfmdp.transition.session import schedule_matrix

log = logging.getLogger(__name__)


@dataclass
class TrainResult:
    config: dict
    history: list[dict] = field(default_factory=list)
    best_epoch: int = -1
    validation: dict = field(default_factory=dict)  # the best model's full validation report
    train_events: list[str] = field(default_factory=list)
    val_events: list[str] = field(default_factory=list)
    seconds: float = 0.0


def split_events(feats: list[EventFeatures], val_fraction: float, seed: int) -> tuple[list, list]:
    """Event-level split (never steps of one event on both sides), seeded."""
    if len(feats) < 2:
        return list(feats), []
    order = np.random.default_rng(seed).permutation(len(feats))
    n_val = max(1, int(round(val_fraction * len(feats)))) if val_fraction > 0 else 0
    val = [feats[i] for i in sorted(order[:n_val])]
    train = [feats[i] for i in sorted(order[n_val:])]
    return train, val


def kl_rows(target: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """KL(target || softmax(logits)) per row (0 log 0 = 0)."""
    logq = F.log_softmax(logits, dim=-1)
    logp = torch.log(target.clamp_min(1e-12))
    return (target * (logp - logq)).sum(-1)


# --- batching -------------------------------------------------------------------------------------
@dataclass
class Batch:
    r_prev: torch.Tensor  # [B, T, D]
    m_prev: torch.Tensor  # [B, T, S]
    sched: torch.Tensor  # [B, T, Q]
    target: torch.Tensor  # [B, T, S]
    valid: torch.Tensor  # bool [B, T]: labelled step inside the event
    lengths: np.ndarray  # int [B]


def make_batch(feats: list[EventFeatures], crop: int | None, rng: np.random.Generator) -> Batch:
    segs = []
    for f in feats:
        r_prev, m_prev = f.teacher_inputs()
        sched = schedule_matrix(f.schedule)
        T = len(f)
        lo = 0
        if crop and T > crop:
            lo = int(rng.integers(0, T - crop + 1))
        hi = lo + min(T, crop or T)
        segs.append((r_prev[lo:hi], m_prev[lo:hi], sched[lo:hi], f.m[lo:hi], f.counts[lo:hi] > 0))
    L = max(len(s[0]) for s in segs)
    B = len(segs)
    D, S, Q = segs[0][0].shape[1], segs[0][1].shape[1], segs[0][2].shape[1]
    r = np.zeros((B, L, D), np.float32)
    m = np.full((B, L, S), 1.0 / S, np.float32)
    q = np.zeros((B, L, Q), np.float32)
    tgt = np.full((B, L, S), 1.0 / S, np.float32)
    valid = np.zeros((B, L), bool)
    for i, (rp, mp, sc, mt, ok) in enumerate(segs):
        n = len(rp)
        r[i, :n], m[i, :n], q[i, :n], tgt[i, :n], valid[i, :n] = rp, mp, sc, mt, ok
    lengths = np.array([len(s[0]) for s in segs])
    t = torch.from_numpy
    return Batch(t(r), t(m), t(q), t(tgt), t(valid), lengths)


def sampled_feedback(slots: int, generator: torch.Generator, systematic: bool = False):
    """Feed back the histogram of `slots` states drawn from each forecast, as a simulation does
    (independently, or systematically: positions (i + U) / slots on the forecast's CDF); the gradient
    flows through the forecast (straight-through)."""
    def feed(probs: torch.Tensor) -> torch.Tensor:
        p = probs.detach()
        if systematic:
            u = torch.rand(p.shape[0], 1, generator=generator, dtype=p.dtype)
            positions = (torch.arange(slots, dtype=p.dtype)[None] + u) / slots
            draws = torch.searchsorted(p.cumsum(-1).contiguous(), positions.contiguous()).clamp_max(p.shape[-1] - 1)
        else:
            draws = torch.multinomial(p, slots, replacement=True, generator=generator)
        hist = F.one_hot(draws, probs.shape[-1]).to(probs.dtype).mean(1)
        return probs + (hist - probs).detach()
    return feed


def rollout_from_prefix(model: EventTransformer, p: dict, batch: Batch, kv: list, rows: np.ndarray,
                        starts: np.ndarray, K: int, feedback=None) -> torch.Tensor:
    """Self-fed K-step rollouts (logits [R, K, S]) of batch rows `rows` from positions `starts`,
    reading the teacher-forced keys/values `kv` of the same forward pass as the prefix."""
    W = model.cfg.window
    idx = starts[:, None] - W + np.arange(W)[None]  # prefix positions s-W .. s-1
    pos = np.where(idx >= 0, idx, -1)
    gather = torch.from_numpy(np.maximum(idx, 0))
    rows_t = torch.from_numpy(rows)
    prefix = []
    for k, v in kv:  # [B, H, T, dh] -> [R, H, W, dh]
        kt, vt = k.transpose(1, 2), v.transpose(1, 2)
        prefix.append((kt[rows_t[:, None], gather].transpose(1, 2), vt[rows_t[:, None], gather].transpose(1, 2)))
    T = batch.r_prev.shape[1]
    fut = torch.from_numpy(np.minimum(starts[:, None] + np.arange(K)[None], T - 1))
    sched_rows = batch.sched[rows_t[:, None], fut] @ p["w_sched"] + p["b_in"]  # [R, K, d]
    m_first = batch.m_prev[rows_t, torch.from_numpy(starts)]
    r_frozen = batch.r_prev[rows_t, torch.from_numpy(starts)]
    return inc.rollout(inc.TH, p, prefix, pos, starts, m_first, r_frozen, sched_rows, K, J=1, feedback=feedback)


def sample_starts(lengths: np.ndarray, valid: np.ndarray, n: int, rng: np.random.Generator | None) -> tuple[np.ndarray, np.ndarray]:
    """(rows, starts): n start points s in [1, T-1] per event whose step s is labelled (random with
    an rng, evenly spaced without)."""
    rows, starts = [], []
    for b, T in enumerate(lengths):
        cand = np.flatnonzero(valid[b, 1:T]) + 1
        if len(cand) == 0:
            continue
        if rng is None:
            pick = cand[np.unique(np.linspace(0, len(cand) - 1, min(n, len(cand))).round().astype(int))]
        else:
            pick = rng.choice(cand, size=min(n, len(cand)), replace=False)
        rows.extend([b] * len(pick))
        starts.extend(pick)
    return np.asarray(rows, np.int64), np.asarray(starts, np.int64)


def roll_targets(batch: Batch, rows: np.ndarray, starts: np.ndarray, K: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Targets [R, K, S] and mask [R, K] (labelled steps inside the event) of each rollout."""
    T = batch.r_prev.shape[1]
    pos = starts[:, None] + np.arange(K)[None]
    inside = pos < batch.lengths[rows][:, None]
    pc = torch.from_numpy(np.minimum(pos, T - 1))
    rt = torch.from_numpy(rows)[:, None]
    return batch.target[rt, pc], batch.valid[rt, pc] & torch.from_numpy(inside)


def losses(model: EventTransformer, batch: Batch, K: int, starts_per_event: int, alpha: float,
           rng: np.random.Generator | None, feedback_slots: int | None = None,
           feedback_draws: str = "independent") -> dict:
    """L_seq and (when alpha > 0, or for validation: rng None) L_roll of one batch. Training rollouts
    feed back sampled histograms when `feedback_slots` is set; validation rollouts always feed back
    the forecast, so early stopping compares epochs on the same deterministic score."""
    need_roll = alpha > 0 or rng is None
    logits, kv = model(batch.r_prev, batch.m_prev, batch.sched, return_kv=True)
    seq = kl_rows(batch.target, logits)
    n_seq = batch.valid.sum().clamp_min(1)
    out = {"seq": (seq * batch.valid).sum() / n_seq, "n_seq": int(n_seq)}
    if need_roll and starts_per_event > 0:
        rows, starts = sample_starts(batch.lengths, batch.valid.numpy(), starts_per_event, rng)
        if len(rows):
            p = params(model, detach=False)
            feed = None
            if feedback_slots is not None and rng is not None:
                gen = torch.Generator().manual_seed(int(rng.integers(2**31)))
                feed = sampled_feedback(feedback_slots, gen, systematic=feedback_draws == "systematic")
            roll_logits = rollout_from_prefix(model, p, batch, kv, rows, starts, K, feed)
            tgt, ok = roll_targets(batch, rows, starts, K)
            kl = kl_rows(tgt, roll_logits)
            out["roll"] = (kl * ok).sum() / ok.sum().clamp_min(1)
            out["roll_per_k"] = ((kl * ok).sum(0) / ok.sum(0).clamp_min(1)).detach()
            out["roll_k_count"] = ok.sum(0)
            out["roll_probs"], out["roll_target"], out["roll_ok"] = torch.softmax(roll_logits, -1).detach(), tgt, ok
            out["roll_rows"], out["roll_starts"] = rows, starts
    out["probs"] = torch.softmax(logits, -1).detach()
    return out


# --- evaluation -----------------------------------------------------------------------------------
def persistence_forecast(f: EventFeatures, s: int, steps: int) -> np.ndarray:
    """Mix of the last `steps` real histograms before s (count-weighted, add-1/2 smoothing)."""
    lo = max(0, s - steps)
    counts = (f.m[lo:s] * f.counts[lo:s, None]).sum(0)
    return (counts + 0.5) / (counts.sum() + 0.5 * len(counts))


def calibration_error(probs: np.ndarray, target: np.ndarray, weight: np.ndarray, bins: int = 10) -> float:
    """Expected calibration error of forecast probabilities against realised shares: every
    (step, state) pair is one forecast; bins of predicted probability, weighted by slot counts."""
    p, y = probs.reshape(-1), target.reshape(-1)
    w = np.repeat(weight, probs.shape[-1]).astype(np.float64)
    if w.sum() <= 0:
        return float("nan")
    b = np.minimum((p * bins).astype(int), bins - 1)
    err = 0.0
    for i in range(bins):
        sel = b == i
        ws = w[sel].sum()
        if ws > 0:
            err += ws * abs(np.average(p[sel], weights=w[sel]) - np.average(y[sel], weights=w[sel]))
    return float(err / w.sum())


@torch.no_grad()
def evaluate(model: EventTransformer, feats: list[EventFeatures], K: int, n_starts: int,
             persistence_steps: int = 8) -> dict:
    """Validation report: teacher-forced KL, K-step rollout KL per horizon against persistence
    (forecast skill = 1 - KL_model / KL_persistence), calibration (ECE) teacher-forced and at K."""
    model.eval()
    seq_sum = seq_n = 0.0
    roll_sum, roll_n = np.zeros(K), np.zeros(K)
    pers_sum = np.zeros(K)
    tf_p, tf_y, tf_w, rk_p, rk_y, rk_w = [], [], [], [], [], []
    for f in feats:
        batch = make_batch([f], None, np.random.default_rng(0))
        out = losses(model, batch, K, n_starts, alpha=1.0, rng=None)
        v = batch.valid[0].numpy()
        seq_sum += float(out["seq"]) * out["n_seq"]
        seq_n += out["n_seq"]
        tf_p.append(out["probs"][0].numpy()[v])
        tf_y.append(f.m[v])
        tf_w.append(f.counts[v])
        if "roll" not in out:
            continue
        ok = out["roll_ok"].numpy()
        kl = kl_rows(out["roll_target"], torch.log(out["roll_probs"].clamp_min(1e-12))).numpy()
        roll_sum += (kl * ok).sum(0)
        roll_n += ok.sum(0)
        tgt = out["roll_target"].numpy()
        for i, s in enumerate(out["roll_starts"]):
            pers = torch.from_numpy(np.log(persistence_forecast(f, int(s), persistence_steps)).astype(np.float32))
            pk = kl_rows(out["roll_target"][i], pers.expand(K, -1)).numpy()
            pers_sum += pk * ok[i]
            last = ok[i].nonzero()[0]
            if len(last):
                j = last[-1]
                rk_p.append(out["roll_probs"][i, j].numpy())
                rk_y.append(tgt[i, j])
                rk_w.append(f.counts[min(int(s) + j, len(f) - 1)])
    roll_k = roll_sum / np.maximum(roll_n, 1)
    pers_k = pers_sum / np.maximum(roll_n, 1)
    report = {
        "events": len(feats),
        "seq_kl": seq_sum / max(seq_n, 1),
        "roll_kl": float(roll_sum.sum() / max(roll_n.sum(), 1)),
        "persistence_kl": float(pers_sum.sum() / max(roll_n.sum(), 1)),
        "roll_kl_per_k": roll_k.round(5).tolist(),
        "persistence_kl_per_k": pers_k.round(5).tolist(),
        "skill_per_k": np.where(pers_k > 0, 1 - roll_k / np.maximum(pers_k, 1e-12), np.nan).round(4).tolist(),
        "rollouts_per_k": roll_n.astype(int).tolist(),
    }
    if tf_p:
        report["ece_teacher_forced"] = calibration_error(np.concatenate(tf_p), np.concatenate(tf_y), np.concatenate(tf_w))
    if rk_p:
        report["ece_rollout_last"] = calibration_error(np.stack(rk_p), np.stack(rk_y), np.asarray(rk_w))
    report["skill"] = 1 - report["roll_kl"] / report["persistence_kl"] if report["persistence_kl"] > 0 else float("nan")
    return report


# --- the loop -------------------------------------------------------------------------------------
# Steps ahead at which f_psi's free-running forecast is compared with persistence (issue 13: a
# simulator scored on 300+ step horizons needs a macro model with skill there, not only at K).
SKILL_HORIZONS = (30, 100, 300)


def horizon_skill(model: EventTransformer, feats: list[EventFeatures], horizons=SKILL_HORIZONS,
                  n_starts: int = 8, persistence_steps: int = 8) -> dict:
    """Skill over persistence of self-fed rollouts, cumulative to each horizon h:
    1 - sum_{k<=h} KL(real || rollout) / sum_{k<=h} KL(real || persistence), over every labelled step
    inside the event; with the number of rollouts that reach h (events shorter than s + h count up
    to their end). Horizons past the longest event are left out."""
    longest = max((len(f) for f in feats), default=0)
    usable = [h for h in horizons if h < longest]
    if not usable:
        return {}
    rep = evaluate(model, feats, max(usable), n_starts, persistence_steps)
    counts = np.asarray(rep["rollouts_per_k"], dtype=np.float64)
    roll = np.cumsum(np.asarray(rep["roll_kl_per_k"]) * counts)
    pers = np.cumsum(np.asarray(rep["persistence_kl_per_k"]) * counts)
    return {str(h): {"skill": round(float(1 - roll[h - 1] / pers[h - 1]), 4) if pers[h - 1] > 0 else float("nan"),
                     "rollouts_reaching": int(counts[h - 1])} for h in usable}


def _batches(feats: list[EventFeatures], size: int, rng: np.random.Generator) -> list[list[EventFeatures]]:
    """Events of similar length together (less padding), batch order shuffled."""
    order = sorted(range(len(feats)), key=lambda i: (len(feats[i]), rng.random()))
    groups = [[feats[i] for i in order[j:j + size]] for j in range(0, len(order), size)]
    return [groups[i] for i in rng.permutation(len(groups))]


def train(
    feats: list[EventFeatures],
    model_config: TransitionConfig,
    config: TrainConfig | None = None,
    val_feats: list[EventFeatures] | None = None,
    progress: bool = True,
) -> tuple[EventTransformer, TrainResult]:
    """Train f_psi on events (features from `features.event_features`); returns the best model
    (by validation rollout KL; the last one when there is no validation set) and a report."""
    cfg = config or TrainConfig()
    if not feats:
        raise ValueError("no training events")
    prev_threads = torch.get_num_threads()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    try:
        return _train(feats, model_config, cfg, val_feats, progress)
    finally:
        torch.set_num_threads(prev_threads)


def _train(feats, model_config: TransitionConfig, cfg: TrainConfig, val_feats, progress: bool):
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    if val_feats is None:
        train_feats, val_feats = split_events(feats, cfg.val_fraction, cfg.seed)
    else:
        train_feats = list(feats)
    train_feats = [f for f in train_feats if len(f) >= 2]
    if not train_feats:
        raise ValueError("no training event has 2 or more steps")
    model = EventTransformer(model_config)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    ema = (torch.optim.swa_utils.AveragedModel(model, multi_avg_fn=torch.optim.swa_utils.get_ema_multi_avg_fn(cfg.ema_decay))
           if cfg.ema_decay > 0 else None)
    result = TrainResult(config={"train": asdict(cfg), "model": asdict(model_config)},
                         train_events=[f.event_id for f in train_feats], val_events=[f.event_id for f in val_feats])
    best, best_state, bad = math.inf, None, 0
    fallback: tuple = (math.inf, 0, None)  # the best epoch before L_roll starts, kept only if none comes after
    t_start = time.perf_counter()
    n_batches = math.ceil(len(train_feats) / cfg.events_per_batch)
    step_count = 0

    def lr_factor() -> float:
        if cfg.lr_schedule == "constant":
            return 1.0
        if step_count < n_batches:
            return (step_count + 1) / n_batches
        done = step_count / (cfg.epochs * n_batches)
        if cfg.max_seconds:
            done = max(done, (time.perf_counter() - t_start) / cfg.max_seconds)
        return 0.1 + 0.45 * (1 + math.cos(math.pi * min(done, 1.0)))
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("[bold]f_psi[/] {task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), disable=not progress, transient=True) as bar:
        task = bar.add_task("epoch 1", total=cfg.epochs * n_batches)
        for epoch in range(cfg.epochs):
            model.train()
            sums = {"seq": 0.0, "roll": 0.0, "loss": 0.0}
            seen = 0
            for group in _batches(train_feats, cfg.events_per_batch, rng):
                if cfg.max_seconds is not None and seen and time.perf_counter() - t_start > cfg.max_seconds:
                    log.info("transition training: time budget of %.0f s reached inside epoch %d", cfg.max_seconds, epoch + 1)
                    break  # the rest of this epoch is skipped; the model is still validated below
                seen += 1
                batch = make_batch(group, cfg.crop, rng)
                alpha = cfg.alpha if epoch >= cfg.roll_start_epoch else 0.0
                out = losses(model, batch, cfg.horizon, cfg.starts_per_event, alpha, rng, cfg.roll_feedback_slots,
                             cfg.roll_feedback_draws)
                loss = out["seq"] + (alpha * out["roll"] if "roll" in out and alpha > 0 else 0.0)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
                for g in opt.param_groups:
                    g["lr"] = cfg.lr * lr_factor()
                opt.step()
                step_count += 1
                if ema is not None:
                    ema.update_parameters(model)
                sums["seq"] += out["seq"].item()
                sums["roll"] += out["roll"].item() if "roll" in out else float("nan")
                sums["loss"] += float(loss.item() if torch.is_tensor(loss) else loss)
                bar.update(task, advance=1, description=f"epoch {epoch + 1}/{cfg.epochs} loss {sums['loss'] / seen:.4f}")
            row = {"epoch": epoch + 1, "batches": seen, **{f"train_{k}": v / max(seen, 1) for k, v in sums.items()},
                   "seconds": round(time.perf_counter() - t_start, 2)}
            scored = ema.module if ema is not None else model
            if val_feats:
                rep = evaluate(scored, val_feats, cfg.horizon, cfg.val_starts, cfg.persistence_steps)
                row.update(val_seq_kl=rep["seq_kl"], val_roll_kl=rep["roll_kl"], val_skill=rep["skill"])
                score = rep["roll_kl"]
            else:
                score = -epoch  # no validation: keep the last model
            result.history.append(row)
            log.info("transition epoch %s", {k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()})
            # With L_roll, only epochs trained with it may be kept: an earlier best is an L_seq-only
            # model, i.e. the w/o LCT-State ablation under another name (issue 13). Patience counts
            # from then on too.
            if cfg.alpha > 0 and epoch < cfg.roll_start_epoch:
                if score < fallback[0]:
                    fallback = (score, epoch + 1, {k: v.detach().clone() for k, v in scored.state_dict().items()})
            elif score < best:
                best, bad, result.best_epoch = score, 0, epoch + 1
                best_state = {k: v.detach().clone() for k, v in scored.state_dict().items()}
            else:
                bad += 1
                if bad >= cfg.patience:
                    break
            if cfg.max_seconds is not None and time.perf_counter() - t_start > cfg.max_seconds:
                log.info("transition training: time budget of %.0f s reached after epoch %d", cfg.max_seconds, epoch + 1)
                break
    if best_state is None and fallback[2] is not None:
        log.warning("transition training stopped before L_roll started (epoch %d): the checkpoint is trained "
                    "on L_seq only", cfg.roll_start_epoch + 1)
        best, result.best_epoch, best_state = fallback
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    if val_feats:
        result.validation = evaluate(model, val_feats, cfg.horizon, cfg.val_starts, cfg.persistence_steps)
        result.validation["skill_by_horizon"] = horizon_skill(model, val_feats, SKILL_HORIZONS, cfg.val_starts,
                                                              cfg.persistence_steps)
    result.seconds = time.perf_counter() - t_start
    return model, result
