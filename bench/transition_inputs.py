"""Which inputs does f_psi's forecast use? Validation rollouts with one input channel taken away.

    python bench/transition_inputs.py experiments/weibo.yaml --run runs/v13-cal2 \
        [--json bench/results/transition_inputs.json]

Issue 13 asks f_psi to forecast change from the inputs that drive it: exogenous signals (c_t: the
signal pulse and its decaying memory), response-rate bursts (the time features log_gap, log_duration
and log_slots of each step) and the active agents' pooled profiles (p_t). A trained f_psi (RUN/models/
transition) is rolled out self-fed from 8 fixed start points per validation event, as `mfmdp train
transition` scores it, once with every input and once per variant with one channel taken away:

  no signals     c_t = 0 at every step (as on a step without a signal)
  no bursts      the three burst features replaced by their event mean (the clock, log_elapsed, stays)
  no profiles    p_t replaced by its event mean

Per variant: the mean rollout KL(real || forecast) cumulative to 30, 100 and 300 steps, and its
change against every input, paired over events (mean and standard error; > 0: the channel helps).
This is permutation-style importance of a trained model, not a retraining without the channel.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from benchutil import manifest, write_json

HORIZONS = (30, 100, 300)
BURST_COLUMNS = ("log_gap", "log_duration", "log_slots")


def without(feats, variant: str):
    """A copy of one event's features with the variant's channel taken away."""
    from mfmdp.transition.features import TIME_FEATURES

    s = feats.schedule
    if variant == "no signals":
        s = replace(s, signals=np.zeros_like(s.signals))
    elif variant == "no bursts":
        time_ = s.time.copy()
        cols = [TIME_FEATURES.index(c) for c in BURST_COLUMNS]
        time_[:, cols] = time_[:, cols].mean(axis=0)
        s = replace(s, time=time_)
    elif variant == "no profiles":
        s = replace(s, profiles=np.broadcast_to(s.profiles.mean(axis=0), s.profiles.shape).copy())
    return replace(feats, schedule=s)


def event_kl(model, feats, k: int, starts: int) -> np.ndarray | None:
    """Mean rollout KL cumulative to each of HORIZONS for one event (nan past its end), or None."""
    from mfmdp.transition.train import evaluate

    rep = evaluate(model, [feats], k, starts)
    n = np.asarray(rep["rollouts_per_k"], dtype=np.float64)
    if n.sum() == 0:
        return None
    cum_kl = np.cumsum(np.asarray(rep["roll_kl_per_k"]) * n)
    cum_n = np.cumsum(n)
    return np.array([cum_kl[h - 1] / cum_n[h - 1] if h <= k and cum_n[h - 1] > 0 else np.nan for h in HORIZONS])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("config", type=Path)
    ap.add_argument("--run", type=Path, required=True, help="a finished run: its models/transition and cache")
    ap.add_argument("--starts", type=int, default=8, help="rollout start points per event")
    ap.add_argument("--set", dest="overrides", action="append", default=[], help="config override KEY=VALUE")
    ap.add_argument("--json", type=Path, default=Path("bench/results/transition_inputs.json"))
    args = ap.parse_args()
    import torch

    from mfmdp.simulate.config import load_config
    from mfmdp.simulate.prepare import prepare
    from mfmdp.transition.features import event_features
    from mfmdp.transition.model import EventTransformer

    t0 = time.perf_counter()
    cfg = load_config(args.config, args.overrides)
    torch.set_num_threads(1)
    prep = prepare(cfg, args.run / "cache", sides=("validation",), progress=False)
    model = EventTransformer.load(args.run / "models" / "transition")
    model.eval()
    feats = [event_features(p.event, p.steps, p.labels.codes["state"], prep.encoder, p.embeddings)
             for p in prep.sides["validation"]]
    k = min(max(HORIZONS), max(len(f) for f in feats) - 1)
    variants = ("every input", "no signals", "no bursts", "no profiles")
    kl = {v: [] for v in variants}
    from rich.progress import Progress

    with torch.no_grad(), Progress(transient=True) as bar:  # about 11 s per event on Weibo
        task = bar.add_task("f_psi rollouts", total=len(feats))
        for f in feats:
            rows = {v: event_kl(model, without(f, v), k, args.starts) for v in variants}
            bar.update(task, advance=1)
            if rows["every input"] is None:
                continue
            for v in variants:
                kl[v].append(rows[v])
    base = np.asarray(kl["every input"])
    results = []
    print(f"f_psi rollouts on {len(base)} validation events ({args.starts} starts each), mean KL(real || forecast) "
          f"cumulative to {', '.join(map(str, HORIZONS))} steps; Δ = variant − every input (SE), > 0: the channel helps")
    for v in variants:
        x = np.asarray(kl[v])
        row = {"variant": v}
        cells = []
        for j, h in enumerate(HORIZONS):
            ok = np.isfinite(x[:, j]) & np.isfinite(base[:, j])
            if not ok.any():  # every event ends before this horizon
                cells.append(f"{'—':>6}")
                continue
            d = x[ok, j] - base[ok, j]
            row[str(h)] = {"kl": float(x[ok, j].mean()), "delta": float(d.mean()),
                           "delta_se": float(d.std(ddof=1) / np.sqrt(ok.sum())) if ok.sum() > 1 else 0.0,
                           "events": int(ok.sum())}
            cells.append(f"{row[str(h)]['kl']:.4f} (Δ {row[str(h)]['delta']:+.4f}, {row[str(h)]['delta_se']:.4f})")
        results.append(row)
        print(f"  {v:<12} " + "  ".join(cells))
    seconds = time.perf_counter() - t0
    print(f"{seconds:.0f} s")
    write_json(args.json, {"manifest": manifest("transition_inputs.py", args), "horizons": HORIZONS,
                           "results": results, "seconds": seconds})
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
