"""Benchmark f_psi: training on the shared Weibo events with and without L_roll, and the cost of
stepping a 4,000- and a 40,000-response event (synthetic) through the incremental session.

    python bench/transition.py --json bench_transition.json --cache /tmp/labels   # full (~25 min on 2 cores)
    python bench/transition.py --json bench_transition.json --quick    # sub-minute smoke run

Training data: ../shared/data (CED, COVID-19 Weibo rumor, CHECKED), split by date per format
(mfmdp.data.split; train -> fit, validation -> early stopping and the reported KLs; test untouched),
states labelled by the offline annotator (labels cached in --cache when given). Both runs use the
same seed, events, epochs and time budget; only alpha differs (1 = L_seq + L_roll, 0 = L_seq only).
Rollout timings: the trained model stepped at batch 1 over every step of the event, self-fed after a
10-step warm-up (what the transition-only floor does), inputs precomputed; measured in a child process
so that peak_rss_mb is the inference process alone.
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing as mp
import platform
import sys
import time
from pathlib import Path

import numpy as np

from benchutil import SHARED, rss_mb
log = logging.getLogger("bench.transition")


def load_events(quick: bool, data: Path):
    from mfmdp.data import load

    sets = ["ced"] if quick else ["ced", "covid19_weibo_rumor", "checked"]
    events = []
    for name in sets:
        evs = load(data / name)
        events.extend(evs[:60] if quick else evs)
    return events


def prepare(args):
    from mfmdp.annotate.registry import get_annotator
    from mfmdp.annotate.store import LabelStore, annotate_events
    from mfmdp.data.split import make_split
    from mfmdp.data.stepping import make_steps, verified_institution_rule
    from mfmdp.encoders import get_encoder
    from mfmdp.transition.features import event_features

    t0 = time.perf_counter()
    events = load_events(args.quick, args.data)
    split = make_split(events, seed=args.seed, per_format=True)
    train_ev, val_ev = split.select(events, "train"), split.select(events, "validation")
    use = train_ev + val_ev
    ann = get_annotator(args.annotator)
    store = LabelStore(args.cache, ann) if args.cache else None
    labels = annotate_events(use, ann, store=store, show_progress=not args.quiet)
    encoder = get_encoder(args.encoder)
    feats, skipped = [], {"fewer than 2 steps": 0}
    for e, lab in zip(use, labels):
        if len(e) <= 16:
            skipped["fewer than 2 steps"] += 1
            continue
        steps = make_steps(e, size=16, signal_rule=verified_institution_rule)
        feats.append(event_features(e, steps, lab.codes["state"], encoder))
    val_ids = {e.id for e in val_ev}
    train_f = [f for f in feats if f.event_id not in val_ids]
    val_f = [f for f in feats if f.event_id in val_ids]
    info = {"events_train": len(train_f), "events_val": len(val_f), "skipped": dict(skipped),
            "steps_train": int(sum(len(f) for f in train_f)), "steps_val": int(sum(len(f) for f in val_f)),
            "responses_train_val": int(sum(len(e) for e in use)), "prepare_seconds": round(time.perf_counter() - t0, 1)}
    return train_f, val_f, encoder, info


def train_both(train_f, val_f, encoder, args):
    from mfmdp.transition.model import TransitionConfig
    from mfmdp.transition.train import TrainConfig, train

    small = dict(d_model=32, n_layers=1, n_heads=4, d_ff=64) if args.quick else {}
    mcfg = TransitionConfig.for_encoder(args.encoder, encoder.dim, **small)
    out = {}
    models = {}
    for name, alpha in (("with_roll", args.alpha), ("without_roll", 0.0)):
        tcfg = TrainConfig(epochs=args.epochs, alpha=alpha, horizon=args.horizon, seed=args.seed,
                           max_seconds=args.time_budget, threads=args.threads, patience=args.patience,
                           lr=args.lr, crop=args.crop, starts_per_event=args.starts,
                           roll_start_epoch=args.roll_start_epoch)
        model, res = train(train_f, mcfg, tcfg, val_feats=val_f, progress=not args.quiet)
        v = res.validation
        out[name] = {"train_seconds": round(res.seconds, 1), "epochs_run": len(res.history), "best_epoch": res.best_epoch,
                     "val_seq_kl": v["seq_kl"], "val_roll_kl": v["roll_kl"], "val_persistence_kl": v["persistence_kl"],
                     "val_skill": v["skill"], "roll_kl_per_k": v["roll_kl_per_k"],
                     "persistence_kl_per_k": v["persistence_kl_per_k"], "skill_per_k": v["skill_per_k"],
                     "ece_teacher_forced": v.get("ece_teacher_forced"), "ece_rollout_last": v.get("ece_rollout_last"),
                     "history": res.history}
        models[name] = model
        print(f"[{name}] alpha={alpha} {res.seconds:.0f}s, {len(res.history)} epochs (best {res.best_epoch}): "
              f"val seq KL {v['seq_kl']:.4f}, {args.horizon}-step rollout KL {v['roll_kl']:.4f} "
              f"(persistence {v['persistence_kl']:.4f}, skill {v['skill']:+.3f}), ECE {v.get('ece_teacher_forced', float('nan')):.4f}",
              flush=True)
    return out, models


def _time_rollouts(ckpt: str, sizes: list[int], seed: int, queue) -> None:
    """Child process: step synthetic events of the given sizes through a fresh session each."""
    from mfmdp.data.stepping import make_steps, verified_institution_rule
    from mfmdp.data.synthetic import generate_event
    from mfmdp.encoders import get_encoder
    from mfmdp.transition.features import event_features, initial_inputs
    from mfmdp.transition.model import EventTransformer

    model = EventTransformer.load(ckpt)
    enc = get_encoder(model.cfg.encoder)
    res = {}
    for n in sizes:
        ev = generate_event("rumor_debunked", n, seed=seed)
        steps = make_steps(ev, 16, signal_rule=verified_institution_rule)
        t_feat = time.perf_counter()
        f = event_features(ev, steps, ev.metadata["labels"].codes["state"], enc)
        t_feat = time.perf_counter() - t_feat
        r_prev, m_prev = f.teacher_inputs()
        t0 = time.perf_counter()
        sess = model.session(f.schedule)
        m = m_prev[0][None]
        for t in range(len(f)):  # real inputs for 10 warm-up steps, then self-fed, r frozen
            if t <= 10:
                m, r = m_prev[t][None], r_prev[t][None]
            m = sess.step(m, r)
        res[n] = {"steps": len(f), "seconds": time.perf_counter() - t0, "feature_seconds": t_feat}
    m0, r0 = initial_inputs(model.cfg.n_states, model.cfg.synopsis_dim)
    sess = model.session(f.schedule).fork(1)
    sess.step(m0[None], r0[None])
    J, K = 8, 30
    t0 = time.perf_counter()
    for _ in range(20):
        sess.rollout(np.repeat(m0[None], J, 0), np.repeat(r0[None], J, 0), K)
    res["rollout_J8_K30_seconds"] = (time.perf_counter() - t0) / 20
    res["peak_rss_mb"] = rss_mb()
    queue.put(res)


def time_rollouts(ckpt: Path, quick: bool, seed: int) -> dict:
    sizes = [4000, 40000]
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    p = ctx.Process(target=_time_rollouts, args=(str(ckpt), sizes, seed, q))
    p.start()
    res = q.get()
    p.join()
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", type=Path, required=True, help="write the figures here")
    ap.add_argument("--quick", action="store_true", help="sub-minute smoke run (60 CED events, tiny model, 2 epochs)")
    ap.add_argument("--data", type=Path, default=SHARED)
    ap.add_argument("--annotator", default="offline")
    ap.add_argument("--encoder", default="hash")
    ap.add_argument("--cache", type=Path, default=None, help="label store directory (reuse labels across runs)")
    ap.add_argument("--epochs", type=int, default=None)
    ap.add_argument("--time-budget", type=float, default=None, help="seconds per training run")
    ap.add_argument("--alpha", type=float, default=1.0)
    ap.add_argument("--horizon", type=int, default=30)
    ap.add_argument("--lr", type=float, default=3e-4)
    ap.add_argument("--starts", type=int, default=4, help="L_roll start points per event and epoch")
    ap.add_argument("--roll-start-epoch", type=int, default=2, help="epochs of L_seq alone before L_roll joins")
    ap.add_argument("--crop", type=int, default=512)
    ap.add_argument("--patience", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1, help="torch threads while training (1: see TrainConfig.threads)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args()
    if args.epochs is None:
        args.epochs = 2 if args.quick else 30
    if args.time_budget is None:
        args.time_budget = 15 if args.quick else 420
    if args.quick:
        args.horizon = min(args.horizon, 10)
        args.roll_start_epoch = min(args.roll_start_epoch, 1)  # 2 epochs: L_roll in the second
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s: %(message)s")
    logging.getLogger("mfmdp.transition.train").setLevel(logging.INFO)  # one line per epoch
    if not args.data.is_dir():
        sys.exit(f"{args.data} is absent: the benchmark needs the shared Weibo data")
    import torch

    t0 = time.perf_counter()
    train_f, val_f, encoder, info = prepare(args)
    print(f"data: {info}", flush=True)
    runs, models = train_both(train_f, val_f, encoder, args)
    ckpt = Path(args.json).with_suffix(".ckpt")
    models["with_roll"].save(ckpt)
    timing = time_rollouts(ckpt, args.quick, args.seed)
    r4, r40 = timing[4000], timing[40000]
    out = {
        "train_seconds": runs["with_roll"]["train_seconds"],
        "train_seconds_without_roll": runs["without_roll"]["train_seconds"],
        "val_rollout_kl_with_roll": runs["with_roll"]["val_roll_kl"],
        "val_rollout_kl_without_roll": runs["without_roll"]["val_roll_kl"],
        "val_rollout_kl_persistence": runs["with_roll"]["val_persistence_kl"],
        "rollout_seconds_4k": round(r4["seconds"], 3),
        "rollout_seconds_40k": round(r40["seconds"], 3),
        "rollout_ratio_40k_4k": round(r40["seconds"] / r4["seconds"], 2),
        "steps_4k": r4["steps"], "steps_40k": r40["steps"],
        "rollout_J8_K30_seconds": round(timing["rollout_J8_K30_seconds"], 4),
        "peak_rss_mb": round(timing["peak_rss_mb"], 1),
        "peak_rss_mb_training_process": round(rss_mb(), 1),
        "quick": args.quick, "data": info, "runs": runs,
        "settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "machine": {"python": platform.python_version(), "torch": torch.__version__, "cpus": mp.cpu_count(),
                    "torch_threads": torch.get_num_threads()},
        "total_seconds": round(time.perf_counter() - t0, 1),
    }
    ckpt_files = list(ckpt.glob("*"))
    for f in ckpt_files:
        f.unlink()
    ckpt.rmdir()
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(out, indent=2))
    print(json.dumps({k: v for k, v in out.items() if k not in ("runs", "data", "settings", "machine")}, indent=2))


if __name__ == "__main__":
    main()
