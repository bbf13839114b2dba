"""Benchmark the evaluation protocol: speed on a long event, and what the protocol says on real data.

1. Speed: evaluate_event (short, long, reversal x 8 dimensions) on a synthetic 40,000-response event
   (2,500 steps of 16), the length of the longest events the simulator replays.
2. Real data (../shared/data/checked, skipped when absent): CHECKED events with >= 1000 responses,
   state labels from the offline annotator, 160 warm-up responses. Reports
   - the sampling-noise floor: an oracle (labels resampled from the real per-window mix) scored per
     128-response window vs per 16-response step, which is why windows are the primary metric;
   - a persistence floor (labels drawn from the warm-up mix) on the same events;
   - reversal thresholds fitted on the earlier 60% of events (by source date) and, on the later 40%,
     the number of reversing events and the false-positive rate on time-permuted nulls.

    python bench/evaluate.py --json bench_evaluate.json [--max-events 40] [--max-responses 4000]
"""

from __future__ import annotations

import argparse
import glob
import json
import time
from pathlib import Path

import numpy as np

from mfmdp.core.schema import DIMENSIONS, Labels
from mfmdp.data.stepping import Steps
from mfmdp.evaluate.oracle import oracle_labels
from mfmdp.evaluate.protocol import evaluate_event
from mfmdp.evaluate.reversal import (detect_reversals, fit_reversal_thresholds,
                                     null_false_positive_rate, polarity_series)

WARMUP = 160
SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def block_steps(n: int, is_signal: np.ndarray | None = None) -> Steps:
    bounds = np.unique(np.r_[np.arange(0, n, 16), n]).astype(np.int64)
    return Steps(bounds=bounds, is_signal=np.zeros(n, bool) if is_signal is None else is_signal)


def speed(n: int = 40_000, repeats: int = 3) -> dict:
    rng = np.random.default_rng(0)
    real = Labels({d: rng.integers(0, len(v), n) for d, v in DIMENSIONS.items()})
    sim = Labels({d: rng.integers(0, len(v), n) for d, v in DIMENSIONS.items()})
    steps = block_steps(n)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        evaluate_event(real, sim, steps, WARMUP, settings=("short", "long", "reversal"), nll=rng.random(n))
        times.append(time.perf_counter() - t)
    return {"responses": n, "steps": len(steps), "seconds_per_event_method": min(times)}


def real_data(max_events: int, max_responses: int, seed: int) -> dict:
    from mfmdp.annotate.offline import OfflineAnnotator
    from mfmdp.data import load

    files = sorted(glob.glob(str(SHARED / "checked" / "*" / "*.json")))
    events = []
    for f in files:
        for ev in load(f):
            if len(ev) >= 1000:
                events.append(ev)
    events.sort(key=lambda e: e.topic.time)
    if len(events) > max_events:  # spread over the whole date range
        events = [events[i] for i in np.linspace(0, len(events) - 1, max_events).round().astype(int)]
    annotator = OfflineAnnotator()
    rows = []
    codes_by_event = []
    t0 = time.perf_counter()
    for ev in events:
        tab = ev.table
        n = min(len(tab), max_responses)
        labels = annotator.annotate(list(tab.texts[:n]), behaviors=tab.behavior[:n])
        steps = block_steps(n)
        rng = np.random.default_rng(seed)
        oracle = oracle_labels(labels, steps.is_signal, WARMUP, seed=seed)
        warm = labels.codes["state"][:WARMUP]
        mix = np.bincount(warm[warm >= 0], minlength=3) + 0.5
        persistence = Labels({"state": np.r_[warm, rng.choice(3, n - WARMUP, p=mix / mix.sum())]})
        for name, sim in (("oracle", oracle), ("persistence", persistence)):
            for r in evaluate_event(labels, sim, steps, WARMUP, settings=("short", "long"), dimensions=["state"]):
                rows.append({"event": ev.id, "method": name, **r})
        codes_by_event.append((ev.id, ev.topic.time.isoformat(), labels.codes["state"][WARMUP:]))
    annotate_seconds = time.perf_counter() - t0

    def med(method, setting, key):
        vals = [r[key] for r in rows if r["method"] == method and r["setting"] == setting]
        return float(np.nanmedian(vals))

    floors = {m: {s: {k: med(m, s, k) for k in ("kl", "kl_step", "js", "wasserstein", "dtw", "matched_accuracy",
                                                 "responses", "steps")}
                  for s in ("short", "long")} for m in ("oracle", "persistence")}
    n_train = int(round(0.6 * len(codes_by_event)))
    train = [c for _, _, c in codes_by_event[:n_train]]
    test = codes_by_event[n_train:]
    th = fit_reversal_thresholds(train, n_perm=200, seed=seed, source="CHECKED events, earlier 60% by date")
    reversing = []
    for eid, date, c in test:
        series, centres = polarity_series(c, np.arange(len(c)))
        revs = detect_reversals(series, th)
        if revs:
            reversing.append({"event": eid, "date": date, "windows": len(series),
                              "first": {"direction": revs[0].direction,
                                        "at_response": float(centres[revs[0].window])}})
    return {
        "events": len(events), "max_responses_per_event": max_responses,
        "annotate_and_score_seconds": annotate_seconds,
        "floors_state_median": floors,
        "reversal": {"thresholds": th.__dict__, "train_events": n_train, "test_events": len(test),
                     "test_reversing": len(reversing),
                     "test_null_fp_rate": null_false_positive_rate([c for _, _, c in test], th, n_perm=200, seed=seed + 1),
                     "reversing_events": reversing},
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--max-events", type=int, default=40)
    ap.add_argument("--max-responses", type=int, default=4000)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    out = {"cpu_note": "2 shared CPU cores; timings are noisy", "speed": speed()}
    print(f"speed: {out['speed']['seconds_per_event_method']:.3f} s per event x method "
          f"({out['speed']['responses']} responses, {out['speed']['steps']} steps, 3 settings x 8 dimensions)")
    if SHARED.is_dir():
        out["real"] = real_data(args.max_events, args.max_responses, args.seed)
        r = out["real"]
        for m, per in r["floors_state_median"].items():
            for s, v in per.items():
                print(f"{m:12s} {s:5s} ({v['responses']:.0f} responses ≈ {v['steps']:.0f} steps): "
                      f"KL/window {v['kl']:.3f}  KL/step {v['kl_step']:.3f}  W1 {v['wasserstein']:.3f}  "
                      f"DTW {v['dtw']:.3f}  Acc {v['matched_accuracy']:.3f}")
        rv = r["reversal"]
        th = rv["thresholds"]
        print(f"reversal thresholds (train {rv['train_events']} events): magnitude {th['magnitude']}, duration "
              f"{th['duration']}, null FP {th['fp_rate']:.3f}; test: {rv['test_reversing']}/{rv['test_events']} "
              f"events reverse, null FP {rv['test_null_fp_rate']:.3f}")
    else:
        print(f"{SHARED} absent: real-data part skipped")
    if args.json:
        args.json.write_text(json.dumps(out, indent=2, default=str))


if __name__ == "__main__":
    main()
