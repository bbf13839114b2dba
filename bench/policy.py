"""Policy benchmark: LCT training time, held-out NLL / state-F1 with and without L_pred, and
end-to-end simulation speed with reselection (J=4, K=30 and K=10).

    python bench/policy.py --json policy.json            # shared dev events (covid19 + CED)
    python bench/policy.py --json policy.json --quick    # sub-minute smoke run

Data: ../shared/data (read-only), split by date (train < validation); the validation side is the
held-out set. Labels: the offline annotator, cached in a label store under --cache. Transition
model: --transition DIR, or a default-size Event Transformer trained here within a short budget
(its quality bounds the prior, so held-out figures are relative: with vs without L_pred).
The machine is shared (2 cores): timings are noisy.
"""

from __future__ import annotations

import argparse
import json
import logging
from dataclasses import dataclass
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

import mfmdp.data  # noqa: E402,F401  (data first: it pulls in the label schema)
from mfmdp.annotate.registry import get_annotator  # noqa: E402
from mfmdp.annotate.store import LabelStore, annotate_events  # noqa: E402
from mfmdp.data import load  # noqa: E402
from mfmdp.data.split import make_split  # noqa: E402
from mfmdp.policy.dataset import add_forecasts, prepare_event  # noqa: E402
from mfmdp.policy.inputs import PolicyInputs  # noqa: E402
from mfmdp.policy.lct import evaluate_policy  # noqa: E402
from mfmdp.policy.training import PolicyTrainConfig, train_neural_policy  # noqa: E402
from mfmdp.encoders import get_encoder  # noqa: E402
from mfmdp.transition.features import event_features  # noqa: E402
from mfmdp.transition.model import EventTransformer, TransitionConfig  # noqa: E402

log = logging.getLogger("bench.policy")


@dataclass
class Corpus:
    events: list
    labels: list
    embeddings: list
    steps: list


def load_events(data: Path, sets: list[str], min_responses: int) -> list:
    events = []
    for s in sets:
        evs = load(data / s)
        events.extend(e for e in evs if len(e) >= min_responses)
        print(f"loaded {s}: {len(evs)} events", flush=True)
    return events


def label(events, annotator_spec: str, cache: Path) -> list:
    ann = get_annotator(annotator_spec)
    store = LabelStore(cache / "label_store", ann)
    return annotate_events(events, ann, store=store, show_progress=False)


def corpus_of(events, labels, encoder, step_size: int) -> Corpus:
    from mfmdp.data.stepping import make_steps, verified_institution_rule

    embs = [encoder.encode([str(t) for t in e.table.texts]) for e in events]
    for e, lab in zip(events, labels):
        lab.codes["behavior"] = np.asarray(e.table.behavior, np.int8).copy()
    steps = [make_steps(e, size=step_size, signal_rule=verified_institution_rule) for e in events]
    return Corpus(list(events), list(labels), embs, steps)


def get_transition(args, train: Corpus, encoder) -> EventTransformer:
    if args.transition:
        return EventTransformer.load(args.transition)
    from mfmdp.transition.train import TrainConfig, train as train_transition

    n = 8 if args.quick else args.transition_events  # a subset keeps f_psi's training short
    feats = [event_features(e, s, lab.codes["state"], encoder, emb)
             for e, s, lab, emb in list(zip(train.events, train.steps, train.labels, train.embeddings))[:n]]
    if args.quick:
        mcfg = TransitionConfig(d_model=32, n_layers=1, n_heads=2, d_ff=64, window=64)
        tcfg = TrainConfig(epochs=2, horizon=5, threads=1, max_seconds=15)
    else:
        mcfg = TransitionConfig()  # paper sizes: the speed figures need the real model
        tcfg = TrainConfig(epochs=50, threads=1, crop=256, max_seconds=args.transition_budget)
    t0 = time.perf_counter()
    model, res = train_transition(feats, mcfg, tcfg, progress=False)
    print(f"transition trained in {time.perf_counter() - t0:.0f}s ({len(res.history)} epochs)", flush=True)
    return model.eval()


def heldout(policy, val: Corpus, encoder, transition, decay: float) -> dict:
    prepared = [prepare_event(e, s, lab, emb, encoder, policy.config.inputs.context, decay)
                for e, s, lab, emb in zip(val.events, val.steps, val.labels, val.embeddings)]
    for ev in prepared:
        add_forecasts(ev, transition)
    return evaluate_policy(policy.net, prepared)


def sim_speed(policy, val: Corpus, encoder, transition, K: int, J: int, max_steps: int, warmup: int = 10) -> dict:
    """Simulated responses per second, end to end through the simulator's loop."""
    from mfmdp.simulate.loop import LoopParts, simulate
    from mfmdp.simulate.replay import make_replay

    parts = LoopParts(policy=policy, annotator=None, encoder=encoder, transition=transition, context="synopsis",
                      candidates=J, horizon=K)
    n_sim, seconds, cpu = 0, 0.0, 0.0
    torch.set_num_threads(1)
    for e, s, lab, emb in zip(val.events, val.steps, val.labels, val.embeddings):
        if len(s) <= warmup + 1:
            continue
        last = min(len(s), warmup + max_steps)
        sub = _truncate(e, s, lab, emb, last)
        feats = event_features(sub[0], sub[1], sub[2].codes["state"], encoder, sub[3])
        replay = make_replay(sub[0], sub[1], sub[2], sub[3], feats.schedule, warmup)
        t0, c0 = time.perf_counter(), time.process_time()
        simulate(replay, parts, seed=0)
        seconds += time.perf_counter() - t0
        cpu += time.process_time() - c0
        n_sim += int((~sub[1].is_signal[replay.warmup_slots:]).sum())
    return {"responses": n_sim, "seconds": seconds, "per_second": n_sim / max(seconds, 1e-9),
            "per_cpu_second": n_sim / max(cpu, 1e-9)}


def speed_figures(policy, val: Corpus, encoder, transition, max_steps: int) -> dict:
    sp30 = sim_speed(policy, val, encoder, transition, K=30, J=4, max_steps=max_steps)
    sp10 = sim_speed(policy, val, encoder, transition, K=10, J=4, max_steps=max_steps)
    sp1 = sim_speed(policy, val, encoder, transition, K=30, J=1, max_steps=max_steps)
    return {
        "agents_per_second": sp30["per_second"],
        "agents_per_second_k10": sp10["per_second"],
        "agents_per_second_no_sampling": sp1["per_second"],
        "agents_per_cpu_second": sp30["per_cpu_second"],
        "agents_per_cpu_second_k10": sp10["per_cpu_second"],
        "speed_responses": sp30["responses"],
    }


def _truncate(event, steps, labels, emb, n_steps: int):
    """The first n_steps steps of an event (a shorter replay keeps the benchmark short)."""
    from dataclasses import replace

    from mfmdp.data.stepping import make_steps, verified_institution_rule

    end = int(steps.bounds[n_steps])
    ev = replace(event, responses=event.responses[:end])
    ev.__dict__.pop("table", None)
    st = make_steps(ev, size=int(steps.sizes[0]), signal_rule=verified_institution_rule)
    return ev, st, labels.take(np.arange(end)), emb[:end]


def speed_only(args, val_ev) -> None:
    from mfmdp.policy.neural import NeuralPolicy

    if not args.transition:
        sys.exit("--speed-only needs --transition DIR")
    encoder = get_encoder("hash")
    val = corpus_of(val_ev, label(val_ev, args.annotator, Path(args.cache)), encoder, 16)
    transition = EventTransformer.load(args.transition)
    policy = NeuralPolicy.load(args.speed_only, encoder=encoder)
    out = speed_figures(policy, val, encoder, transition, args.speed_steps)
    out["note"] = "2 shared CPU cores, other jobs running: timings are noisy"
    for k, v in out.items():
        print(f"{k:32s} {v}")
    Path(args.json).write_text(json.dumps(out, indent=2))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", required=True, help="write the figures here")
    ap.add_argument("--quick", action="store_true", help="sub-minute smoke run on a few small events")
    ap.add_argument("--data", default=str(REPO.parent / "shared" / "data"))
    ap.add_argument("--sets", default="covid19_weibo_rumor,ced")
    ap.add_argument("--transition", default=None, help="trained transition model dir (else trained here)")
    ap.add_argument("--transition-budget", type=float, default=240.0, help="seconds to train f_psi when none given")
    ap.add_argument("--transition-events", type=int, default=150, help="events f_psi trains on when trained here")
    ap.add_argument("--annotator", default="offline")
    ap.add_argument("--cache", default="/tmp/mfmdp-bench-policy", help="label store (outside the repo)")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--starts-per-event", type=int, default=4)
    ap.add_argument("--time-budget", type=float, default=None, help="LCT training budget in seconds")
    ap.add_argument("--speed-steps", type=int, default=60, help="simulated steps per event for the speed test")
    ap.add_argument("--speed-events", type=int, default=4)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--save", default=None, help="keep the trained models here (transition/, policy_lct/, policy_text/)")
    ap.add_argument("--speed-only", default=None, metavar="POLICY_DIR",
                    help="only measure simulation speed with this trained policy (needs --transition)")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(1)
    data = Path(args.data)
    if not data.is_dir():
        sys.exit(f"no shared data at {data}")
    t_all = time.perf_counter()
    sets = ["covid19_weibo_rumor"] if args.quick else args.sets.split(",")
    events = load_events(data, sets, min_responses=200 if args.quick else 64)
    split = make_split(events, seed=args.seed, fractions=(0.7, 0.15, 0.15))
    train_ev = split.select(events, "train")
    val_ev = split.select(events, "validation")
    if args.quick:
        train_ev, val_ev = train_ev[:8], val_ev[:3]
    print(f"train events {len(train_ev)}, held-out events {len(val_ev)}", flush=True)
    if args.speed_only:
        return speed_only(args, val_ev[: args.speed_events])
    t0 = time.perf_counter()
    train_lab = label(train_ev, args.annotator, Path(args.cache))
    val_lab = label(val_ev, args.annotator, Path(args.cache))
    label_seconds = time.perf_counter() - t0
    encoder = get_encoder("hash")
    train = corpus_of(train_ev, train_lab, encoder, 16)
    val = corpus_of(val_ev, val_lab, encoder, 16)
    transition = get_transition(args, train, encoder)
    decay = transition.cfg.synopsis_decay
    if args.save and not args.transition:
        transition.save(Path(args.save) / "transition")

    base = dict(epochs=1 if args.quick else args.epochs, seed=args.seed, time_budget_s=args.time_budget,
                synopsis_decay=decay, starts_per_event=args.starts_per_event)
    if args.quick:
        base.update(K=10, starts_per_event=2, hidden=32)
    results = {}
    for name, lct in (("with_pred", True), ("without_pred", False)):
        t0 = time.perf_counter()
        pol = train_neural_policy(train.events, train.labels, train.embeddings, encoder, transition, PolicyInputs(),
                                  PolicyTrainConfig(**base, lct=lct), steps=train.steps, progress=False)
        secs = time.perf_counter() - t0
        ev = heldout(pol, val, encoder, transition, decay)
        results[name] = {"policy": pol, "seconds": secs, **ev}
        if args.save:
            pol.save(Path(args.save) / ("policy_lct" if lct else "policy_text"))
        print(f"{name}: trained in {secs:.0f}s, held-out nll {ev['nll']:.4f} nats, state F1 {ev['state_f1']:.4f}",
              flush=True)
    pol = results["with_pred"]["policy"]
    speed_val = Corpus(val.events[: args.speed_events], val.labels[: args.speed_events],
                       val.embeddings[: args.speed_events], val.steps[: args.speed_events])
    max_steps = 20 if args.quick else args.speed_steps
    speed = speed_figures(pol, speed_val, encoder, transition, max_steps)
    out = {
        "train_seconds": results["with_pred"]["seconds"],
        "train_seconds_without_pred": results["without_pred"]["seconds"],
        "heldout_nll_with_pred": results["with_pred"]["nll"],
        "heldout_nll_without_pred": results["without_pred"]["nll"],
        "heldout_state_f1_with_pred": results["with_pred"]["state_f1"],
        "heldout_state_f1_without_pred": results["without_pred"]["state_f1"],
        "heldout_actions": results["with_pred"]["actions"],
        **speed,
        "train_events": len(train_ev),
        "heldout_events": len(val_ev),
        "train_responses": int(sum(len(e) for e in train_ev)),
        "pool_rows": len(pol.pool),
        "label_seconds": label_seconds,
        "transition": args.transition or f"trained here ({transition.cfg.d_model}d x {transition.cfg.n_layers})",
        "quick": args.quick,
        "total_seconds": time.perf_counter() - t_all,
        "note": "2 shared CPU cores, other jobs running: timings are noisy",
    }
    for k, v in out.items():
        print(f"{k:32s} {v:.4f}" if isinstance(v, float) else f"{k:32s} {v}")
    Path(args.json).write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
