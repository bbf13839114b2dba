"""Each author's own earlier response in an event: per-agent evidence the data really has.

An author who responded before in the same event is likely to hold the same state again (on the
synthetic demo a repeat author's state is far better predicted with it; bench/agent_evidence.py
measures it on real events). The policy reads it (PolicyInputs.use_own_history) as
[has an earlier response, one-hot of its state]; the memory is "as of the start of step t", the
same rule in training (real states) and in simulation (real during warm-up, simulated after).
"""

from __future__ import annotations

import numpy as np

from mfmdp.core.schema import STATES

OWN_HISTORY_DIM = 1 + len(STATES)


class AuthorMemory:
    """The latest known state of each author of one event (-1: none yet)."""

    def __init__(self, n_authors: int):
        self.last = np.full(max(n_authors, 0), -1, dtype=np.int64)

    def lookup(self, authors: np.ndarray) -> np.ndarray:
        """int64 [k]: each author's latest state, -1 for no earlier response or an unknown author."""
        authors = np.asarray(authors, dtype=np.int64)
        out = np.full(len(authors), -1, dtype=np.int64)
        known = authors >= 0
        out[known] = self.last[authors[known]]
        return out

    def update(self, authors: np.ndarray, states: np.ndarray) -> None:
        """Record a step's realised states (later slots win; unknown authors and states are skipped)."""
        authors, states = np.asarray(authors, dtype=np.int64), np.asarray(states, dtype=np.int64)
        keep = (authors >= 0) & (states >= 0)
        self.last[authors[keep]] = states[keep]  # numpy assigns repeated indices in order: the last wins


def previous_states(authors: np.ndarray, states: np.ndarray, bounds: np.ndarray) -> np.ndarray:
    """int64 [n]: for every slot, its author's latest state as of the start of the slot's step
    (the teacher-forced series of what AuthorMemory gives the simulator)."""
    authors = np.asarray(authors, dtype=np.int64)
    memory = AuthorMemory(int(authors.max()) + 1 if len(authors) else 0)
    out = np.full(len(authors), -1, dtype=np.int64)
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        out[lo:hi] = memory.lookup(authors[lo:hi])
        memory.update(authors[lo:hi], states[lo:hi])
    return out


def own_history_features(previous: np.ndarray | None, n: int) -> np.ndarray:
    """float32 [n, 1 + S]: [has an earlier response, one-hot of its state] (zeros when unknown)."""
    out = np.zeros((n, OWN_HISTORY_DIM), dtype=np.float32)
    if previous is None:
        return out
    previous = np.asarray(previous, dtype=np.int64)
    has = previous >= 0
    out[has, 0] = 1.0
    out[np.flatnonzero(has), 1 + previous[has]] = 1.0
    return out
