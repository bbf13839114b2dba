"""How much does per-agent evidence say about a response's state, beyond the step-level mix?

    python bench/agent_evidence.py experiments/weibo.yaml --cache runs/weibo-val/cache \
        [--json bench/results/agent_evidence.json]

Issue 13, item 2: every input the policy reads today is step-level, so the 16 agents of a step share
one q. Before wiring new inputs into the policy, this measures their information on held-out events:
a multinomial logistic regression of the real state of each scored response (non-signal, after the
warm-up), fitted on the training side of the config's split and scored on its validation side
(held-out NLL in nats, lower is better), for nested feature sets:

  mix        log of the real state mix of the previous 8 steps (the step-level prior; teacher-forced)
  profile    the author's profile features (followers, verified, gender, ... where the source has them)
  timing     position of the response inside its step, log time since the last signal and the source
  repeat     the author's own earlier response in this event: present or not, and its state
  warm-up repeat   the same, only where the earlier response was in the warm-up (after it, a
             simulator knows only its own simulated states: this is what it knows for certain)
  history    the author in the training events: how often, and their smoothed state mix there
  behavior   share or comment (an ACTION the simulator produces, never an input: shown for scale)

Author ids that are empty or the md5 of the empty string (a missing id on CHECKED, not a user) are
treated as unknown. The labels come from the config's annotator (read from --cache when a run made them).

Second, the ceiling on what the evidence can do for the scored quantity: every scored response gets
its predicted state distribution, each event's predictions are averaged over windows of
`evaluation.window` scored responses, and the windowed state KL(real || predicted; add-1/2) is
compared per event with the mix-only model's (paired over events). The inputs are teacher-forced (the
real mix of the previous steps, real earlier states), so this bounds what per-agent evidence can take
off a simulator's windowed KL from above: a simulator knows less.
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

from benchutil import manifest, write_json
from mfmdp.simulate.config import load_config
from mfmdp.simulate.prepare import prepare

S = 3
MISSING_IDS = {"", "d41d8cd98f00b204e9800998ecf8427e"}  # md5("") marks a missing id, not a user
PRIOR_STEPS = 8
FEATURE_SETS = {
    "mix": ("mix",),
    "mix + profile": ("mix", "profile"),
    "mix + timing": ("mix", "timing"),
    "mix + repeat": ("mix", "repeat"),
    "mix + warm-up repeat": ("mix", "warmup_repeat"),
    "mix + history": ("mix", "history"),
    "mix + profile + timing + repeat + history": ("mix", "profile", "timing", "repeat", "history"),
    "what a simulator knows: the same, warm-up repeat": ("mix", "profile", "timing", "warmup_repeat", "history"),
    "(behavior, not an input) mix + behavior": ("mix", "behavior"),
}


def author_history(events) -> dict[str, np.ndarray]:
    """Known author -> state counts [S] over the given (training) events."""
    hist: dict[str, np.ndarray] = defaultdict(lambda: np.zeros(S))
    for p in events:
        states = p.labels.codes["state"]
        for uid, y in zip(p.event.table.user_ids, states):
            if uid not in MISSING_IDS and y >= 0:
                hist[uid][y] += 1
    return dict(hist)


def event_rows(p, warmup_steps: int, history: dict[str, np.ndarray], global_mix: np.ndarray,
               exclude_own: bool) -> tuple[dict[str, np.ndarray], np.ndarray, dict]:
    """Feature blocks and states of one event's scored responses. `exclude_own`: the author history
    leaves out this event's own responses (training side: the history counts them)."""
    table, steps, states = p.event.table, p.steps, p.labels.codes["state"].astype(np.int64)
    step_of = steps.step_of()
    counts = np.zeros((len(steps), S))
    known = states >= 0
    np.add.at(counts, (step_of[known], states[known]), 1)
    own = defaultdict(lambda: np.zeros(S))
    if exclude_own:
        for uid, y in zip(table.user_ids, states):
            if uid not in MISSING_IDS and y >= 0:
                own[uid][y] += 1
    signal_times = sorted(s.time.timestamp() for s in p.event.signals)
    source_time = p.event.topic.time.timestamp()
    last_state: dict[str, tuple[int, int]] = {}  # author -> (state, step) of the latest response
    blocks = defaultdict(list)
    ys, stats = [], {"rows": 0, "repeat": 0, "history": 0}
    for i in range(len(table)):
        uid, t = table.user_ids[i], int(step_of[i])
        if t >= warmup_steps and not steps.is_signal[i] and states[i] >= 0:
            prev = counts[max(0, t - PRIOR_STEPS):t].sum(0)
            blocks["mix"].append(np.log((prev + 0.5) / (prev.sum() + 0.5 * S)))
            blocks["profile"].append(table.profiles[i])
            lo, hi = steps.bounds[t], steps.bounds[t + 1] - 1
            span = max(table.times[hi] - table.times[lo], 1.0)
            last_signal = max([s for s in signal_times if s <= table.times[i]], default=source_time)
            blocks["timing"].append([(table.times[i] - table.times[lo]) / span,
                                     np.log1p(max(table.times[i] - last_signal, 0.0)) / 10,
                                     np.log1p(max(table.times[i] - source_time, 0.0)) / 10])
            known_author = uid not in MISSING_IDS
            before, before_step = last_state.get(uid, (None, None)) if known_author else (None, None)
            blocks["repeat"].append([before is not None] + [before == k for k in range(S)])
            warm = before is not None and before_step < warmup_steps
            blocks["warmup_repeat"].append([warm] + [warm and before == k for k in range(S)])
            h = history.get(uid, np.zeros(S)) - own[uid] if known_author else np.zeros(S)
            n_h = float(h.sum())
            blocks["history"].append([np.log1p(n_h) / 5, *((h + global_mix) / (n_h + 1) - global_mix)])
            blocks["behavior"].append([table.behavior[i]])
            ys.append(states[i])
            stats["rows"] += 1
            stats["repeat"] += before is not None
            stats["history"] += n_h > 0
        if uid not in MISSING_IDS and states[i] >= 0:
            last_state[uid] = (int(states[i]), t)  # the real state: warm-up and teacher-forced alike
    return {k: np.asarray(v, dtype=np.float64) for k, v in blocks.items()}, np.asarray(ys), stats


def side_matrix(events, warmup_steps, history, global_mix, exclude_own):
    parts, ys, total = defaultdict(list), [], defaultdict(int)
    for p in events:
        blocks, y, stats = event_rows(p, warmup_steps, history, global_mix, exclude_own)
        if len(y):
            for k, v in blocks.items():
                parts[k].append(v)
            ys.append(y)
        for k, v in stats.items():
            total[k] += v
    sizes = [len(y) for y in ys]
    return {k: np.concatenate(v) for k, v in parts.items()}, np.concatenate(ys), dict(total), sizes


def held_out(train_x, train_y, val_x, val_y, seed: int) -> tuple[float, np.ndarray]:
    """(held-out NLL in nats, predicted state probabilities [n, S]) of a logistic regression."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(train_x)
    model = LogisticRegression(max_iter=1000, C=1.0, random_state=seed).fit(scaler.transform(train_x), train_y)
    proba = np.zeros((len(val_x), S))
    proba[:, model.classes_] = model.predict_proba(scaler.transform(val_x))
    p = proba[np.arange(len(val_y)), val_y]
    return float(-np.log(np.clip(p, 1e-12, 1)).mean()), proba


def windowed_kl(proba: np.ndarray, y: np.ndarray, sizes: list[int], window: int) -> np.ndarray:
    """Per event: mean over windows of `window` scored responses of KL(real mix, add-1/2 || mean prediction)."""
    from mfmdp.evaluate.metrics import kl

    out, start = [], 0
    for n in sizes:
        real, pred = [], []
        for lo in range(start, start + n, window):
            hi = min(lo + window, start + n)
            counts = np.bincount(y[lo:hi], minlength=S) + 0.5
            real.append(counts / counts.sum())
            pred.append(np.clip(proba[lo:hi].mean(axis=0), 1e-12, None))
        out.append(kl(np.array(real), np.array(pred)).mean())
        start += n
    return np.asarray(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("config", type=Path)
    ap.add_argument("--cache", type=Path, required=True, help="label/embedding cache (a run's RUN_DIR/cache)")
    ap.add_argument("--set", dest="overrides", action="append", default=[], help="config override KEY=VALUE")
    ap.add_argument("--json", type=Path, default=Path("bench/results/agent_evidence.json"))
    args = ap.parse_args()
    t0 = time.perf_counter()
    cfg = load_config(args.config, args.overrides)
    prep = prepare(cfg, args.cache, sides=("train", "validation"), progress=False)
    train, val = prep.sides["train"], prep.sides["validation"]
    history = author_history(train)
    all_train = np.concatenate([p.labels.codes["state"] for p in train])
    global_mix = np.bincount(all_train[all_train >= 0], minlength=S) / max((all_train >= 0).sum(), 1)
    w = cfg.simulation.warmup_steps
    tx, ty, tstats, _ = side_matrix(train, w, history, global_mix, exclude_own=True)
    vx, vy, vstats, sizes = side_matrix(val, w, history, global_mix, exclude_own=False)
    print(f"{len(train)} training events ({tstats['rows']} responses), {len(val)} validation events "
          f"({vstats['rows']} responses; {vstats['repeat'] / max(vstats['rows'], 1):.1%} by an author who responded "
          f"earlier in the event, {vstats['history'] / max(vstats['rows'], 1):.1%} by an author seen in training events)")
    results, event_kl = [], {}
    window = cfg.evaluation.window
    for name, blocks in FEATURE_SETS.items():
        nll, proba = held_out(np.hstack([tx[b] for b in blocks]), ty, np.hstack([vx[b] for b in blocks]), vy, cfg.seed)
        event_kl[name] = windowed_kl(proba, vy, sizes, window)
        results.append({"features": name, "validation_nll": nll, "windowed_kl": float(event_kl[name].mean())})
    base = results[0]["validation_nll"]
    print(f"\n{'features':<48} {'held-out NLL':>12} {'Δ vs mix':>9}  {'windowed KL':>11} {'Δ vs mix (paired SE)':>22}")
    for r in results:
        r["gain_over_mix"] = base - r["validation_nll"]
        d = event_kl[r["features"]] - event_kl["mix"]  # < 0: the evidence brings the window mix closer
        r["windowed_kl_gain"] = float(-d.mean())
        r["windowed_kl_gain_se"] = float(d.std(ddof=1) / np.sqrt(len(d))) if len(d) > 1 else 0.0
        print(f"{r['features']:<48} {r['validation_nll']:>12.4f} {-r['gain_over_mix']:>+9.4f}  "
              f"{r['windowed_kl']:>11.5f} {d.mean():>+13.5f} ({r['windowed_kl_gain_se']:.5f})")
    repeat_rows = vx["repeat"][:, 0] > 0
    if repeat_rows.any():  # where the own-earlier-response evidence exists at all
        sub = {k: v[repeat_rows] for k, v in vx.items()}
        for name in ("mix", "mix + repeat"):
            blocks = FEATURE_SETS[name]
            nll, _ = held_out(np.hstack([tx[b] for b in blocks]), ty, np.hstack([sub[b] for b in blocks]),
                              vy[repeat_rows], cfg.seed)
            results.append({"features": f"{name} (repeat authors only)", "validation_nll": nll,
                            "rows": int(repeat_rows.sum())})
            print(f"{name + ' (repeat authors only)':<48} {nll:>12.4f}")
    seconds = time.perf_counter() - t0
    print(f"\n{seconds:.0f} s")
    write_json(args.json, {"manifest": manifest("agent_evidence.py", args), "train": tstats, "validation": vstats,
                           "window": window, "results": results, "seconds": seconds})
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
