"""Per-event inputs of f_psi: the leak-free Schedule (p_t, c_t, time_t) and the realised series.

- profiles p_t: mean PROFILE_FEATURES of the step's active (non-signal) agents + log1p(count)/3.
- signals c_t: two halves of width encoder_dim + 1 each (`signal_dim`). The pulse: mean embedding of
  the step's signal texts + log1p(#signals), zeros when none. The memory: an exponentially decaying
  mean of the embeddings of every signal at or before step t (weight SIGNAL_MEMORY_DECAY ** age in
  steps) + log1p(decayed count). A one-step pulse on ~5 % of training steps was learnt to be ignored;
  the memory keeps a debunk visible for the rest of the event, leak-free (never a later signal).
- time_t: log1p of seconds elapsed since the source post, seconds since the previous step's last slot,
  the step's duration, and the number of slots (all / 10 to keep them O(1)). Never behaviors, texts or
  labels of the step: the leakage rule allows only time and profile after warm-up.
- m_t: histogram of the states of step t's non-signal slots (unknown labels ignored; an empty step
  is uniform), exactly what the simulator computes from realised actions.
- r_t: the synopsis after step t (EMA of the embeddings of ALL the step's slots, signals included,
  as the simulator's synopsis does), from `mfmdp.meanfield.synopsis.synopsis_series`.
At step 0, f_psi is fed m_{-1} = uniform and r_{-1} = zeros (`initial_inputs`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mfmdp.core.schema import STATES
from mfmdp.core.records import PROFILE_FEATURES, Event
from mfmdp.data.stepping import Steps
from mfmdp.meanfield.histogram import normalise, step_counts
from mfmdp.meanfield.synopsis import synopsis_series
from mfmdp.transition.api import Schedule

PROFILE_DIM = len(PROFILE_FEATURES) + 1
TIME_FEATURES: tuple[str, ...] = ("log_elapsed", "log_gap", "log_duration", "log_slots")
TIME_DIM = len(TIME_FEATURES)


SIGNAL_MEMORY_DECAY = 0.97  # per step: a signal's memory weight halves after ~23 steps


def signal_dim(encoder_dim: int) -> int:
    """Width of c_t: pulse (mean embedding + log count) then memory (decayed mean + log decayed count)."""
    return 2 * (encoder_dim + 1)


def signal_pulse_dim(signal_width: int) -> int:
    """Width of the pulse half of a c_t that is `signal_width` wide (the first columns of c_t)."""
    return signal_width // 2


def signal_block(signal_embeddings: list[np.ndarray], encoder_dim: int,
                 decay: float = SIGNAL_MEMORY_DECAY) -> np.ndarray:
    """float32 [T, signal_dim(encoder_dim)] from one [n_t, encoder_dim] array of signal embeddings per
    step: [pulse mean | log1p(n_t) | memory mean | log1p(N_t)], where S_t = decay * S_{t-1} + sum_t,
    N_t = decay * N_{t-1} + n_t, memory mean = S_t / N_t (zeros before the first signal). A causal
    first-order filter over steps, so step t sees only signals at or before t."""
    if not 0.0 <= decay < 1.0:
        raise ValueError(f"signal memory decay must be in [0, 1), got {decay}")
    from scipy.signal import lfilter

    T = len(signal_embeddings)
    sums = np.zeros((T, encoder_dim), dtype=np.float64)
    n = np.zeros(T, dtype=np.float64)
    for t, emb in enumerate(signal_embeddings):
        if len(emb):
            if emb.ndim != 2 or emb.shape[1] != encoder_dim:
                raise ValueError(f"signal embeddings of step {t} have shape {emb.shape}, expected (n, {encoder_dim})")
            sums[t] = emb.sum(axis=0)
            n[t] = len(emb)
    sig = np.zeros((T, signal_dim(encoder_dim)), dtype=np.float32)
    if T == 0:
        return sig
    has = n > 0
    sig[has, :encoder_dim] = sums[has] / n[has, None]
    sig[:, encoder_dim] = np.log1p(n)
    # y_t = x_t + decay * y_{t-1}, vectorised over the embedding dims (stable for any T, unlike decay**-t)
    mem_sums = lfilter([1.0], [1.0, -decay], sums, axis=0)
    mem_n = lfilter([1.0], [1.0, -decay], n)
    seen = np.cumsum(n) > 0
    half = encoder_dim + 1
    sig[seen, half:half + encoder_dim] = mem_sums[seen] / mem_n[seen, None]
    sig[:, -1] = np.log1p(mem_n)
    return sig


def initial_inputs(n_states: int, synopsis_dim: int) -> tuple[np.ndarray, np.ndarray]:
    """(m_{-1}, r_{-1}) fed at step 0: a uniform histogram and a zero synopsis."""
    return np.full(n_states, 1.0 / n_states), np.zeros(synopsis_dim, dtype=np.float32)


@dataclass
class EventFeatures:
    """Everything f_psi trains on for one event (T steps)."""

    event_id: str
    schedule: Schedule
    m: np.ndarray  # float32 [T, S]: realised (real) state histograms
    counts: np.ndarray  # float32 [T]: labelled non-signal slots per step (0: m row is uniform filler)
    r: np.ndarray  # float32 [T, D]: synopsis after each step

    def __len__(self) -> int:
        return len(self.m)

    def teacher_inputs(self) -> tuple[np.ndarray, np.ndarray]:
        """(r_prev [T, D], m_prev [T, S]): inputs at step t are the realised r_{t-1}, m_{t-1}."""
        m0, r0 = initial_inputs(self.m.shape[1], self.r.shape[1])
        m_prev = np.concatenate([m0[None].astype(np.float32), self.m[:-1]], axis=0)
        r_prev = np.concatenate([r0[None], self.r[:-1]], axis=0)
        return r_prev, m_prev


def _step_times(event: Event, steps: Steps) -> tuple[np.ndarray, np.ndarray]:
    times = event.table.times
    if steps.start_times is not None and steps.end_times is not None:
        return np.asarray(steps.start_times, float), np.asarray(steps.end_times, float)
    b = steps.bounds
    return times[b[:-1]], times[b[1:] - 1]


def pool_profiles(profiles: np.ndarray, step_of: np.ndarray, agent: np.ndarray, T: int) -> np.ndarray:
    """float32 [T, PROFILE_DIM]: per-step mean profile of the active non-signal agents + log1p(count)/3
    (np.add.at keeps it vectorised). The simulator reuses it when it redraws a step's agents."""
    prof = np.zeros((T, PROFILE_DIM), dtype=np.float64)
    n_agents = np.bincount(step_of[agent], minlength=T).astype(np.float64)
    np.add.at(prof[:, : len(PROFILE_FEATURES)], step_of[agent], profiles[agent])
    prof[:, : len(PROFILE_FEATURES)] /= np.maximum(n_agents, 1.0)[:, None]
    prof[:, -1] = np.log1p(n_agents) / 3.0
    return prof.astype(np.float32)


def build_schedule(event: Event, steps: Steps, signal_embeddings: list[np.ndarray], encoder_dim: int,
                   signal_decay: float = SIGNAL_MEMORY_DECAY) -> Schedule:
    """The Schedule from slot times, author profiles and encoded signals (one array per step)."""
    tab = event.table
    T = len(steps)
    bounds = steps.bounds
    agent = ~steps.is_signal
    step_of = steps.step_of()
    prof = pool_profiles(tab.profiles, step_of, agent, T)
    if len(signal_embeddings) != T:
        raise ValueError(f"event {event.id!r}: {len(signal_embeddings)} signal arrays for {T} steps")
    sig = signal_block(signal_embeddings, encoder_dim, signal_decay)
    # time: relative features only (no absolute step index)
    start, end = _step_times(event, steps)
    t0 = event.topic.time.timestamp() if event.topic is not None and event.topic.time is not None else start[0]
    t0 = min(t0, start[0])  # a source post dated after its first response: count from the response
    prev_end = np.r_[start[0], end[:-1]]
    time = np.stack([
        np.log1p(np.maximum(start - t0, 0.0)),
        np.log1p(np.maximum(start - prev_end, 0.0)),
        np.log1p(np.maximum(end - start, 0.0)),
        np.log1p(np.diff(bounds).astype(np.float64)),
    ], axis=1) / 10.0
    return Schedule(profiles=prof.astype(np.float32), signals=sig, time=time.astype(np.float32))


def event_features(
    event: Event,
    steps: Steps,
    state_codes: np.ndarray,
    encoder,
    embeddings: np.ndarray | None = None,
    decay: float = 0.8,
    signal_decay: float = SIGNAL_MEMORY_DECAY,
) -> EventFeatures:
    """Schedule + real histograms + synopsis series of one event.

    `state_codes` int8 [n] (Labels.codes["state"], -1 unknown); `embeddings` [n, D] of the response
    texts if the caller has them (else they are encoded once here with `encoder`).
    """
    n = len(event.table)
    state_codes = np.asarray(state_codes)
    if state_codes.shape != (n,):
        raise ValueError(f"event {event.id!r}: state codes have shape {state_codes.shape}, expected ({n},)")
    if embeddings is None:
        embeddings = encoder.encode([str(t) for t in event.table.texts])
    if embeddings.shape != (n, encoder.dim):
        raise ValueError(f"event {event.id!r}: embeddings have shape {embeddings.shape}, expected ({n}, {encoder.dim})")
    sig_texts = [[s.text for s in step] for step in (steps.signals or [[] for _ in range(len(steps))])]
    flat = [t for texts in sig_texts for t in texts]
    flat_emb = encoder.encode(flat) if flat else np.zeros((0, encoder.dim), np.float32)
    sig_emb, i = [], 0
    for texts in sig_texts:
        sig_emb.append(flat_emb[i:i + len(texts)])
        i += len(texts)
    schedule = build_schedule(event, steps, sig_emb, encoder.dim, signal_decay)
    S = len(STATES)
    counts = step_counts(state_codes, steps.bounds, S, mask=~steps.is_signal)
    m = normalise(counts).astype(np.float32)
    r = synopsis_series(embeddings, steps.bounds, decay=decay)
    return EventFeatures(event.id, schedule, m, counts.sum(axis=1).astype(np.float32), r)
