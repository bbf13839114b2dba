"""Semi-supervised variants of the distilled annotator, judged by event-grouped CV on silver_train only.

Two ways of using the large UNLABELLED corpus (texts of CHECKED and CED responses; labels never
read, gold_dev never read) on top of the default "char" features:

- lsa:  hashed character 1-3-gram TF-IDF of unlabelled own words -> truncated SVD (k dims) ->
        a dense, L2-normalised block appended (weight w) to the default features;
- self: self-training: a head fitted on the training folds labels the unlabelled texts; those with
        max probability >= thr are added with sample weight w and the head is refitted.

Both are compared with the default on the same folds (idf fitted once on all silver texts, label
free, identical for every variant). Timings on a shared, busy 2-core machine: noisy.

    python bench/distill_semisup.py --dims state --json bench-semisup.json
    python bench/distill_semisup.py --dims all --unlabelled 120000 --json bench-semisup-all.json
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data"


def unlabelled_pairs(data: Path, limit: int, seed: int) -> list[tuple[str, str]]:
    """Distinct (response text, source-post text) pairs from raw CHECKED and CED files, shuffled."""
    pairs: dict[str, str] = {}
    for f in sorted((data / "checked").rglob("*.json")):
        ev = json.loads(f.read_text(encoding="utf-8"))
        for r in (ev.get("comments") or []) + (ev.get("reposts") or []):
            if r.get("text"):
                pairs.setdefault(r["text"], ev.get("text") or "")
    skipped = 0
    for f in sorted((data / "ced").glob("*-repost/*.json")):
        try:
            responses = json.loads(f.read_text(encoding="utf-8"))
            topic = json.loads((data / "ced" / "original-microblog" / f.name).read_text(encoding="utf-8"))
            topic = topic.get("text") or ""
        except (OSError, ValueError):
            skipped += 1
            continue
        for r in responses:
            if r.get("text"):
                pairs.setdefault(r["text"], topic)
    if skipped:
        print(f"skipped {skipped} unreadable CED files", flush=True)
    items = sorted(pairs.items())
    random.Random(seed).shuffle(items)
    return items[:limit]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--dims", default="state", help="comma-separated text dimensions, or 'all'")
    ap.add_argument("--unlabelled", type=int, default=120000, help="unlabelled texts for the SVD")
    ap.add_argument("--self-texts", type=int, default=30000, help="unlabelled texts for self-training")
    ap.add_argument("--svd-dims", type=int, default=256)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)

    from sklearn.feature_extraction.text import HashingVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, f1_score
    from sklearn.utils.extmath import randomized_svd
    from threadpoolctl import threadpool_limits

    from mfmdp.annotate.distilled import DistillConfig, _folds, _targets, read_labelled
    from mfmdp.annotate.features import FeatureExtractor, _idf, _tfidf, split_weibo
    from mfmdp.core.schema import TEXT_DIMENSIONS

    dims = list(TEXT_DIMENSIONS) if args.dims == "all" else args.dims.split(",")
    silver = read_labelled(args.data / "annotations" / "silver_train.jsonl")
    folds = _folds(silver, 5, args.seed)
    texts, topics = [it.text for it in silver], [it.topic for it in silver]
    fx = FeatureExtractor(DistillConfig().features).fit(texts)
    x = fx.transform(texts, topics)
    report: dict = {"n_silver": len(silver), "seed": args.seed, "variants": {}}

    def lr():
        return LogisticRegression(C=4.0, class_weight="balanced", max_iter=2000, random_state=args.seed)

    def cv(xm, xu=None, thr=0.9, w=0.3) -> dict:
        out = {}
        for d in dims:
            y = _targets(silver, d)
            pred = np.zeros(len(y), np.int64)
            for tr, te in folds:
                with threadpool_limits(1):
                    clf = lr().fit(xm[tr], y[tr])
                    if xu is not None:  # self-training round
                        pu = clf.predict_proba(xu)
                        keep = pu.max(1) >= thr
                        xa = sp.vstack([xm[tr], xu[keep]])
                        ya = np.r_[y[tr], clf.classes_[pu.argmax(1)][keep]]
                        sw = np.r_[np.ones(len(tr)), np.full(int(keep.sum()), w)]
                        clf = lr().fit(xa, ya, sample_weight=sw)
                    pred[te] = clf.predict(xm[te])
            out[d] = {"macro_f1": round(float(f1_score(y, pred, average="macro")), 4),
                      "accuracy": round(float(accuracy_score(y, pred)), 4)}
        return out

    def record(name: str, scores: dict) -> None:
        report["variants"][name] = scores
        print(f"{name:28s} " + "  ".join(f"{d}={v['macro_f1']:.3f}/{v['accuracy']:.3f}"
                                         for d, v in scores.items()), flush=True)

    record("default (char)", cv(x))

    t = time.perf_counter()
    pairs = unlabelled_pairs(args.data, max(args.unlabelled, args.self_texts), args.seed)
    own = sorted({split_weibo(a).own for a, _ in pairs[: args.unlabelled]} - {""})
    hv = HashingVectorizer(n_features=2**18, analyzer="char", ngram_range=(1, 3), alternate_sign=False,
                           norm=None, lowercase=False, dtype=np.float32)
    u = hv.transform(own).tocsr()
    cols = np.sort(np.argsort(-np.bincount(u.indices, minlength=2**18))[:40000])
    idf = _idf(u)
    with threadpool_limits(2):
        _, _, vt = randomized_svd(_tfidf(u, idf)[:, cols], args.svd_dims, n_iter=4, random_state=args.seed)
    report["svd_seconds"] = round(time.perf_counter() - t, 1)
    report["n_unlabelled_own_texts"] = len(own)

    def lsa(batch: list[str]) -> sp.csr_matrix:
        e = np.asarray(_tfidf(hv.transform([split_weibo(s).own for s in batch]).tocsr(), idf)[:, cols] @ vt.T)
        n = np.linalg.norm(e, axis=1, keepdims=True)
        n[n == 0] = 1.0
        return sp.csr_matrix(e / n)

    e_silver = lsa(texts)
    for w in (0.5, 1.0):
        record(f"+ lsa (w={w})", cv(sp.hstack([x, e_silver * w], format="csr")))
    self_pairs = pairs[: args.self_texts]
    xu = fx.transform([a for a, _ in self_pairs], [b for _, b in self_pairs])
    record("+ self-training (0.9, 0.3)", cv(x, xu, 0.9, 0.3))
    x_l = sp.hstack([x, e_silver * 0.5], format="csr")
    xu_l = sp.hstack([xu, lsa([a for a, _ in self_pairs]) * 0.5], format="csr")
    record("+ lsa 0.5 + self-training", cv(x_l, xu_l, 0.9, 0.3))
    if args.json:
        args.json.write_text(json.dumps(report, ensure_ascii=False, indent=2), encoding="utf-8")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
