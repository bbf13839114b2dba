"""Benchmark: synthetic event generation speed, and what the generated events look like.

    python bench/synthetic.py [--sizes 1000 10000 100000] [--repeats 3] [--annotator offline] [--json OUT]

For each size: seconds to generate one `rumor_debunked` event (best and median of --repeats, each
with a different seed), responses per second, seconds to write it in the generic JSONL format, and
a profile of the ground truth (share rate, bare reposts, repeat users, windowed net polarity
before/after the planted reversal). Target: 100,000 responses in a few seconds on 2 cores.
With --annotator SPEC (e.g. "offline"), also the annotator's per-dimension accuracy against the
ground-truth labels of 5 mixed events of 1,500 responses (how recoverable the labels are from text).
Timings on a shared machine are noisy: compare best-of-N, not single runs.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from mfmdp.core.records import BARE_REPOST_TEXT
from mfmdp.data.synthetic import SCENARIOS, generate_event, write_synthetic
from mfmdp.meanfield.histogram import net_polarity


def profile(ev) -> dict:
    lab = ev.metadata["labels"]
    rs = ev.responses
    users = np.unique([r.user_id for r in rs], return_counts=True)[1]
    pol = net_polarity(lab.codes["state"], 128)
    out = {
        "responses": len(rs),
        "share_rate": float(np.mean([r.behavior == "share" for r in rs])),
        "bare_rate": float(np.mean([r.text == BARE_REPOST_TEXT for r in rs])),
        "users": int(len(users)),
        "one_off_user_share": float((users == 1).sum() / len(users)),
        "max_responses_per_user": int(users.max()),
        "span_hours": (rs[-1].time - rs[0].time).total_seconds() / 3600,
        "state_mix": {s: float(np.mean(np.array(lab.names("state")) == s))
                      for s in ("positive", "neutral", "negative")},
    }
    if "reversal_slot" in ev.metadata:
        w = ev.metadata["reversal_slot"] // 128
        out["net_polarity_before"] = float(pol[:w].mean())
        out["net_polarity_after"] = float(pol[w + 4:].mean()) if len(pol) > w + 4 else None
    return out


def annotator_agreement(spec: str, seed: int = 3) -> dict:
    from mfmdp.annotate.registry import get_annotator
    from mfmdp.core.schema import DIMENSIONS
    from mfmdp.data.synthetic import generate_events

    ann = get_annotator(spec)
    hits = {d: 0 for d in DIMENSIONS}
    total = 0
    for ev in generate_events(5, 1500, seed=seed):
        truth = ev.metadata["labels"]
        pred = ann.annotate([r.text for r in ev.responses], ev.topic.text, ev.table.behavior)
        for d in DIMENSIONS:
            hits[d] += int((pred.codes[d] == truth.codes[d]).sum())
        total += len(ev)
    return {d: h / total for d, h in hits.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[1000, 10_000, 100_000])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--annotator", default=None, help='also score this annotator spec (e.g. "offline")')
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    rows = []
    for n in args.sizes:
        secs = []
        for k in range(args.repeats):
            t0 = time.perf_counter()
            ev = generate_event("rumor_debunked", n, seed=k)
            secs.append(time.perf_counter() - t0)
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            path = write_synthetic([ev], Path(tmp) / "e.jsonl")
            write_s = time.perf_counter() - t0
            size_mb = path.stat().st_size / 2**20
        row = {"responses": n, "best_s": min(secs), "median_s": statistics.median(secs),
               "responses_per_s": n / min(secs), "write_jsonl_s": write_s, "jsonl_mb": size_mb, **profile(ev)}
        rows.append(row)
        print(f"{n:>7} responses: generate best {row['best_s']:.2f} s (median {row['median_s']:.2f} s, "
              f"{row['responses_per_s']:,.0f}/s); write JSONL {write_s:.2f} s ({size_mb:.1f} MB); "
              f"share {row['share_rate']:.2f}, bare {row['bare_rate']:.2f}, users {row['users']}, "
              f"net polarity {row.get('net_polarity_before', float('nan')):+.2f} -> "
              f"{row.get('net_polarity_after') or float('nan'):+.2f}")
    scen = {}
    for name in SCENARIOS:
        scen[name] = profile(generate_event(name, 3000, seed=0))
        p = scen[name]
        print(f"{name:>22}: state mix " + ", ".join(f"{k} {v:.2f}" for k, v in p["state_mix"].items())
              + (f"; net polarity {p['net_polarity_before']:+.2f} -> {p['net_polarity_after']:+.2f}"
                 if "net_polarity_before" in p else ""))
    result = {"sizes": rows, "scenarios": scen}
    if args.annotator:
        result["annotator"] = {"spec": args.annotator, "accuracy": annotator_agreement(args.annotator)}
        print(f"annotator {args.annotator!r} accuracy vs ground truth: "
              + ", ".join(f"{d} {a:.3f}" for d, a in result["annotator"]["accuracy"].items()))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2, ensure_ascii=False))
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
