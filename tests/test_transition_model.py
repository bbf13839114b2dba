"""Event Transformer: incremental == full forward, window, fork/rollout, gradients, checkpoints."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mfmdp.transition.api import TransitionModel, TransitionSession
from mfmdp.transition.model import EventTransformer
from mfmdp.transition.session import schedule_matrix
from tests.transition_helpers import random_inputs, random_schedule, tiny_model


def full_forward(model, schedule, m_prev, r_prev) -> np.ndarray:
    with torch.no_grad():
        logits = model(torch.from_numpy(r_prev)[None], torch.from_numpy(m_prev)[None],
                       torch.from_numpy(schedule_matrix(schedule))[None])
    return torch.softmax(logits.double(), -1)[0].numpy()


def test_protocols():
    model = tiny_model()
    sess = model.session(random_schedule(5, model.cfg))
    assert isinstance(model, TransitionModel) and isinstance(sess, TransitionSession)


@pytest.mark.parametrize("T", [4, 23])
def test_incremental_equals_full_forward(T):
    model = tiny_model()
    sched = random_schedule(T, model.cfg)
    m, r = random_inputs(T, model.cfg)
    full = full_forward(model, sched, m, r)
    inc = model.session(sched).teacher_force(m, r)
    np.testing.assert_allclose(inc, full, atol=2e-5)
    np.testing.assert_allclose(inc.sum(1), 1.0, atol=1e-6)


def test_window_is_respected():
    """Inputs older than the receptive field n_layers*(W-1) cannot move the output at t; a
    one-layer model sees exactly W steps."""
    for layers in (1, 2):
        model = tiny_model(n_layers=layers, window=4)
        reach = layers * (model.cfg.window - 1)
        T = 20
        sched = random_schedule(T, model.cfg)
        m, r = random_inputs(T, model.cfg)
        base = full_forward(model, sched, m, r)
        t = T - 1
        m2, r2 = m.copy(), r.copy()
        m2[: t - reach] = np.roll(m2[: t - reach], 1, axis=1)
        r2[: t - reach] *= -3
        moved = full_forward(model, sched, m2, r2)
        np.testing.assert_allclose(moved[t], base[t], atol=1e-6)
        # ... while an input just inside the field does move it
        m3 = m.copy()
        m3[t - reach] = np.roll(m3[t - reach], 1)
        assert np.abs(full_forward(model, sched, m3, r)[t] - base[t]).max() > 1e-5
        # the incremental path agrees on the perturbed sequence as well
        np.testing.assert_allclose(model.session(sched).teacher_force(m2, r2), moved, atol=2e-5)


def test_step_cost_does_not_depend_on_history():
    model = tiny_model(window=4)
    sess = model.session(random_schedule(50, model.cfg))
    m, r = random_inputs(50, model.cfg)
    sess.teacher_force(m, r)
    assert sess.t == 50 and all(k.shape[2] == 4 for k in sess._k)  # ring buffer of W, not of t


def test_rollout_matches_self_fed_stepping_and_leaves_session_unchanged():
    model = tiny_model()
    T = 30
    sched = random_schedule(T, model.cfg)
    m, r = random_inputs(T, model.cfg)
    sess = model.session(sched)
    sess.teacher_force(m[:12], r[:12])
    before = [k.copy() for k in sess._k], sess.t
    K = 9  # runs past the schedule's end? no: 12 + 9 < 30; see the next test for that
    ro = sess.rollout(m[12:13], r[12:13], K)
    assert ro.shape == (1, K, 3)
    assert sess.t == before[1] and all(np.array_equal(a, b) for a, b in zip(sess._k, before[0]))
    ref = model.session(sched)
    ref.teacher_force(m[:12], r[:12])
    cur, outs = m[12:13], []
    for _ in range(K):
        cur = ref.step(cur, r[12:13])
        outs.append(cur[0])
    np.testing.assert_allclose(ro[0], np.array(outs), atol=2e-5)


def test_fork_and_batched_candidates_are_independent():
    model = tiny_model()
    T = 12
    sched = random_schedule(T, model.cfg)
    m, r = random_inputs(T, model.cfg)
    sess = model.session(sched)
    sess.teacher_force(m[:5], r[:5])
    fork = sess.fork(3)
    assert fork.batch == 3 and fork.t == sess.t
    J = 4
    rng = np.random.default_rng(0)
    firsts = rng.dirichlet(np.ones(3), size=3 * J).astype(np.float32)
    rs = np.repeat(r[5:6], 3 * J, 0)
    out = fork.rollout(firsts, rs, 20)  # runs past the end of the schedule (repeats its last row)
    assert out.shape == (3 * J, 20, 3)
    for i in (0, 5, 11):  # each candidate row equals a rollout of that row alone
        alone = sess.rollout(firsts[i:i + 1], rs[:1], 20)[0]
        np.testing.assert_allclose(out[i], alone, atol=2e-5)
    assert np.abs(out[0] - out[1]).max() > 1e-4  # different candidates, different futures
    # stepping a fork leaves the parent untouched
    before = sess.step(m[5:6], r[5:6])
    fork.step(np.repeat(m[5:6] * 0 + [[1, 0, 0]], 3, 0).astype(np.float32), np.repeat(r[5:6], 3, 0))
    sess2 = model.session(sched)
    sess2.teacher_force(m[:5], r[:5])
    np.testing.assert_allclose(before, sess2.step(m[5:6], r[5:6]), atol=1e-7)


def test_rollout_torch_grad_flows_to_m_first_only():
    model = tiny_model()
    sched = random_schedule(15, model.cfg)
    m, r = random_inputs(15, model.cfg)
    sess = model.session(sched)
    sess.teacher_force(m[:7], r[:7])
    m_first = torch.tensor(np.repeat(m[7:8], 2, 0), requires_grad=True)
    out = sess.rollout_torch(m_first, np.repeat(r[7:8], 2, 0), 5)
    np.testing.assert_allclose(out.detach().numpy(), sess.rollout(m_first.detach().numpy(), np.repeat(r[7:8], 2, 0), 5),
                               atol=2e-5)
    (out[:, -1, 0].sum()).backward()
    assert m_first.grad is not None and m_first.grad.abs().sum() > 0
    assert all(p.grad is None for p in model.parameters())


def test_bad_shapes_are_named():
    model = tiny_model()
    sess = model.session(random_schedule(5, model.cfg))
    with pytest.raises(ValueError, match="m_prev must have shape"):
        sess.step(np.ones((1, 4)), np.zeros((1, model.cfg.synopsis_dim)))
    with pytest.raises(ValueError, match="multiple of the session batch"):
        sess.fork(2).rollout(np.ones((3, 3)) / 3, np.zeros((3, model.cfg.synopsis_dim)), 2)
    bad = random_schedule(5, model.cfg)
    bad.signals = bad.signals[:, :3]
    with pytest.raises(ValueError, match="schedule.signals"):
        model.session(bad)


def test_save_load_round_trip(tmp_path):
    model = tiny_model(seed=3)
    model.save(tmp_path / "ckpt")
    assert (tmp_path / "ckpt" / "model.safetensors").is_file() and (tmp_path / "ckpt" / "config.json").is_file()
    back = EventTransformer.load(tmp_path / "ckpt")
    assert back.cfg == model.cfg
    sched = random_schedule(8, model.cfg)
    m, r = random_inputs(8, model.cfg)
    np.testing.assert_array_equal(back.session(sched).teacher_force(m, r), model.session(sched).teacher_force(m, r))
    with pytest.raises(FileNotFoundError, match="missing model.safetensors"):
        (tmp_path / "ckpt" / "model.safetensors").unlink()
        EventTransformer.load(tmp_path / "ckpt")
