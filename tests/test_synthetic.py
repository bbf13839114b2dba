"""Synthetic event generator: determinism, ground truth, mechanism properties, format round trip."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mfmdp.core.schema import DIMENSIONS, label_index
from mfmdp.core.records import BARE_REPOST_TEXT
from mfmdp.data.stepping import make_steps, verified_institution_rule
from mfmdp.data.synthetic import SCENARIOS, generate_event, generate_events, scenario, write_synthetic
from mfmdp.data.synthetic_dynamics import arrivals, choose_parents, evolve_states
from mfmdp.meanfield.histogram import net_polarity


@pytest.fixture(scope="module")
def debunked():
    return generate_event("rumor_debunked", 3000, seed=11)


@pytest.fixture(scope="module")
def clarified():
    return generate_event("accusation_clarified", 3000, seed=12)


def _snapshot(ev):
    lab = ev.metadata["labels"]
    return ([(r.id, r.time, r.user_id, r.text, r.behavior, r.parent, r.profile) for r in ev.responses],
            {d: lab.codes[d].tolist() for d in DIMENSIONS}, ev.signals, ev.topic)


def test_same_seed_same_event_and_different_seeds_differ():
    a = generate_event("rumor_debunked", 500, seed=3)
    b = generate_event("rumor_debunked", 500, seed=3)
    c = generate_event("rumor_debunked", 500, seed=4)
    assert _snapshot(a) == _snapshot(b)
    assert [r.text for r in a.responses] != [r.text for r in c.responses]
    assert [r.time for r in a.responses] != [r.time for r in c.responses]
    e1 = generate_events(4, (200, 400), seed=5)
    e2 = generate_events(4, (200, 400), seed=5)
    assert [_snapshot(x) for x in e1] == [_snapshot(x) for x in e2]
    e3 = generate_events(4, (200, 400), seed=6)
    assert all(_snapshot(x) != _snapshot(y) for x, y in zip(e1, e3))


def test_generate_events_mixes_scenarios_sizes_and_dates():
    evs = generate_events(len(SCENARIOS), (200, 900), seed=2)
    assert {e.metadata["scenario"] for e in evs} == set(SCENARIOS)
    assert all(200 <= len(e) <= 900 for e in evs)
    assert len({len(e) for e in evs}) > 1
    days = [e.topic.time for e in evs]
    assert days == sorted(days)
    assert len({e.id for e in evs}) == len(evs)
    assert all(e.metadata["synthetic"] is True for e in evs)


def test_records_are_time_ordered_with_unique_ids_and_earlier_parents(debunked):
    ev = debunked
    keys = [(r.time, r.id) for r in ev.responses]
    assert keys == sorted(keys)
    ids = [r.id for r in ev.responses]
    assert len(set(ids)) == len(ids)
    pos = {rid: i for i, rid in enumerate(ids)}
    for i, r in enumerate(ev.responses):
        assert r.time >= ev.topic.time
        assert r.parent == ev.topic.id or pos[r.parent] < i
    # engagement counts are the actual children
    n_children = sum(r.reposts + r.comments for r in ev.responses)
    assert n_children == sum(r.parent != ev.topic.id for r in ev.responses)


def test_labels_are_aligned_and_consistent_with_records(debunked):
    ev = debunked
    lab = ev.metadata["labels"]
    assert lab.n == len(ev.responses)
    for d in DIMENSIONS:
        assert lab.codes[d].min() >= 0 and lab.codes[d].max() < len(DIMENSIONS[d]), d
        assert len(np.unique(lab.codes[d])) >= 2, f"dimension {d} is constant"
    assert lab.names("behavior") == [r.behavior for r in ev.responses]
    bare = np.array([r.text == BARE_REPOST_TEXT for r in ev.responses])
    assert bare.any()
    assert set(np.array(lab.names("state"))[bare]) == {"neutral"}
    assert set(np.array(lab.names("intent"))[bare]) == {"promotion"}
    # belief and rumor agree by construction: doubting the claim is countering it
    assert np.array_equal(lab.codes["belief"] == label_index("belief", "doubt"),
                          lab.codes["rumor"] == label_index("rumor", "counter"))


def test_both_behaviors_bare_and_commented_reposts_present(debunked):
    rs = debunked.responses
    shares = [r for r in rs if r.behavior == "share"]
    comments = [r for r in rs if r.behavior == "comment"]
    assert 0.3 < len(shares) / len(rs) < 0.8
    assert comments
    assert any(r.text == BARE_REPOST_TEXT for r in shares)
    assert any(r.text != BARE_REPOST_TEXT for r in shares)
    assert any("//@" in r.text for r in shares)  # repost chains quote the parent
    assert any("@" in r.text.split("//@")[0] for r in rs)  # @mentions
    assert any("[" in r.text for r in rs)  # emoji codes


def test_profiles_users_and_institution_signal(debunked):
    ev = debunked
    rs = ev.responses
    assert all(r.profile is not None for r in rs)
    followers = np.array([r.profile.followers for r in rs])
    assert followers.max() / max(np.median(followers), 1) > 100  # heavy tail
    assert any(r.profile.verified and r.profile.verified_type == 0 for r in rs)
    counts = np.unique([r.user_id for r in rs], return_counts=True)[1]
    assert counts.max() >= 10 and (counts == 1).sum() > len(counts) / 2  # repeat and one-off users
    [sig] = ev.signals
    slot = ev.metadata["reversal_slot"]
    official = rs[slot]
    assert verified_institution_rule(official.profile)
    assert 1 <= official.profile.verified_type <= 7
    assert official.profile.screen_name == sig.source
    assert official.text == sig.text and official.time == sig.time
    lab = ev.metadata["labels"]
    assert lab.names("rumor")[slot] == "counter"
    steps = make_steps(ev, signal_rule=verified_institution_rule)
    assert steps.is_signal[slot]
    assert sum(s == sig for step in steps.signals for s in step) == 1  # listed once, not twice
    assert ev.metadata["reversal_step"] == slot // 16


def _hour_around_signal(ev):
    t = np.array([r.time.timestamp() for r in ev.responses])
    ts = ev.signals[0].time.timestamp()
    return ((t <= ts) & (t > ts - 3600)).sum(), ((t > ts) & (t <= ts + 3600)).sum()


def test_arrivals_are_bursty_after_the_signal(debunked):
    before, after = _hour_around_signal(debunked)
    assert after > 1.1 * before  # the signal's burst beats the decaying cascade
    quiet = generate_event("rumor_debunked", 3000, seed=11, signal={"burst_fraction": 0.0})
    before0, after0 = _hour_around_signal(quiet)
    assert after0 < before0  # without the burst the rate decays
    gaps = np.diff([r.time.timestamp() for r in debunked.responses])
    assert gaps.std() > 2 * gaps.mean()  # over-dispersed: bursts and lulls, not a Poisson clock


@pytest.mark.parametrize("name,seed,sign", [("rumor_debunked", 11, 1), ("rumor_debunked", 21, 1),
                                            ("accusation_clarified", 12, -1), ("accusation_clarified", 22, -1)])
def test_planted_reversal_is_visible_in_windowed_net_polarity(name, seed, sign):
    ev = generate_event(name, 3000, seed=seed)
    pol = net_polarity(ev.metadata["labels"].codes["state"], 128)
    w = ev.metadata["reversal_slot"] // 128
    assert sign * pol[:w].mean() > 0.3  # one side before the signal ...
    assert sign * pol[-len(pol) // 4:].mean() < -0.3  # ... clearly the other side at the end
    crossing = np.flatnonzero(sign * pol < 0)[0]
    assert crossing > w  # and the crossing comes after the signal, not before
    assert ev.metadata["reversal_time"] == ev.signals[0].time.isoformat()


def test_weak_debunk_and_steady_support_plant_no_reversal():
    for name in ("debunk_ignored", "steady_support"):
        ev = generate_event(name, 3000, seed=13)
        pol = net_polarity(ev.metadata["labels"].codes["state"], 128)
        assert "reversal_step" not in ev.metadata
        assert pol[-len(pol) // 4:].mean() > 0.05, name  # still on the claim's side at the end
        assert pol.min() > -0.2, name  # no window turns clearly against it


def test_slow_drift_moves_gradually():
    ev = generate_event("slow_drift", 4000, seed=14)
    pol = net_polarity(ev.metadata["labels"].codes["state"], 128)
    q = len(pol) // 4
    first, mid, last = pol[:q].mean(), pol[q:3 * q].mean(), pol[3 * q:].mean()
    assert first > mid > last
    assert np.abs(np.diff(pol)).max() < 0.8  # no single jump carries the change


def test_hysteresis_memory_in_the_state_rule():
    # one agent (user 0) acting 4 times; feed and parent switched off, pull = drift
    n = 4
    kw = dict(parent=np.full(n, -1), offsets=np.arange(n, dtype=float), weight=np.ones(n),
              kappa=np.ones(1), credibility=np.ones(1), root_state=0, a_parent=0.0, a_feed=0.0, window=8,
              noise=np.zeros(n))
    user = np.zeros(n, dtype=np.int64)
    run = lambda pulls, theta, init=0: evolve_states(  # noqa: E731
        user, init_state=np.array([init]), theta=np.array([theta]), drift=np.array(pulls, float), **kw).states.tolist()
    assert run([0.0, 2.0, 0.3, 0.3], theta=0.8) == [0, 1, 1, 1]  # stays up although the pull dropped
    assert run([0.0, 0.3, 0.3, 0.3], theta=0.8) == [0, 0, 0, 0]  # same final pull, other history
    assert run([0.0, 2.0, 0.3, 0.3], theta=0.0) == [0, 1, 0, 0]  # memoryless agent follows the pull
    assert run([-0.9, -0.9, 0.4, 0.4], theta=1.5, init=-1) == [-1, -1, -1, -1]  # pull never clears theta
    r = evolve_states(user, init_state=np.array([0]), theta=np.array([0.0]), drift=np.array([0.0, 2.0, 0.3, 0.3]), **kw)
    assert (r.repeat_actions, r.switches) == (3, 2)


def test_hysteresis_makes_history_matter_in_whole_events():
    """Memoryless agents ignore their initial leaning; agents with hysteresis keep it."""
    def polarity(h, p0):
        ev = generate_event("rumor_debunked", 2000, seed=5, hysteresis=h, p0=p0)
        return ev.metadata["labels"].codes["state"], ev.metadata["truth"]

    s_pos0, _ = polarity(0.0, (0.8, 0.1, 0.1))
    s_neg0, _ = polarity(0.0, (0.1, 0.1, 0.8))
    assert np.array_equal(s_pos0, s_neg0)
    s_pos1, _ = polarity(1.0, (0.8, 0.1, 0.1))
    s_neg1, _ = polarity(1.0, (0.1, 0.1, 0.8))
    assert net_polarity(s_pos1, 2000)[0] - net_polarity(s_neg1, 2000)[0] > 0.1


def test_hysteresis_damps_noise_driven_flipping_of_repeat_users():
    def switch_rate(h):
        truth = generate_event("steady_support", 2000, seed=5, hysteresis=h, noise=0.6).metadata["truth"]
        return truth["state_switches"] / truth["repeat_actions"]

    assert switch_rate(1.0) < 0.7 * switch_rate(0.0)


def test_texts_carry_the_labels():
    """A bag-of-character-n-grams classifier recovers state and stance from non-bare texts."""
    from sklearn.feature_extraction.text import CountVectorizer
    from sklearn.naive_bayes import MultinomialNB

    ev = generate_event("accusation_clarified", 3000, seed=15)
    lab = ev.metadata["labels"]
    keep = np.array([r.text != BARE_REPOST_TEXT for r in ev.responses])
    texts = [r.text.split("//@")[0] for r, k in zip(ev.responses, keep) if k]
    X = CountVectorizer(analyzer="char", ngram_range=(1, 2)).fit_transform(texts)
    half = X.shape[0] // 2
    for dim, floor in (("state", 0.85), ("stance", 0.8), ("sentiment", 0.6), ("intent", 0.8)):
        y = lab.codes[dim][keep]
        clf = MultinomialNB(alpha=0.1).fit(X[:half], y[:half])
        acc = (clf.predict(X[half:]) == y[half:]).mean()
        assert acc > floor, (dim, acc)


@pytest.mark.parametrize("suffix", ["jsonl", "csv"])
def test_generic_write_load_round_trip_is_lossless(tmp_path, suffix):
    from mfmdp.data.generic import load_generic

    evs = generate_events(3, (150, 300), seed=8)
    path = write_synthetic(evs, tmp_path / f"syn.{suffix}")
    back = load_generic(path)
    assert [e.id for e in back] == [e.id for e in evs]
    for a, b in zip(evs, back):
        assert a.topic == b.topic
        assert a.signals == b.signals
        assert a.responses == b.responses
        strip = lambda m: {k: v for k, v in m.items() if k != "labels"}  # noqa: E731
        assert strip(a.metadata) == strip(b.metadata)
        for d in DIMENSIONS:
            assert np.array_equal(a.metadata["labels"].codes[d], b.metadata["labels"].codes[d]), d


def test_metadata_is_json_and_records_parameters(debunked):
    meta = {k: v for k, v in debunked.metadata.items() if k != "labels"}
    assert json.loads(json.dumps(meta)) == meta
    assert meta["params"]["name"] == "rumor_debunked"
    assert meta["params"]["signal"]["strength"] < 0


def test_bad_arguments_raise_clear_errors():
    with pytest.raises(ValueError, match="unknown synthetic scenario 'nope'"):
        generate_event("nope")
    with pytest.raises(ValueError, match="unknown scenario parameter"):
        scenario("rumor_debunked", thetaa=1)
    with pytest.raises(ValueError, match="n_responses"):
        generate_event("steady_support", 5)
    with pytest.raises(ValueError, match="empty"):
        generate_events(2, (50, 40))


def test_overrides_accept_a_signal_dict_and_a_chosen_signal_time():
    sc = scenario("steady_support", signal={"at": 0.3, "strength": -3.0})
    assert sc.signal.at == 0.3 and sc.signal.strength == -3.0
    assert sc.signal.reach == scenario("steady_support").signal.reach  # the rest is the scenario's own
    assert scenario("slow_drift", signal={"strength": 1.0}).signal.reach == 0.85  # defaults when it had none
    with pytest.raises(ValueError, match="unknown signal parameter"):
        scenario("rumor_debunked", signal={"when": 3})
    ev = generate_event("rumor_debunked", 800, seed=2, signal={"at_hours": 5.0, "strength": -2.5})
    [sig] = ev.signals
    assert (sig.time - ev.topic.time).total_seconds() == 5 * 3600
    slot = ev.metadata["reversal_slot"]
    assert ev.responses[slot].text == sig.text
    assert all(r.time <= sig.time for r in ev.responses[:slot])


def test_a_large_event_is_fast():
    t = time.perf_counter()
    ev = generate_event("rumor_debunked", 100_000, seed=1)
    elapsed = time.perf_counter() - t
    assert len(ev) == 100_000
    assert elapsed < 30, f"100k responses took {elapsed:.1f}s"  # ~2-3 s on 2 shared cores


@settings(max_examples=40, deadline=None)
@given(n=st.integers(4, 400), k=st.integers(0, 2), burst=st.floats(0, 0.5), sig_burst=st.floats(0, 0.45),
       seed=st.integers(0, 2**31 - 1))
def test_arrivals_and_parents_invariants(n, k, burst, sig_burst, seed):
    rng = np.random.default_rng(seed)
    qs = tuple(sorted(rng.uniform(0.05, 0.95, k)))
    arr = arrivals(rng, n, median_s=3600, sigma=1.5, n_bursts=2, burst_fraction=burst, burst_scale_s=600,
                   signal_quantiles=qs, signal_burst_fraction=sig_burst, signal_scale_s=900)
    assert len(arr.offsets) == n and np.all(np.diff(arr.offsets) >= 0) and arr.offsets[0] >= 0
    assert len(arr.signal_slots) == k and np.all(np.diff(arr.signal_slots) > 0)
    assert not arr.after_signal_burst[arr.signal_slots].any()
    if k:  # no burst response precedes the first signal
        assert not arr.after_signal_burst[: arr.signal_slots[0]].any()
    weight = rng.random(n)
    parent = choose_parents(rng, weight, p_root=0.3, window=16, signal_slots=arr.signal_slots,
                            after_signal_burst=arr.after_signal_burst, p_signal_parent=0.5)
    idx = np.arange(n)
    recent = (parent < idx) & (parent >= idx - 16)
    assert np.all((parent == -1) | recent | np.isin(parent, arr.signal_slots))
    assert np.all(parent < idx)


def test_arrivals_reject_impossible_burst_fractions():
    with pytest.raises(ValueError, match="burst fractions"):
        arrivals(np.random.default_rng(0), 100, median_s=60, sigma=1, n_bursts=1, burst_fraction=0.7,
                 burst_scale_s=60, signal_quantiles=(0.5,), signal_burst_fraction=0.4)
