"""Property tests for make_steps: every response in exactly one step, order kept, sizes, buckets, signals."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from mfmdp.data.assemble import assemble_event
from mfmdp.data.dates import from_unix
from mfmdp.core.records import Profile, Response, Signal, SourcePost
from mfmdp.data.stepping import make_steps, verified_institution_rule

T0 = 1_580_000_000

responses_st = st.lists(
    st.tuples(st.integers(0, 5000), st.integers(0, 50), st.sampled_from([None, -1, 0, 1, 3, 8])),
    min_size=1, max_size=120,
)


def _event(raw):
    rs = [Response(f"id{k:03d}", from_unix(T0 + dt), f"u{k}", "t", "comment",
                   profile=None if vt is None else Profile(verified=vt >= 0, verified_type=vt, screen_name=f"n{k}"))
          for dt, k, vt in raw]
    ev, _ = assemble_event("e", "generic", SourcePost("e", from_unix(T0), "u", "x"), rs, "mem")
    return ev


def _partition_ok(steps, n):
    b = steps.bounds
    assert b[0] == 0 and b[-1] == n and np.all(np.diff(b) > 0)
    step_of = steps.step_of()
    assert len(step_of) == n and np.all(np.diff(step_of) >= 0)
    assert np.array_equal(np.bincount(step_of, minlength=len(steps)), steps.sizes)


@settings(max_examples=60, deadline=None)
@given(raw=responses_st, size=st.integers(1, 20))
def test_blocks(raw, size):
    ev = _event(raw)
    n = len(ev)
    steps = make_steps(ev, size=size)
    _partition_ok(steps, n)
    assert np.all(steps.sizes[:-1] == size) and 1 <= steps.sizes[-1] <= size
    keys = [(r.time, r.id) for r in ev.responses]
    assert keys == sorted(keys) and list(ev.table.ids) == [r.id for r in ev.responses]  # order preserved
    assert np.all(steps.start_times <= steps.end_times)
    assert np.all(steps.end_times[:-1] <= steps.start_times[1:])


@settings(max_examples=60, deadline=None)
@given(raw=responses_st, seconds=st.floats(1, 2000))
def test_time_buckets(raw, seconds):
    ev = _event(raw)
    steps = make_steps(ev, bucket_seconds=seconds)
    _partition_ok(steps, len(ev))
    bucket = np.floor((ev.table.times - ev.table.times[0]) / seconds)
    for t in range(len(steps)):
        assert len(set(bucket[steps.slots(t)])) == 1
    firsts = bucket[steps.bounds[:-1]]
    assert np.all(np.diff(firsts) > 0)  # distinct consecutive buckets; empty buckets make no step


@settings(max_examples=40, deadline=None)
@given(raw=responses_st, sig_dt=st.lists(st.integers(-100, 6000), max_size=5), size=st.integers(1, 16))
def test_signals(raw, sig_dt, size):
    ev = _event(raw)
    scenario = [Signal(from_unix(T0 + d), "gov", f"s{i}") for i, d in enumerate(sig_dt)]
    steps = make_steps(ev, size=size, signal_rule=verified_institution_rule, scenario=scenario)
    expected = [verified_institution_rule(r.profile) for r in ev.responses]
    assert steps.is_signal.tolist() == expected
    attached = [s for per in steps.signals for s in per]
    assert len(attached) == sum(expected) + len(scenario)
    for t, per in enumerate(steps.signals):
        for s in per:
            if s in scenario:
                ts = s.time.timestamp()
                assert t == len(steps) - 1 or ts <= steps.end_times[t]
                assert t == 0 or ts > steps.end_times[t - 1]
