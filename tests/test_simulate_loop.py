"""Algorithm 1 with fake components: mechanics, warm-up replay, reselection wiring, leakage."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import numpy as np
import pytest

from mfmdp.core.schema import DIMENSIONS, STATES, Labels
from mfmdp.core.records import Event, Profile, Response, SourcePost
from mfmdp.data.stepping import make_steps, verified_institution_rule
from mfmdp.policy.base import Actions, Proposal
from mfmdp.simulate import floors
from mfmdp.simulate.loop import LoopParts, simulate
from mfmdp.simulate.replay import make_replay
from mfmdp.transition.api import Schedule

S = len(STATES)
D = 4


def make_event(n=200, seed=0):
    rng = np.random.default_rng(seed)
    t0 = datetime(2020, 1, 1, tzinfo=timezone.utc)
    rs = []
    for i in range(n):
        official = i % 50 == 25
        prof = Profile(followers=int(rng.integers(1, 1000)), verified=official, verified_type=1 if official else -1,
                       screen_name="gov" if official else None)
        rs.append(Response(f"r{i:04d}", t0 + timedelta(seconds=10 * i), f"u{i}", f"text {i}",
                           "comment" if i % 3 else "share", profile=prof))
    event = Event("e1", "generic", SourcePost("s", t0, "src", "topic"), rs)
    labels = Labels({d: rng.integers(0, len(v), n).astype(np.int8) for d, v in DIMENSIONS.items()})
    labels.codes["behavior"] = event.table.behavior.copy()
    emb = rng.normal(size=(n, D)).astype(np.float32)
    return event, labels, emb


def schedule_for(steps):
    T = len(steps)
    return Schedule(np.zeros((T, 3), np.float32), np.zeros((T, D), np.float32), np.arange(T, dtype=np.float32)[:, None])


class FakeSession:
    """Persistence forecaster: m^_t = m_{t-1}; rollouts carry the candidate mix forward."""

    def __init__(self, T):
        self.t, self.batch, self.T = 0, 1, T

    def step(self, m_prev, r_prev):
        self.t += 1
        return np.asarray(m_prev, float)

    def fork(self, copies):
        s = FakeSession(self.T)
        s.t, s.batch = self.t, self.batch * copies
        return s

    def rollout(self, m_first, r_frozen, k):
        return np.repeat(np.asarray(m_first, float)[:, None, :], k, axis=1)

    def rollout_torch(self, m_first, r_frozen, k):  # pragma: no cover - unused here
        raise NotImplementedError


class FakeTransition:
    n_states, synopsis_dim = S, D

    def session(self, schedule, batch=1):
        return FakeSession(len(schedule))


class FakePolicy:
    """Candidate j puts its mass on state j % S; realised states sampled from it."""

    name = "fake"

    def propose(self, ctx, n_candidates, rng):
        n = len(ctx.profiles)
        probs = np.full((n_candidates, n, S), 0.05)
        for j in range(n_candidates):
            probs[j, :, j % S] = 0.9
        return Proposal(probs / probs.sum(-1, keepdims=True))

    def realise(self, ctx, proposal, j, rng):
        q = proposal.state_probs[j]
        states = np.array([rng.choice(S, p=row) for row in q], dtype=np.int8)
        behaviors = rng.integers(0, 2, len(states)).astype(np.int8)
        texts = [f"sim {s}" for s in states]
        lab = Labels({d: np.zeros(len(states), np.int8) for d in DIMENSIONS})
        return Actions(states, behaviors, texts, np.ones((len(states), D), np.float32), extra={"labels": lab})

    def nll(self, ctx, states, behaviors):
        return np.zeros(len(states))


class NoAnnotator:
    name = "none"

    def annotate(self, texts, topic, behaviors=None):  # pragma: no cover - labels come with actions
        raise AssertionError("the policy supplies labels")


def build(seed=0, warmup=3):
    event, labels, emb = make_event(seed=seed)
    steps = make_steps(event, 16, signal_rule=verified_institution_rule)
    replay = make_replay(event, steps, labels, emb, schedule_for(steps), warmup)
    return event, labels, emb, steps, replay


def parts(**kw):
    base = dict(policy=FakePolicy(), annotator=NoAnnotator(), encoder=None, transition=FakeTransition())
    base.update(kw)
    return LoopParts(**base)


def test_warmup_and_signals_are_replayed_and_rest_simulated():
    event, labels, emb, steps, replay = build()
    res = simulate(replay, parts(), seed=1)
    warm = replay.warmup_slots
    assert np.array_equal(res.labels.codes["state"][:warm], labels.codes["state"][:warm])
    sig = np.flatnonzero(steps.is_signal)
    assert len(sig) > 0
    assert np.array_equal(res.labels.codes["state"][sig], labels.codes["state"][sig])
    assert all(res.texts[i] == event.responses[i].text for i in sig)
    sim = np.setdiff1d(np.arange(warm, len(event)), sig)
    assert all(res.texts[i].startswith("sim") for i in sim)
    assert (res.chosen[: replay.warmup_steps] == -1).all() and (res.chosen[replay.warmup_steps :] >= 0).all()


def test_realised_histogram_feeds_next_forecast():
    _, _, _, steps, replay = build()
    res = simulate(replay, parts(), seed=2)
    # FakeSession forecasts m^_t = m_{t-1}: the realised histogram of the previous step.
    assert np.allclose(res.m_hat[1:], res.m_realised[:-1])


class RecordingTransition(FakeTransition):
    """Records the synopsis f_psi is fed at every step."""

    def __init__(self):
        self.seen = []

    def session(self, schedule, batch=1):
        outer, sess = self, FakeSession(len(schedule))
        step = sess.step

        def recording_step(m_prev, r_prev):
            outer.seen.append(np.array(r_prev[0], copy=True))
            return step(m_prev, r_prev)

        sess.step = recording_step
        return sess


@pytest.mark.parametrize("realised", [True, False])
def test_transition_synopsis_realised_or_frozen_after_warmup(realised):
    _, _, _, _, replay = build()
    tr = RecordingTransition()
    simulate(replay, parts(transition=tr, transition_reads_realised=realised), seed=3)
    w = replay.warmup_steps
    after = np.stack(tr.seen[w + 1:])
    # the input at w is the synopsis at the end of warm-up; after that it moves only when realised
    assert np.allclose(after, tr.seen[w]) != realised
    assert not np.allclose(tr.seen[1], tr.seen[w])  # warm-up updates it either way


def test_same_seed_same_result_and_seed_matters():
    _, _, _, _, replay = build()
    a = simulate(replay, parts(candidates=3), seed=5)
    b = simulate(replay, parts(candidates=3), seed=5)
    c = simulate(replay, parts(candidates=3), seed=6)
    assert np.array_equal(a.labels.codes["state"], b.labels.codes["state"])
    assert not np.array_equal(a.labels.codes["state"], c.labels.codes["state"])


def test_blind_to_real_actions_after_warmup():
    """The leakage rule: permuting real texts, behaviors and labels after warm-up changes nothing."""
    event, labels, emb, steps, replay = build(warmup=3)
    base = simulate(replay, parts(candidates=1), seed=3)
    warm = replay.warmup_slots
    rng = np.random.default_rng(9)
    hidden = np.setdiff1d(np.arange(warm, len(event)), np.flatnonzero(steps.is_signal))
    perm = rng.permutation(hidden)
    labels2 = labels.take(np.arange(len(event)))
    for d in DIMENSIONS:
        labels2.codes[d][hidden] = labels.codes[d][perm]
    for i, j in zip(hidden, perm):
        event.responses[i].text = "leak " + event.responses[j].text
        event.responses[i].behavior = "share"
    event.__dict__.pop("table", None)
    emb2 = emb.copy()
    emb2[hidden] = emb[perm] * 3
    replay2 = make_replay(event, steps, labels2, emb2, replay.schedule, 3)
    other = simulate(replay2, parts(candidates=1), seed=3)
    for d in DIMENSIONS:
        assert np.array_equal(base.labels.codes[d], other.labels.codes[d])
    assert base.texts == other.texts
    assert np.array_equal(base.m_hat, other.m_hat)


def test_floors_emit_labels_on_scored_slots_only():
    event, labels, emb, steps, replay = build()
    scored = floors.scored_slots(replay)
    p = floors.persistence(replay, seed=0)
    assert (p.codes["state"][scored] >= 0).all()
    assert np.array_equal(p.codes["state"][: replay.warmup_slots], labels.codes["state"][: replay.warmup_slots])
    reg = floors.RegressionFloor().fit([replay], [labels])
    r = reg.sample(replay, seed=0)
    assert (r.codes["sentiment"][scored] >= 0).all()
    lab, fc = floors.transition_only(replay, FakeTransition(), seed=0)
    assert fc.shape == (replay.n_steps, S) and (lab.codes["state"][scored] >= 0).all()


def test_floors_realise_states_with_the_agents_low_variance_draws_when_asked():
    """state_draws systematic reaches the floors too: each step's states follow the floor's mix to
    within one response per state (independent draws do not), so no method wins by noise alone."""
    _, labels, _, _, replay = build()
    mix = floors.warmup_mix(replay, "state")
    worst = {}
    for systematic in (False, True):
        errors = []
        for seed in range(5):
            codes = floors.persistence(replay, seed=seed, systematic=systematic).codes["state"]
            for block in floors._state_blocks(replay, floors.scored_slots(replay)):
                counts = np.bincount(codes[block], minlength=S)
                errors.append(np.abs(counts - mix * len(block)).max())
        worst[systematic] = max(errors)
    assert worst[True] < 1.0 + 1e-9 < worst[False]
    lab, _ = floors.transition_only(replay, FakeTransition(), seed=0, systematic=True)
    assert (lab.codes["state"][floors.scored_slots(replay)] >= 0).all()
    reg = floors.RegressionFloor().fit([replay], [labels])
    assert not np.array_equal(reg.sample(replay, seed=0).codes["state"], reg.sample(replay, seed=0, systematic=True).codes["state"])


def test_pool_resampled_draws_profiles_from_warmup_agents():
    from mfmdp.simulate.replay import resample_pool

    _, _, _, steps, replay = build()
    rep2 = resample_pool(replay, seed=0)
    warm_rows = {tuple(r) for r in replay.profiles[: replay.warmup_slots][~replay.is_signal[: replay.warmup_slots]]}
    later = floors.scored_slots(replay)
    assert all(tuple(r) in warm_rows for r in rep2.profiles[later])
    # f_psi's pooled profile input is rebuilt from the redrawn agents (mean of their features).
    t = replay.warmup_steps
    sl = slice(int(replay.bounds[t]), int(replay.bounds[t + 1]))
    agents = rep2.profiles[sl][~replay.is_signal[sl]]
    assert np.allclose(rep2.schedule.profiles[t, :-1], agents.mean(axis=0), atol=1e-6)
    assert np.array_equal(rep2.profiles[: replay.warmup_slots], replay.profiles[: replay.warmup_slots])


def test_warmup_must_leave_steps_to_simulate():
    event, labels, emb = make_event(n=40)
    steps = make_steps(event, 16)
    with pytest.raises(ValueError, match="warm-up"):
        make_replay(event, steps, labels, emb, schedule_for(steps), 3)


class RecordingPolicy(FakePolicy):
    """FakePolicy that keeps every context it was given and every proposal it realised."""

    def __init__(self):
        self.contexts, self.realised = [], []

    def propose(self, ctx, n_candidates, rng):
        self.contexts.append(np.array(ctx.synopsis, copy=True))
        return super().propose(ctx, n_candidates, rng)

    def realise(self, ctx, proposal, j, rng):
        self.realised.append(proposal)
        return super().realise(ctx, proposal, j, rng)


@pytest.mark.parametrize("realised", [True, False])
def test_policy_synopsis_realised_or_frozen_after_warmup(realised):
    _, _, _, _, replay = build()
    pol = RecordingPolicy()
    simulate(replay, parts(policy=pol, policy_reads_realised=realised), seed=3)
    first = pol.contexts[0]
    assert np.allclose(np.stack(pol.contexts[1:]), first) != realised
    assert np.abs(first).sum() > 0  # the synopsis at the end of warm-up, not zeros


def test_evidence_weight_tempers_the_proposal_toward_the_forecast_only_for_prior_methods():
    from mfmdp.simulate.loop import temper

    q = np.array([[[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]]])
    m = np.array([0.2, 0.5, 0.3])
    assert np.allclose(temper(q, m, 1.0), q) and np.allclose(temper(q, m, 0.0), np.broadcast_to(m, q.shape))
    half = temper(q, m, 0.5)
    assert np.allclose(half.sum(-1), 1) and np.allclose(half[0, 0], np.sqrt(q[0, 0] * m) / np.sqrt(q[0, 0] * m).sum())
    _, _, _, _, replay = build()
    for prior, expect_forecast in ((True, True), (False, False)):
        pol = RecordingPolicy()
        res = simulate(replay, parts(policy=pol, candidates=1, prior=prior, evidence_weight=0.0), seed=0)
        t = replay.warmup_steps + 2
        rows = pol.realised[2].state_probs[0]
        assert np.allclose(rows, res.m_hat[t]) == expect_forecast


def test_candidates_with_one_state_mix_are_not_scored_and_fading_evidence_reaches_the_forecast():
    """w = 0 makes every candidate's state mix m^_t: no rollout can tell them apart, so none is run.
    With a half-life the proposal moves from the policy's q toward m^_t as the steps go by."""
    _, _, _, _, replay = build()
    flat = simulate(replay, parts(candidates=3, prior=True, evidence_weight=0.0), seed=0)
    scored = simulate(replay, parts(candidates=3, prior=True, evidence_weight=1.0), seed=0)
    after = slice(replay.warmup_steps, None)
    assert np.isnan(flat.values[after]).all() and np.isfinite(scored.values[after]).any()
    pol = RecordingPolicy()
    res = simulate(replay, parts(policy=pol, candidates=1, prior=True, evidence_weight=1.0, evidence_half_life=1.0),
                   seed=0)
    gaps = [np.abs(p.state_probs[0] - res.m_hat[replay.warmup_steps + i]).max() for i, p in enumerate(pol.realised)]
    assert gaps[0] > 0.5 and max(gaps[-5:]) < 0.05


def test_systematic_draws_keep_each_agent_distribution_and_cut_the_mix_noise():
    from mfmdp.policy.base import Proposal

    q = np.array([0.5, 0.3, 0.2])
    rng = np.random.default_rng(0)
    independent, systematic = [], []
    for _ in range(400):
        for flag, out in ((False, independent), (True, systematic)):
            p = Proposal(np.broadcast_to(q, (1, 16, 3)).copy(), systematic=flag)
            out.append(np.bincount(p.draw_states(0, rng), minlength=3))
    sys_counts, ind_counts = np.array(systematic), np.array(independent)
    assert np.allclose(sys_counts.mean(0) / 16, q, atol=0.02)  # marginals unchanged
    assert np.abs(sys_counts - 16 * q).max() < 1 + 1e-9  # within one agent of 16 q, every draw
    assert ind_counts.std(0).min() > 3 * sys_counts.std(0).max()


def test_standardised_selection_is_scale_free():
    from mfmdp.policy.costs import candidate_weights
    from mfmdp.policy.reselection import standardised

    v = np.array([1e-4, 3e-4, 2e-4, 5e-4])
    assert np.allclose(candidate_weights(standardised(v), 2.0), candidate_weights(standardised(v * 1e4), 2.0))
    assert not np.allclose(candidate_weights(v, 2.0), candidate_weights(v * 1e4, 2.0))
    assert np.allclose(standardised(np.full(4, 0.3)), 0)


def test_simulation_options_of_the_config_reach_the_loop(monkeypatch):
    from types import SimpleNamespace

    from mfmdp.simulate import loop
    from mfmdp.simulate.config import ExperimentConfig
    from mfmdp.simulate.methods import get_method
    from mfmdp.simulate.runner import simulate_method

    seen = {}
    monkeypatch.setattr(loop, "simulate", lambda replay, parts, seed: seen.setdefault("parts", parts) and 1 / 0)
    cfg = ExperimentConfig.model_validate({"simulation": {
        "evidence_weight": 0.3, "state_draws": "systematic", "selection_scale": "standardised",
        "policy_synopsis": "frozen", "transition_synopsis": "frozen"}})
    spec = get_method("mf_mdp")
    models = SimpleNamespace(policies={spec.policy_key: FakePolicy()}, annotator=None, encoder=None,
                             transitions={spec.lct_state: FakeTransition()}, synopsis_factory=None)
    with pytest.raises(ZeroDivisionError):
        simulate_method(cfg, spec, build()[-1], models, seed=0)
    p = seen["parts"]
    assert (p.evidence_weight, p.prior, p.systematic_draws, p.selection_scale) == (0.3, True, True, "standardised")
    assert p.policy_reads_realised is False and p.transition_reads_realised is False
    assert get_method("direct").use_prior is False  # tempering toward m^ never reaches a method without it


def test_author_memory_is_as_of_the_start_of_the_step_and_skips_unknown_authors():
    from mfmdp.core.records import author_index
    from mfmdp.policy.memory import AuthorMemory, own_history_features, previous_states

    authors = author_index(["a", "b", "", "a", "d41d8cd98f00b204e9800998ecf8427e", "a", "b"])
    assert list(authors) == [0, 1, -1, 0, -1, 0, 1]  # empty id and md5("") are nobody
    states = np.array([2, 0, 1, 1, 0, -1, 2])
    prev = previous_states(authors, states, np.array([0, 2, 4, 7]))
    # step 0: nobody before; step 1: a's 2 (the unknown author has none); step 2: a's latest is 1, b's 0
    assert list(prev) == [-1, -1, -1, 2, -1, 1, 0]
    mem = AuthorMemory(2)
    mem.update(np.array([0, 0, -1]), np.array([1, 2, 0]))  # the later slot wins
    assert list(mem.lookup(np.array([0, 1, -1]))) == [2, -1, -1]
    assert own_history_features(np.array([-1, 2]), 2).tolist() == [[0, 0, 0, 0], [1, 0, 0, 1]]


def test_the_loop_shows_each_agent_its_own_earlier_state_real_then_simulated():
    event, labels, emb, steps, replay = build()
    users = [f"u{i % 40}" for i in range(len(event))]  # every author responds several times
    for r, u in zip(event.responses, users):
        r.user_id = u
    event.__dict__.pop("table", None)  # the cached columnar view is rebuilt with the new ids
    replay = make_replay(event, steps, labels, emb, schedule_for(steps), replay.warmup_steps)

    class Seeing(RecordingPolicy):
        def propose(self, ctx, n_candidates, rng):
            self.contexts.append(ctx.own_previous.copy())
            return FakePolicy.propose(self, ctx, n_candidates, rng)

    pol = Seeing()
    res = simulate(replay, parts(policy=pol, candidates=1), seed=0)
    from mfmdp.policy.memory import previous_states

    expected = previous_states(replay.authors, res.labels.codes["state"], replay.bounds)
    agents = [np.flatnonzero(~replay.is_signal[lo:hi]) + lo
              for lo, hi in zip(replay.bounds[replay.warmup_steps:-1], replay.bounds[replay.warmup_steps + 1:])]
    seen = np.concatenate(pol.contexts)
    assert np.array_equal(seen, expected[np.concatenate([a for a in agents if len(a)])])
    assert (seen >= 0).mean() > 0.5
