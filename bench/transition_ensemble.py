"""Would averaging several trained f_psi's forecasts help? Transition-only, per model and averaged.

    python bench/transition_ensemble.py runs/v13-cal2 runs/v14-long [--subset 32] [--seed 0] \
        [--json bench/results/transition_ensemble.json]

Each RUN is a finished `mfmdp run` on the same config and split (evaluated on validation). The first
run's config, cache and validation events are used. On the `--subset` events that
`data.evaluate_subset` would simulate, transition-only (the f_psi floor: its forecast rolled forward,
states drawn as the config says) is simulated with each run's f_psi and with the mean of their
forecasts at every step, and scored by the long-horizon windowed state KL, as the report scores it.
The ensemble's gap to the first model is paired over events (mean and standard error).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from benchutil import manifest, write_json


class MeanSession:
    """Steps every member's session and returns the mean forecast (all transition-only reads)."""

    def __init__(self, sessions):
        self.sessions = sessions

    def step(self, m_prev: np.ndarray, r_prev: np.ndarray) -> np.ndarray:
        return np.mean([s.step(m_prev, r_prev) for s in self.sessions], axis=0)


class MeanForecast:
    def __init__(self, members):
        self.members = members
        self.n_states, self.synopsis_dim = members[0].n_states, members[0].synopsis_dim

    def session(self, schedule, batch: int = 1) -> MeanSession:
        return MeanSession([m.session(schedule, batch) for m in self.members])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", type=Path)
    ap.add_argument("--subset", type=int, default=32, help="validation events, evenly spread (as data.evaluate_subset)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path, default=Path("bench/results/transition_ensemble.json"))
    args = ap.parse_args()

    import torch

    from mfmdp.evaluate.protocol import evaluate_event
    from mfmdp.simulate.floors import transition_only
    from mfmdp.simulate.prepare import evaluation_subset, prepare
    from mfmdp.simulate.runner import make_replay_for
    from mfmdp.simulate.scenario import load_trained

    t0 = time.perf_counter()
    runs = [load_trained(r, methods=["transition_only"]) for r in args.runs]
    cfg = runs[0].cfg
    cfg = cfg.model_copy(update={"data": cfg.data.model_copy(update={"evaluate_on": "validation"})})
    torch.set_num_threads(cfg.executor.torch_threads)
    prep = prepare(cfg, args.runs[0] / "cache", sides=("validation",), progress=False)
    events = evaluation_subset(prep.sides["validation"], args.subset)
    members = [r.models.transitions[True] for r in runs]
    names = [str(r) if args.runs.count(r) == 1 else f"{r} #{i + 1}" for i, r in enumerate(args.runs)]
    variants = dict(zip(names, members)) | {"mean of all": MeanForecast(members)}
    kl = {name: [] for name in variants}
    systematic = cfg.simulation.state_draws == "systematic"
    for p in events:
        replay = make_replay_for(cfg, p, runs[0].models.encoder)
        for name, model in variants.items():
            labels, _ = transition_only(replay, model, args.seed, systematic=systematic)
            rows = evaluate_event(p.labels, labels, p.steps, replay.warmup_slots, settings=("long",),
                                  window=cfg.evaluation.window, dimensions=("state",))
            kl[name].append(rows[0]["kl"])
    first = np.asarray(kl[names[0]])
    results = []
    print(f"transition-only, long-horizon windowed state KL on {len(events)} validation events (seed {args.seed})")
    for name, values in kl.items():
        d = np.asarray(values) - first
        d = d[np.isfinite(d)]
        row = {"model": name, "kl": float(np.nanmean(values)), "minus_first": float(d.mean()),
               "minus_first_se": float(d.std(ddof=1) / np.sqrt(len(d))) if len(d) > 1 else 0.0}
        results.append(row)
        print(f"  {name:<40} {row['kl']:.4f}  − first {row['minus_first']:+.4f} (SE {row['minus_first_se']:.4f})")
    seconds = time.perf_counter() - t0
    print(f"{seconds:.0f} s")
    write_json(args.json, {"manifest": manifest("transition_ensemble.py", args), "events": [p.event.id for p in events],
                           "seed": args.seed, "results": results, "per_event": kl, "seconds": seconds})
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
