"""The schedule's signal block c_t: a one-step pulse plus a leak-free, decaying signal memory."""

from __future__ import annotations

import numpy as np
import pytest

from mfmdp.transition.features import SIGNAL_MEMORY_DECAY, signal_block, signal_dim

D = 4


def _steps(T: int, at: dict[int, np.ndarray]) -> list[np.ndarray]:
    return [np.asarray(at[t], np.float32) if t in at else np.zeros((0, D), np.float32) for t in range(T)]


def test_width_is_signal_dim():
    assert signal_dim(D) == 2 * (D + 1)
    assert signal_block(_steps(5, {}), D).shape == (5, signal_dim(D))
    assert signal_block([], D).shape == (0, signal_dim(D))


def test_memory_persists_after_the_signal_step_and_decays():
    e = np.array([[1.0, 0.0, 2.0, 0.0]])
    sig = signal_block(_steps(30, {5: e}), D, decay=0.9)
    pulse, pulse_n, mem, mem_n = sig[:, :D], sig[:, D], sig[:, D + 1:-1], sig[:, -1]
    assert not sig[:5].any()  # nothing before the signal
    np.testing.assert_allclose(pulse[5], e[0]) and np.testing.assert_allclose(pulse_n[5], np.log1p(1))
    assert not pulse[6:].any() and not pulse_n[6:].any()  # the pulse lasts one step
    np.testing.assert_allclose(mem[5:], np.broadcast_to(e, (25, D)), rtol=1e-6)  # the memory keeps the content
    np.testing.assert_allclose(mem_n[5:], np.log1p(0.9 ** np.arange(25)), rtol=1e-5)  # and fades with age
    assert (np.diff(mem_n[5:]) < 0).all()


def test_memory_is_a_decay_weighted_mean_of_all_signals_so_far():
    a, b = np.array([[1.0, 0, 0, 0], [3.0, 0, 0, 0]]), np.array([[0, 0, 0, 4.0]])
    decay = 0.5
    sig = signal_block(_steps(6, {1: a, 3: b}), D, decay=decay)
    w_a, w_b = 2 * decay ** 2, 1.0  # at step 3: two signals two steps old, one fresh
    expect = (a.sum(0) * decay ** 2 + b.sum(0)) / (w_a + w_b)
    np.testing.assert_allclose(sig[3, D + 1:-1], expect, rtol=1e-6)
    np.testing.assert_allclose(sig[3, -1], np.log1p(w_a + w_b), rtol=1e-6)
    np.testing.assert_allclose(sig[2, D + 1:-1], a.mean(0), rtol=1e-6)  # b not yet arrived


def test_leak_free_no_future_signal_changes_an_earlier_step():
    rng = np.random.default_rng(0)
    T, cut = 40, 17
    base = {t: rng.normal(size=(int(rng.integers(1, 3)), D)) for t in (3, 9, 16)}
    a = signal_block(_steps(T, base), D)
    later = base | {t: rng.normal(size=(2, D)) for t in (17, 25, 39)}
    b = signal_block(_steps(T, later), D)
    np.testing.assert_array_equal(a[:cut], b[:cut])
    assert not np.array_equal(a[cut:], b[cut:])


def test_default_decay_and_bad_input():
    assert 0.9 <= SIGNAL_MEMORY_DECAY < 1.0
    with pytest.raises(ValueError, match="decay"):
        signal_block(_steps(3, {}), D, decay=1.0)
    with pytest.raises(ValueError, match="step 1"):
        signal_block(_steps(3, {1: np.ones((1, D + 1))}), D)


def test_long_event_stays_finite():
    T = 20_000  # decay ** -T would overflow; the recursive filter must not
    sig = signal_block(_steps(T, {0: np.ones((1, D)), T - 1: np.zeros((1, D))}), D)
    assert np.isfinite(sig).all()
    np.testing.assert_allclose(sig[T - 2, D + 1:-1], 1.0, rtol=1e-5)


def test_a_checkpoint_from_before_the_memory_is_told_to_retrain():
    from mfmdp.transition.api import Schedule
    from mfmdp.transition.features import PROFILE_DIM, TIME_DIM
    from mfmdp.transition.model import TransitionConfig
    from mfmdp.transition.session import check_schedule

    old = TransitionConfig(synopsis_dim=D, signal_dim=D + 1, d_model=8, n_layers=1, n_heads=2, d_ff=16)
    sched = Schedule(np.zeros((3, PROFILE_DIM), np.float32), signal_block(_steps(3, {}), D),
                     np.zeros((3, TIME_DIM), np.float32))
    with pytest.raises(ValueError, match="predates the signal memory"):
        check_schedule(old, sched)


def test_a_policy_can_read_the_pulse_only():
    from mfmdp.policy.inputs import PolicyInputs
    from mfmdp.policy.network import NeuralPolicyConfig, agent_features

    full = NeuralPolicyConfig(context_dim=3, signal_dim=signal_dim(D), time_dim=2, inputs=PolicyInputs())
    pulse = NeuralPolicyConfig(context_dim=3, signal_dim=signal_dim(D), time_dim=2,
                               inputs=PolicyInputs(signal_memory=False))
    assert full.input_dim - pulse.input_dim == D + 1
    sig = signal_block(_steps(4, {0: np.ones((1, D))}), D)  # step 2: memory only, no pulse
    prof, ctx, time = np.zeros((2, pulse.profile_dim)), np.zeros(3), np.zeros(2)
    a = agent_features(pulse, prof, ctx, sig[2], time)
    assert a.shape == (2, pulse.input_dim) and not a[:, 1 + pulse.profile_dim + 3:-2].any()
    assert agent_features(full, prof, ctx, sig[2], time)[:, 1 + full.profile_dim + 3:-2].any()


def test_methods_with_the_prior_leave_the_signal_memory_to_f_psi():
    from mfmdp.simulate.methods import METHODS

    for name, inputs in ((m, s.inputs) for m, s in METHODS.items() if s.inputs is not None):
        assert inputs.signal_memory == (not inputs.use_prior), name
