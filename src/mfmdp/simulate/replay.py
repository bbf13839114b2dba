"""What the simulator may see of a real event: the leakage boundary made structural.

`Replay` carries, for every slot, only its time, profile and whether it is a signal; the warm-up
slots and the signal slots (replayed verbatim) also carry their texts, labels and embeddings. The real
texts, behaviors and labels of the simulated slots never enter a Replay, so a method cannot read them
(the blindness test permutes them and checks the simulation is bit-identical).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from mfmdp.core.schema import Labels
from mfmdp.core.records import Event, author_index
from mfmdp.data.stepping import Steps
from mfmdp.transition.api import Schedule


@dataclass
class Replay:
    event_id: str
    topic: str
    bounds: np.ndarray  # int64 [T+1]
    times: np.ndarray  # float64 [n] unix seconds of every slot
    profiles: np.ndarray  # float32 [n, P] profile features of every slot's author
    is_signal: np.ndarray  # bool [n]
    schedule: Schedule
    warmup_steps: int
    # Revealed slots: the warm-up slots and the signal slots (index arrays into the event's slots).
    revealed: np.ndarray  # int64 [k]
    revealed_texts: list[str]
    revealed_labels: Labels  # aligned with `revealed` (behavior from the data)
    revealed_embeddings: np.ndarray  # float32 [k, D]
    signal_texts: list[list[str]]  # per step: texts of the exogenous signals arriving then
    # int64 [n]: who responds in each slot (author_index: -1 unknown), known in advance like the
    # profiles and times; None for replays built before it existed
    authors: np.ndarray | None = None

    @property
    def n_steps(self) -> int:
        return len(self.bounds) - 1

    @property
    def n_slots(self) -> int:
        return len(self.times)

    @property
    def warmup_slots(self) -> int:
        return int(self.bounds[min(self.warmup_steps, self.n_steps)])

    def revealed_texts_at(self, positions: np.ndarray) -> list[str]:
        return [self.revealed_texts[p] for p in positions]

    def revealed_at(self, slots: np.ndarray) -> np.ndarray:
        """Positions in `revealed` of the given (revealed) slot indices."""
        pos = np.searchsorted(self.revealed, slots)
        if len(slots) and (pos.max(initial=0) >= len(self.revealed) or not np.array_equal(self.revealed[pos], slots)):
            raise KeyError("slot is not revealed to the simulator (leakage rule)")
        return pos


def make_replay(
    event: Event,
    steps: Steps,
    labels: Labels,
    embeddings: np.ndarray,
    schedule: Schedule,
    warmup_steps: int,
) -> Replay:
    """Cut the event at the leakage boundary. `labels`/`embeddings` cover every slot of the event;
    only the warm-up and signal rows are kept."""
    tab = event.table
    n = len(tab)
    if warmup_steps < 1 or warmup_steps >= len(steps):
        raise ValueError(
            f"event {event.id!r}: warm-up of {warmup_steps} steps needs an event of more steps "
            f"(it has {len(steps)} steps of responses)"
        )
    warm = int(steps.bounds[warmup_steps])
    revealed_mask = np.zeros(n, dtype=bool)
    revealed_mask[:warm] = True
    revealed_mask |= steps.is_signal
    revealed = np.flatnonzero(revealed_mask)
    rev_labels = labels.take(revealed)
    rev_labels.codes["behavior"] = tab.behavior[revealed].astype(np.int8)
    return Replay(
        event_id=event.id,
        topic=event.topic.text,
        bounds=steps.bounds.copy(),
        times=tab.times.copy(),
        profiles=tab.profiles.copy(),
        is_signal=steps.is_signal.copy(),
        schedule=schedule,
        warmup_steps=warmup_steps,
        revealed=revealed,
        revealed_texts=[str(tab.texts[i]) for i in revealed],
        revealed_labels=rev_labels,
        revealed_embeddings=np.asarray(embeddings[revealed], dtype=np.float32),
        signal_texts=[[s.text for s in sigs] for sigs in steps.signals],
        authors=author_index(tab.user_ids),
    )


def resample_pool(replay: Replay, seed: int) -> Replay:
    """The pool_resampled ablation: each simulated agent's profile is drawn from the warm-up's
    agents instead of the real arrival's, and f_psi's pooled profile input follows suit."""
    from mfmdp.transition.features import pool_profiles

    rng = np.random.default_rng(seed)
    warm = np.flatnonzero(~replay.is_signal[: replay.warmup_slots])
    if not len(warm):
        raise ValueError(f"event {replay.event_id!r}: no warm-up agents to resample profiles from")
    profiles = replay.profiles.copy()
    later = np.arange(replay.warmup_slots, replay.n_slots)
    later = later[~replay.is_signal[later]]
    profiles[later] = replay.profiles[rng.choice(warm, size=len(later))]
    step_of = np.repeat(np.arange(replay.n_steps), np.diff(replay.bounds))
    pooled = pool_profiles(profiles, step_of, ~replay.is_signal, replay.n_steps)
    schedule = replace(replay.schedule, profiles=pooled)
    return replace(replay, profiles=profiles, schedule=schedule)
