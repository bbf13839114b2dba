"""Synthetic Weibo-like events with a known ground-truth mechanism, for the demo and the tests.

    events = generate_events(n_events=8, responses=(2000, 6000), seed=0)
    event = generate_event("rumor_debunked", n_responses=5000, seed=1)
    write_synthetic(events, "synthetic.jsonl")   # the generic format, with ground-truth labels

The mechanism (data/synthetic_dynamics.py) is agent-based with per-agent hysteresis, parent and
recent-feed influence, heterogeneous susceptibility, repeat and one-off users, bursty arrivals and
exogenous signals; it is deliberately not MF-MDP's own model. Each event's ground-truth labels on all
8 dimensions are in `event.metadata["labels"]` (a `Labels` aligned with `event.responses`).
"""

from __future__ import annotations

import json
import math
import os
import zlib
from dataclasses import asdict, dataclass, fields, replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Iterable

import numpy as np

from mfmdp.core.records import Event, Profile, Response, Signal, SourcePost
from mfmdp.data.synthetic_dynamics import SignalPush, arrivals, choose_parents, evolve_states
from mfmdp.data.synthetic_labels import COUNTER_SIGNAL_LABELS, NEWS_LABELS, draw_labels, set_fixed
from mfmdp.data.synthetic_population import assign_users, make_population
from mfmdp.data.synthetic_texts import MEDIA, PLACES, PROVINCES, TOPICS, TextRenderer, fill, nicknames

STEP_SIZE = 16  # the default step size of make_steps: reversal_step is given in these steps


@dataclass(frozen=True)
class SignalSpec:
    """An exogenous signal posted by a verified institution at a quantile of the event's responses."""

    at: float = 0.4  # share of the pre-signal arrivals before it ...
    at_hours: float | None = None  # ... unless posted at this many hours after the source post
    strength: float = -2.5  # signed pull on exposed agents (x credibility)
    reach: float = 0.85  # final share of agents who see it
    tau_hours: float = 2.0  # exposure builds up as 1 - exp(-dt / tau)
    burst_fraction: float = 0.2  # share of responses in the burst it triggers
    burst_minutes: float = 40.0  # median delay of the burst
    counter: bool = True  # debunks/clarifies the source's claim (labels: oppose / doubt / counter)
    reversal: bool = True  # expected to flip the crowd's net polarity (recorded in metadata)


@dataclass(frozen=True)
class Scenario:
    """All parameters of one kind of event. Override any of them via generate_event(**overrides)."""

    name: str
    family: str  # topic family in synthetic_texts.TOPICS
    description: str
    source_polarity: int  # +1: the claim invites a positive attitude, -1: a negative one
    p0: tuple[float, float, float]  # initial latent-state mix (positive, neutral, negative) of newcomers
    signal: SignalSpec | None = None
    drift: float = 0.0  # extra pull reached linearly by the last response (slow exogenous drift) ...
    drift_start: float = 0.0  # ... starting from this one at the first response
    # opinion dynamics
    theta_low: float = 0.3  # per-agent hysteresis threshold ~ U(theta_low, theta_high) x hysteresis
    theta_high: float = 2.0
    hysteresis: float = 1.0  # 0 = memoryless agents (for ablations and tests)
    kappa_sigma: float = 0.4  # log-normal spread of susceptibility
    bias_sigma: float = 1.0  # spread of each agent's own leaning (added to its pull)
    a_source: float = 0.5  # the claim's own pull on every reader (sign: source_polarity); a counter
    # signal removes it for the agents it reaches
    a_parent: float = 0.3
    a_feed: float = 0.7
    feed_window: int = 64
    noise: float = 0.25
    # arrivals
    median_minutes: float = 90.0
    sigma: float = 1.6
    max_days: float = 14.0  # the primary cascade is truncated here
    n_bursts: int = 3
    burst_fraction: float = 0.15
    burst_minutes: float = 20.0
    # population and behavior
    repeat_fraction: float = 0.3
    repeat_pool: float = 0.03
    verified_share: float = 0.03
    institution_share: float = 0.002
    p_root: float = 0.55
    p_share: float = 0.55
    p_bare: float = 0.4
    p_signal_parent: float = 0.5
    # text noise
    p_mention: float = 0.12
    p_emoji: float = 0.08
    p_sarcasm: float = 0.08
    p_chain: float = 0.25

    def to_json(self) -> dict:
        return json.loads(json.dumps(asdict(self)))


SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario("rumor_debunked", "rumor", "a hopeful rumor spreads, an official debunk flips the crowd negative",
                 source_polarity=1, p0=(0.5, 0.35, 0.15),
                 signal=SignalSpec(at=0.4, strength=-2.5, reach=0.85)),
        Scenario("accusation_clarified", "accusation",
                 "an accusation angers the crowd, an official clarification turns it positive",
                 source_polarity=-1, p0=(0.15, 0.35, 0.5),
                 signal=SignalSpec(at=0.45, strength=2.5, reach=0.85)),
        Scenario("debunk_ignored", "rumor", "a hopeful rumor; a weak debunk reaches few and flips nothing",
                 source_polarity=1, p0=(0.5, 0.35, 0.15), theta_low=0.6, theta_high=2.2,
                 signal=SignalSpec(at=0.5, strength=-0.8, reach=0.3, burst_fraction=0.05, reversal=False)),
        Scenario("steady_support", "good_news", "good news the crowd keeps cheering; a routine update",
                 source_polarity=1, p0=(0.6, 0.28, 0.12), a_source=0.2,
                 signal=SignalSpec(at=0.6, strength=0.3, reach=0.5, burst_fraction=0.05, counter=False,
                                   reversal=False)),
        Scenario("slow_drift", "controversy", "a controversy whose coverage slowly turns the crowd against it",
                 source_polarity=1, p0=(0.45, 0.35, 0.2), drift_start=0.6, drift=-1.4, a_source=0.0, a_feed=0.5,
                 a_parent=0.2, bias_sigma=0.8, theta_high=2.2),
    )
}
DEFAULT_MIX: tuple[str, ...] = tuple(SCENARIOS)


def scenario(name: str | Scenario, **overrides) -> Scenario:
    """A named scenario (or a given one) with parameter overrides; unknown names are an error."""
    if isinstance(name, Scenario):
        base = name
    else:
        try:
            base = SCENARIOS[name]
        except KeyError:
            raise ValueError(f"unknown synthetic scenario {name!r}; known: {', '.join(SCENARIOS)}") from None
    known = {f.name for f in fields(Scenario)}
    bad = set(overrides) - known
    if bad:
        raise ValueError(f"unknown scenario parameter(s) {sorted(bad)}; known: {', '.join(sorted(known))}")
    if isinstance(overrides.get("signal"), dict):  # merged into the scenario's own signal, if any
        sig = overrides["signal"]
        bad = set(sig) - {f.name for f in fields(SignalSpec)}
        if bad:
            raise ValueError(f"unknown signal parameter(s) {sorted(bad)}; known: "
                             f"{', '.join(f.name for f in fields(SignalSpec))}")
        overrides["signal"] = replace(base.signal, **sig) if base.signal else SignalSpec(**sig)
    return replace(base, **overrides)


def _event_seed(seed: int, name: str) -> np.random.Generator:
    return np.random.default_rng([int(seed) & 0xFFFFFFFF, zlib.crc32(name.encode())])


@dataclass
class _Cast:
    """Who writes each slot: users, their profiles, and the special (signal / institution) slots."""

    slot_user: np.ndarray
    pop: object  # synthetic_population.Population
    signal_slots: np.ndarray
    inst_slots: np.ndarray
    official_name: str

    def special(self, n: int) -> np.ndarray:
        mask = np.zeros(n, dtype=bool)
        mask[self.signal_slots] = True
        mask[self.inst_slots] = True
        return mask


def _cast(rng, sc: Scenario, n: int, signal_slots: np.ndarray, eid: str, topic: dict, place: str,
          media: str) -> _Cast:
    """Repeat and one-off users, a few media/institution accounts, the official account of each signal."""
    slot_user, n_users = assign_users(rng, n, sc.repeat_fraction, sc.repeat_pool)
    official_users = np.arange(n_users, n_users + len(signal_slots))
    slot_user[signal_slots] = official_users
    n_users += len(signal_slots)
    inst_slots = np.setdiff1d(np.flatnonzero(rng.random(n) < sc.institution_share), signal_slots)
    # institution slots get their own authors (an institution never posts as an ordinary user)
    slot_user[inst_slots] = n_users + np.arange(len(inst_slots))
    inst_users = np.r_[official_users, n_users + np.arange(len(inst_slots))].astype(np.int64)
    n_users += len(inst_slots)
    official_name = fill(str(topic["official"]), topic, place, media)
    pop = make_population(
        rng, slot_user, n_users, id_prefix=f"{eid}-", place=place, verified_share=sc.verified_share,
        institution_users=inst_users,
        institution_names={int(u): (official_name, int(topic["official_type"])) for u in official_users},
    )
    return _Cast(slot_user, pop, signal_slots, inst_slots, official_name)


def _dynamics(rng, sc: Scenario, n: int, arr, cast: _Cast, parent: np.ndarray, weight: np.ndarray,
              src_followers: int):
    """Per-agent traits, then the sequential hysteresis dynamics (synthetic_dynamics.evolve_states)."""
    U = cast.pop.n_users
    init = rng.choice(np.array([1, 0, -1]), size=U, p=np.asarray(sc.p0) / np.sum(sc.p0))
    theta = rng.uniform(sc.theta_low, sc.theta_high, U) * sc.hysteresis
    kappa = rng.lognormal(0.0, sc.kappa_sigma, U)
    cred = rng.uniform(0.4, 1.0, U)
    bias = rng.normal(0.0, sc.bias_sigma, U)
    fixed = np.where(cast.special(n), 0, 9).astype(np.int8)  # signals and institutions stay neutral
    sig = sc.signal
    pushes = [SignalPush(slot=int(s), time=float(arr.offsets[s]), strength=sig.strength, reach=sig.reach,
                         tau=sig.tau_hours * 3600, counter=sig.counter) for s in cast.signal_slots] if sig else []
    return evolve_states(
        cast.slot_user, parent, arr.offsets, weight, init, theta, kappa, cred, bias,
        root_state=int(np.sign(sc.source_polarity)), a_parent=sc.a_parent, a_feed=sc.a_feed,
        window=sc.feed_window, noise=rng.normal(0.0, sc.noise, n),
        drift=sc.drift_start + (sc.drift - sc.drift_start) * np.arange(n) / max(n - 1, 1),
        signals=pushes, fixed_state=fixed,
        exposure_draws=rng.random((n, len(pushes))), root_weight=math.log1p(src_followers),
        source_pull=sc.a_source,
    )


def _responses(rng, eid: str, t0: datetime, arr, cast: _Cast, parent: np.ndarray, share: np.ndarray,
               texts: list[str]) -> tuple[list[Response], list[datetime]]:
    n = len(texts)
    width = len(str(n))
    ids = [f"{eid}-r{i:0{width}d}" for i in range(n)]  # zero-padded: (time, id) order == slot order
    base_ts = t0.timestamp()
    times = [datetime.fromtimestamp(base_ts + s, tz=timezone.utc) for s in arr.offsets.astype(np.int64).tolist()]
    child_share = np.bincount(parent[(parent >= 0) & share], minlength=n).tolist()
    child_comment = np.bincount(parent[(parent >= 0) & ~share], minlength=n).tolist()
    pop = cast.pop
    likes = rng.poisson(0.05 * pop.followers[cast.slot_user].astype(np.float64) ** 0.6).tolist()
    par_l, share_l, users = parent.tolist(), share.tolist(), cast.slot_user.tolist()
    root = f"{eid}-src"
    responses = [
        Response(id=ids[i], time=times[i], user_id=pop.user_ids[users[i]], text=texts[i],
                 behavior="share" if share_l[i] else "comment", parent=ids[par_l[i]] if par_l[i] >= 0 else root,
                 reposts=child_share[i], comments=child_comment[i], likes=likes[i], profile=pop.profiles[users[i]])
        for i in range(n)
    ]
    return responses, times


def generate_event(
    scenario_name: str | Scenario = "rumor_debunked",
    n_responses: int = 2000,
    seed: int = 0,
    event_id: str | None = None,
    start: datetime | None = None,
    **overrides,
) -> Event:
    """One synthetic event of `n_responses` responses (signal responses included), fully seeded."""
    sc = scenario(scenario_name, **overrides)
    n = int(n_responses)
    if n < 32:
        raise ValueError(f"n_responses must be >= 32, got {n}")
    rng = _event_seed(seed, sc.name)
    eid = event_id or f"syn-{sc.name}-{seed}"
    topics = TOPICS[sc.family]
    topic = topics[int(rng.integers(len(topics)))]
    place = PLACES[int(rng.integers(len(PLACES)))]
    media = MEDIA[int(rng.integers(len(MEDIA)))]
    if start is None:
        start = datetime(2020, 1, 20, tzinfo=timezone.utc) + timedelta(seconds=int(rng.integers(0, 200 * 86400)))
    t0 = start.astimezone(timezone.utc).replace(microsecond=0)
    sig = sc.signal

    # 1. arrivals (each signal is one of the responses)
    arr = arrivals(
        rng, n, median_s=sc.median_minutes * 60, sigma=sc.sigma, n_bursts=sc.n_bursts,
        burst_fraction=sc.burst_fraction, burst_scale_s=sc.burst_minutes * 60,
        signal_quantiles=(sig.at,) if sig else (),
        signal_times_s=(None if sig.at_hours is None else sig.at_hours * 3600,) if sig else None,
        signal_burst_fraction=sig.burst_fraction if sig else 0.0,
        signal_scale_s=(sig.burst_minutes * 60) if sig else 1800.0, max_s=sc.max_days * 86400,
    )
    sig_slots = arr.signal_slots
    # 2. who writes each slot, 3. who reposts whom
    cast = _cast(rng, sc, n, sig_slots, eid, topic, place, media)
    pop = cast.pop
    weight = np.log1p(pop.followers[cast.slot_user].astype(np.float64))
    parent = choose_parents(rng, weight, p_root=sc.p_root, window=sc.feed_window, signal_slots=sig_slots,
                            after_signal_burst=arr.after_signal_burst, p_signal_parent=sc.p_signal_parent)
    special = cast.special(n)
    parent[special] = -1
    # 4. opinion dynamics with hysteresis
    src_followers = int(rng.lognormal(math.log(5e4), 1.0))
    dyn = _dynamics(rng, sc, n, arr, cast, parent, weight, src_followers)
    # 5. behavior and labels
    p_share = np.where(arr.after_signal_burst, min(1.0, sc.p_share + 0.2), sc.p_share)
    share = (rng.random(n) < p_share) & ~special
    bare = share & (rng.random(n) < sc.p_bare)
    labels = draw_labels(rng, dyn.states, share, bare, dyn.exposed, sc.source_polarity)
    is_signal = np.isin(np.arange(n), sig_slots)
    set_fixed(labels, is_signal, COUNTER_SIGNAL_LABELS if (sig and sig.counter) else NEWS_LABELS)
    set_fixed(labels, special & ~is_signal, NEWS_LABELS)
    # 6. texts
    signal_text = fill(str(topic["signal"]), topic, place, media)
    fixed_texts = {int(s): signal_text for s in sig_slots}
    fixed_texts.update({int(s): fill("【{headline}】{fact}", topic, place, media) for s in cast.inst_slots})
    author_names = [pop.screen_names[u] for u in cast.slot_user.tolist()]
    texts = TextRenderer(topic, place, media).render(
        rng, labels.codes, bare, dyn.exposed, parent, author_names, pop.screen_names[:200],
        p_mention=sc.p_mention, p_emoji=sc.p_emoji, p_sarcasm=sc.p_sarcasm, p_chain=sc.p_chain,
        fixed_texts=fixed_texts)
    # 7. records
    responses, times = _responses(rng, eid, t0, arr, cast, parent, share, texts)
    src_profile = Profile(followers=src_followers, friends=int(rng.integers(50, 2000)),
                          statuses=int(rng.integers(500, 20000)), gender="f" if rng.random() < 0.5 else "m",
                          verified=False, verified_type=-1, screen_name=nicknames(rng, 1)[0],
                          location=PROVINCES[int(rng.integers(len(PROVINCES)))])
    topic_post = SourcePost(id=f"{eid}-src", time=t0, user_id=f"{eid}-author",
                            text=fill(str(topic["source"]), topic, place, media), profile=src_profile)
    signals = [Signal(times[s], cast.official_name, signal_text) for s in sig_slots.tolist()]
    meta: dict = {
        "synthetic": True,
        "scenario": sc.name,
        "seed": int(seed),
        "params": sc.to_json(),
        "topic": str(topic["headline"]).format(place=place),
        "place": place,
        "is_rumor": sc.family in ("rumor", "accusation"),
        "signal_slots": sig_slots.tolist(),
        "step_size": STEP_SIZE,
        "truth": {
            "repeat_actions": dyn.repeat_actions,
            "state_switches": dyn.switches,
            "exposed_responses": int(dyn.exposed.sum()),
            "users": int(len(np.unique(cast.slot_user))),
        },
    }
    if sig is not None and sig.reversal and len(sig_slots):
        s = int(sig_slots[0])
        meta.update(reversal_slot=s, reversal_step=s // STEP_SIZE, reversal_time=times[s].isoformat())
    meta["labels"] = labels
    return Event(id=eid, format="synthetic", topic=topic_post, responses=responses, signals=signals, metadata=meta)


def _sizes(rng: np.random.Generator, n_events: int, responses: int | tuple[int, int]) -> list[int]:
    if isinstance(responses, int):
        return [responses] * n_events
    lo, hi = responses
    if lo > hi:
        raise ValueError(f"responses range ({lo}, {hi}) is empty")
    # log-uniform: real events span orders of magnitude
    return np.floor(np.exp(rng.uniform(math.log(lo), math.log(hi + 1), n_events))).astype(int).clip(lo, hi).tolist()


def generate_events(
    n_events: int = 8,
    responses: int | tuple[int, int] = (1000, 4000),
    seed: int = 0,
    scenarios: Iterable[str] | None = None,
    start: datetime | None = None,
) -> list[Event]:
    """`n_events` events cycling through `scenarios` (default: all built-in ones) in a seeded order.

    Events are spread over consecutive days from `start` (so date-based splits work) and get ids
    `syn-<k>-<scenario>`.
    """
    names = list(scenarios) if scenarios is not None else list(DEFAULT_MIX)
    for nm in names:
        scenario(nm)  # validate early
    rng = np.random.default_rng([int(seed) & 0xFFFFFFFF, 7])
    order = [names[i] for i in rng.permutation(len(names))]
    sizes = _sizes(rng, n_events, responses)
    day0 = start or datetime(2020, 1, 20, tzinfo=timezone.utc)
    events = []
    for k in range(n_events):
        name = order[k % len(order)]
        events.append(generate_event(
            name, sizes[k], seed=int(seed) * 1000 + k, event_id=f"syn-{k:03d}-{name}",
            start=day0 + timedelta(days=2 * k, hours=int(rng.integers(0, 24))),
        ))
    return events


def write_synthetic(events: Iterable[Event], path: str | os.PathLike) -> Path:
    """Write events (with their ground-truth labels) in the generic JSONL/CSV format."""
    from mfmdp.data.generic import write_events

    return write_events(events, path)
