"""Steps: consecutive blocks of responses in time order (or time buckets), with exogenous signals.

Active agents at step t are the authors of the step's slots; signal slots (responses by designated
information-source accounts) are replayed verbatim, never simulated, and excluded from scoring.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Callable

import numpy as np

from mfmdp.core.records import Event, Profile, Signal

SignalRule = Callable[[Profile | None], bool]


def verified_institution_rule(profile: Profile | None) -> bool:
    """Default information-source rule: verified organisation accounts (Weibo verified_type 1..7:
    government, enterprise, media, campus, website, app, organisation)."""
    return bool(profile is not None and profile.verified and profile.verified_type is not None
                and 1 <= profile.verified_type <= 7)


@dataclass
class Steps:
    bounds: np.ndarray  # int64 [T+1]: step t holds table rows bounds[t]:bounds[t+1]
    is_signal: np.ndarray  # bool [n]: slot replayed as an exogenous signal, not simulated or scored
    signals: list[list[Signal]] = field(default_factory=list)  # per step: signals arriving in step t
    start_times: np.ndarray | None = None  # float64 [T] unix seconds of each step's first slot
    end_times: np.ndarray | None = None  # float64 [T] unix seconds of each step's last slot

    def __len__(self) -> int:
        return len(self.bounds) - 1

    @property
    def sizes(self) -> np.ndarray:
        return np.diff(self.bounds)

    def step_of(self) -> np.ndarray:
        """int32 [n]: the step of every slot."""
        return np.repeat(np.arange(len(self), dtype=np.int32), self.sizes)

    def slots(self, t: int) -> slice:
        return slice(int(self.bounds[t]), int(self.bounds[t + 1]))


def _block_bounds(n: int, size: int) -> np.ndarray:
    if size < 1:
        raise ValueError(f"step size must be >= 1, got {size}")
    return np.unique(np.r_[np.arange(0, n, size), n]).astype(np.int64)


def _time_bounds(times: np.ndarray, seconds: float) -> np.ndarray:
    if seconds <= 0:
        raise ValueError(f"bucket seconds must be > 0, got {seconds}")
    bucket = np.floor((times - times[0]) / seconds).astype(np.int64)
    change = np.flatnonzero(np.diff(bucket)) + 1  # empty buckets produce no step
    return np.r_[0, change, len(times)].astype(np.int64)


def make_steps(
    event: Event,
    size: int = 16,
    bucket_seconds: float | None = None,
    signal_rule: SignalRule | None = None,
    scenario: list[Signal] | None = None,
) -> Steps:
    """Blocks of `size` responses (default, as in the paper) or time buckets of `bucket_seconds`.

    `signal_rule(profile)` designates information-source responses as signals; `scenario` adds
    exogenous signals, each attached to the first step that ends at or after its time (or the last).
    """
    tab = event.table
    n = len(tab)
    if n == 0:
        raise ValueError(f"event {event.id!r} has no responses")
    bounds = _time_bounds(tab.times, bucket_seconds) if bucket_seconds else _block_bounds(n, size)
    starts = tab.times[bounds[:-1]]
    ends = tab.times[bounds[1:] - 1]
    is_signal = np.zeros(n, dtype=bool)
    per_step: list[list[Signal]] = [[] for _ in range(len(bounds) - 1)]
    if signal_rule is not None:
        for i, r in enumerate(event.responses):
            if signal_rule(r.profile):
                is_signal[i] = True
        step_of = np.repeat(np.arange(len(per_step)), np.diff(bounds))
        for i in np.flatnonzero(is_signal):
            r = event.responses[i]
            name = (r.profile.screen_name if r.profile and r.profile.screen_name else r.user_id)
            per_step[step_of[i]].append(Signal(r.time, name, r.text))
    for sig in list(event.signals) + list(scenario or []):
        ts = sig.time.timestamp()
        t = int(min(np.searchsorted(ends, ts, side="left"), len(per_step) - 1))
        if sig not in per_step[t]:  # a signal both posted as a response and listed in event.signals
            per_step[t].append(sig)
    return Steps(bounds=bounds, is_signal=is_signal, signals=per_step, start_times=starts, end_times=ends)


def utc_from_unix(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, tz=timezone.utc)
