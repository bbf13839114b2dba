"""Ground-truth mechanism of the synthetic events: arrivals, who-reposts-whom, opinion dynamics.

Deliberately NOT MF-MDP's own model (otherwise MF-MDP would win by construction):
- arrivals: a decaying (log-normal) primary cascade, secondary bursts around influential reposts,
  and a burst after each exogenous signal; no notion of fixed-size steps;
- influence: each response reacts to its parent (who-reposts-whom, parents chosen by a followers-
  weighted tournament among recent responses) and to a followers-weighted window of the most recent
  responses (what a user sees in the feed), scaled by a per-agent susceptibility;
- signals reach agents one at a time (exposure probability growing after the signal) and stay with
  a repeat user once seen; their pull is scaled by a per-agent credibility;
- hysteresis: an agent holds a persistent discrete state in {-1, 0, +1} and moves to the state
  nearest to its pull only when the pull differs from its current state by more than its own
  threshold theta (theta = 0: memoryless rounding). Repeat users carry their state across actions.
Everything here works on plain arrays; `synthetic.py` turns them into records.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.special import ndtr, ndtri


@dataclass(frozen=True)
class SignalPush:
    """An exogenous signal as the dynamics see it."""

    slot: int  # index of the signal's own response in time order
    time: float  # seconds since the source post
    strength: float  # signed pull on an exposed agent (x its credibility)
    reach: float  # final share of agents exposed
    tau: float  # seconds for exposure to build up (1 - exp(-dt / tau))
    counter: bool = False  # debunks the source's claim: exposed agents stop feeling its pull


@dataclass
class Arrivals:
    offsets: np.ndarray  # float64 [n] seconds after the source post, sorted, signal slots included
    signal_slots: np.ndarray  # int64 [k] positions of the signal responses
    after_signal_burst: np.ndarray  # bool [n] slots in a burst triggered by a signal


def arrivals(
    rng: np.random.Generator,
    n: int,
    *,
    median_s: float,
    sigma: float,
    n_bursts: int,
    burst_fraction: float,
    burst_scale_s: float,
    signal_quantiles: tuple[float, ...] = (),
    signal_times_s: tuple[float | None, ...] | None = None,
    signal_burst_fraction: float = 0.0,
    signal_scale_s: float = 1800.0,
    max_s: float = 14 * 86400.0,
) -> Arrivals:
    """Bursty arrival times of n responses (k of them the signals' own responses).

    Signal k is posted at `signal_times_s[k]` seconds when given (not None), else at quantile
    `signal_quantiles[k]` of the arrivals before any signal burst.
    """
    k = len(signal_quantiles)
    if not (0 <= burst_fraction and 0 <= signal_burst_fraction and burst_fraction + signal_burst_fraction < 1):
        raise ValueError(f"burst fractions must be >= 0 and sum to < 1, got {burst_fraction} + {signal_burst_fraction}")
    if n < 2 + k:
        raise ValueError(f"need at least {2 + k} responses, got {n}")
    n_free = n - k
    n_sig_burst = int(round(n_free * signal_burst_fraction)) if k else 0
    n_sec = int(round(n_free * burst_fraction)) if n_bursts > 0 else 0
    n_primary = max(n_free - n_sig_burst - n_sec, 1)
    n_sec = n_free - n_sig_burst - n_primary
    # log-normal truncated at max_s (inverse CDF), so that a huge event does not span months
    top = ndtr((math.log(max_s) - math.log(median_s)) / sigma)
    base = np.exp(math.log(median_s) + sigma * ndtri(rng.uniform(0.0, top, n_primary)))
    parts = [base]
    if n_sec > 0:
        centers = rng.choice(base, size=n_bursts)
        which = rng.integers(0, n_bursts, n_sec)
        parts.append(centers[which] + rng.exponential(burst_scale_s, n_sec))
    pre = np.concatenate(parts)
    sig_times = np.quantile(pre, signal_quantiles) if k else np.empty(0)
    if k and signal_times_s is not None:
        sig_times = np.array([q if t is None else float(t) for q, t in zip(sig_times, signal_times_s)])
    sig_times = np.sort(sig_times)
    burst = np.empty(0)
    if k and n_sig_burst:
        which = rng.integers(0, k, n_sig_burst)
        burst = sig_times[which] + 1.0 + rng.lognormal(math.log(signal_scale_s), 1.0, n_sig_burst)
    free = np.concatenate([pre, burst])
    is_burst = np.r_[np.zeros(len(pre), bool), np.ones(len(burst), bool)]
    order = np.argsort(free, kind="stable")
    free, is_burst = np.floor(free[order]), is_burst[order]
    # Insert each signal's own response just before the free responses at or after its time.
    sig_secs = np.floor(sig_times)
    pos = np.searchsorted(free, sig_secs, side="left")
    offsets = np.insert(free, pos, sig_secs)
    after = np.insert(is_burst, pos, False)
    signal_slots = pos + np.arange(k)
    return Arrivals(offsets=offsets, signal_slots=signal_slots.astype(np.int64), after_signal_burst=after)


def choose_parents(
    rng: np.random.Generator,
    weight: np.ndarray,
    *,
    p_root: float,
    window: int,
    tournament: int = 4,
    signal_slots: np.ndarray | None = None,
    after_signal_burst: np.ndarray | None = None,
    p_signal_parent: float = 0.0,
) -> np.ndarray:
    """int64 [n]: parent slot of each response, -1 = the source post.

    A non-root parent is the most followed of `tournament` random responses among the last `window`
    (visible reposts by big accounts attract reposts); a burst after a signal reposts the most recent
    signal with probability `p_signal_parent`.
    """
    n = len(weight)
    idx = np.arange(n)
    cand = idx[:, None] - rng.integers(1, window + 1, size=(n, tournament))
    valid = cand >= 0
    w = np.where(valid, weight[np.clip(cand, 0, None)], -np.inf)
    best = cand[idx, np.argmax(w, axis=1)]
    parent = np.where(valid.any(axis=1) & (rng.random(n) >= p_root), best, -1)
    parent = np.where(parent >= 0, parent, -1)
    if signal_slots is not None and len(signal_slots) and after_signal_burst is not None:
        latest = np.searchsorted(signal_slots, idx, side="left") - 1  # last signal strictly before
        ok = after_signal_burst & (latest >= 0) & (rng.random(n) < p_signal_parent)
        parent = np.where(ok, signal_slots[np.clip(latest, 0, None)], parent)
    return parent.astype(np.int64)


@dataclass
class DynamicsResult:
    states: np.ndarray  # int8 [n] state of each response's author when acting, in {-1, 0, 1}
    exposed: np.ndarray  # bool [n] author had seen at least one signal when acting
    switches: int  # actions at which a repeat user's state differed from their previous action
    repeat_actions: int  # actions by users seen before


def evolve_states(
    user: np.ndarray,
    parent: np.ndarray,
    offsets: np.ndarray,
    weight: np.ndarray,
    init_state: np.ndarray,
    theta: np.ndarray,
    kappa: np.ndarray,
    credibility: np.ndarray,
    bias: np.ndarray | None = None,
    *,
    root_state: int,
    a_parent: float,
    a_feed: float,
    window: int,
    noise: np.ndarray,
    drift: np.ndarray,
    signals: list[SignalPush] = (),
    fixed_state: np.ndarray | None = None,
    exposure_draws: np.ndarray | None = None,
    root_weight: float = 0.0,
    source_pull: float = 0.0,
) -> DynamicsResult:
    """Sequential hysteresis dynamics over responses in time order.

    user[i] indexes the per-user arrays (init_state, theta, kappa, credibility, bias); fixed_state[i] in
    {-1, 0, 1} pins a slot (signals, institutions), any other value (e.g. 9) lets it evolve.
    pull_i = kappa_u * (a_parent * s_parent + a_feed * feed + sum_k exposed_k * strength_k * cred_u
    + drift_i) + bias_u + noise_i, with feed the followers-weighted mean state of the last `window` responses
    and of the source post (always on top of the thread, weight `root_weight`), plus the claim's own
    appeal `source_pull * root_state` for every reader not yet exposed to a counter signal.
    """
    n = len(user)
    k = len(signals)
    if exposure_draws is None:
        exposure_draws = np.ones((n, k))
    us = user.tolist()
    par = parent.tolist()
    ts = offsets.tolist()
    ws = weight.tolist()
    nz = noise.tolist()
    dr = drift.tolist()
    fx = fixed_state.tolist() if fixed_state is not None else [9] * n
    cur = init_state.astype(int).tolist()
    th = theta.tolist()
    kp = kappa.tolist()
    cr = credibility.tolist()
    bs = bias.tolist() if bias is not None else [0.0] * len(cur)
    seen = bytearray(len(cur))
    exposed = [bytearray(len(cur)) for _ in range(k)]
    ex_draw = exposure_draws.tolist()
    sig = [(s.time, s.strength, s.reach, s.tau, s.slot, s.counter) for s in signals]
    claim = source_pull * root_state
    out = [0] * n
    out_exposed = bytearray(n)
    feed_ws, feed_w = root_state * root_weight, root_weight
    switches = repeats = 0
    for i in range(n):
        u = us[i]
        if fx[i] in (-1, 0, 1):
            s = fx[i]
        else:
            s = cur[u]
            p = par[i]
            field = a_parent * (root_state if p < 0 else out[p]) + dr[i]
            if feed_w > 0.0:
                field += a_feed * feed_ws / feed_w
            any_exp = 0
            debunked = False
            for j in range(k):
                t0, strength, reach, tau, slot, counter = sig[j]
                if i <= slot:
                    continue
                ex = exposed[j]
                if not ex[u] and ex_draw[i][j] < reach * (1.0 - math.exp(-(ts[i] - t0) / tau)):
                    ex[u] = 1
                if ex[u]:
                    field += strength * cr[u]
                    any_exp = 1
                    debunked = debunked or counter
            if not debunked:
                field += claim
            out_exposed[i] = any_exp
            pull = kp[u] * field + bs[u] + nz[i]
            target = 1 if pull > 0.5 else (-1 if pull < -0.5 else 0)
            if target != s and abs(pull - s) > th[u]:
                s = target
            if seen[u]:
                repeats += 1
                if s != cur[u]:
                    switches += 1
            cur[u] = s
        seen[u] = 1
        out[i] = s
        w = ws[i]
        feed_ws += w * s
        feed_w += w
        if i >= window:
            j = i - window
            feed_ws -= ws[j] * out[j]
            feed_w -= ws[j]
    return DynamicsResult(
        states=np.array(out, dtype=np.int8),
        exposed=np.frombuffer(bytes(out_exposed), dtype=np.uint8).astype(bool),
        switches=switches,
        repeat_actions=repeats,
    )
