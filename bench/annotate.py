"""Annotation throughput on the CHECKED corpus (../shared/data/checked): cold and cached.

For each annotator (offline; distilled, trained on the fly on silver_train.jsonl when the distilled
module is available) the whole folder is annotated twice through the same path as
`mfmdp annotate PATH`: cold (empty label store: every distinct text is labelled) and cached (a new
annotator object, events reloaded from the Parquet data cache, labels from the store). Optionally
scores each annotator on gold_dev.jsonl. Timings are wall-clock on a shared machine: noisy.

    python bench/annotate.py --json bench-annotate.json            # full folder (~545k responses)
    python bench/annotate.py --quick --json bench-annotate-quick.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data"


def subset_folder(checked: Path, per_label: int, work: Path) -> Path:
    """A folder of symlinks to the first `per_label` events of each CHECKED sub-folder."""
    out = work / "checked_subset"
    for sub in sorted(p for p in checked.iterdir() if p.is_dir()):
        (out / sub.name).mkdir(parents=True, exist_ok=True)
        for f in sorted(sub.glob("*.json"))[:per_label]:
            os.symlink(f, out / sub.name / f.name)
    return out


def run_annotator(label: str, make, events_cache: Path, work: Path, progress: bool) -> dict:
    from mfmdp.annotate.store import STORE_DIR, LabelStore, annotate_events, write_labels
    from mfmdp.data.cache import load_cache

    result: dict = {"annotator": label}
    store_dir = work / STORE_DIR
    shutil.rmtree(store_dir, ignore_errors=True)
    for phase in ("cold", "cached"):
        t0 = time.perf_counter()
        events = load_cache(events_cache, check_stale=False)
        t_load = time.perf_counter() - t0
        t1 = time.perf_counter()
        annotator = make()  # a fresh object: no in-memory memo survives between phases
        t_make = time.perf_counter() - t1
        store = LabelStore(store_dir, annotator)
        before = len(store)
        t2 = time.perf_counter()
        labels = annotate_events(events, annotator, store, show_progress=progress)
        write_labels(work, annotator, events, labels)
        t_ann = time.perf_counter() - t2
        n = sum(lab.n for lab in labels)
        result[phase] = {
            "responses": n,
            "new_distinct_texts": len(store) - before,
            "seconds_load_cache": round(t_load, 2),
            "seconds_make_annotator": round(t_make, 2),
            "seconds_annotate": round(t_ann, 2),
            "seconds_total": round(t_load + t_make + t_ann, 2),
            "responses_per_second": round(n / max(t_ann, 1e-9), 1),
        }
        print(f"  {label:10s} {phase:6s}: {n} responses, {len(store) - before} new distinct texts, "
              f"annotate {t_ann:.1f}s (+ load cache {t_load:.1f}s, make {t_make:.1f}s)", flush=True)
    return result


def score_on_gold(make, gold: Path) -> dict:
    from mfmdp.annotate.score import read_gold, score_annotator, scores_json

    ann = make()
    scores, _ = score_annotator(ann, read_gold(gold))
    return scores_json(ann.name, scores)["dimensions"]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA, help="the shared data folder")
    ap.add_argument("--quick", action="store_true", help="a subset: 15 events per CHECKED label folder")
    ap.add_argument("--json", dest="json_out", type=Path, help="write the figures here")
    ap.add_argument("--annotators", default="offline,distilled", help="comma-separated: offline,distilled")
    ap.add_argument("--no-gold", action="store_true", help="skip scoring on gold_dev.jsonl")
    ap.add_argument("--progress", action="store_true", help="show progress bars")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    sys.path.insert(0, str(REPO / "src"))
    from mfmdp.annotate.registry import get_annotator
    from mfmdp.data.cache import write_cache
    from mfmdp.data.loading import load

    checked = args.data / "checked"
    if not checked.is_dir():
        print(f"no CHECKED data at {checked}; nothing to measure", file=sys.stderr)
        return 2
    gold = args.data / "annotations" / "gold_dev.jsonl"
    silver = args.data / "annotations" / "silver_train.jsonl"
    work = Path(tempfile.mkdtemp(prefix="mfmdp-bench-annotate-"))
    report: dict = {
        "benchmark": "annotate",
        "quick": args.quick,
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform()},
        "note": "wall-clock on a shared 2-core machine; noisy",
        "annotators": [],
        "skipped": {},
    }
    try:
        source = subset_folder(checked, 15, work) if args.quick else checked
        t0 = time.perf_counter()
        events = load(source, progress=args.progress)
        t_load = time.perf_counter() - t0
        cache = work / "data_cache"
        t1 = time.perf_counter()
        write_cache(events, cache, source=source)
        t_cache = time.perf_counter() - t1
        n = sum(len(e.table) for e in events)
        distinct = len({t for e in events for t in e.table.texts})
        report["data"] = {"source": str(checked), "events": len(events), "responses": n,
                          "distinct_texts": distinct, "seconds_load_raw": round(t_load, 2),
                          "seconds_write_cache": round(t_cache, 2)}
        print(f"data: {len(events)} events, {n} responses, {distinct} distinct texts "
              f"(raw load {t_load:.1f}s, cache write {t_cache:.1f}s)", flush=True)
        del events

        makers: dict = {}
        wanted = [a.strip() for a in args.annotators.split(",") if a.strip()]
        if "offline" in wanted:
            makers["offline"] = lambda: get_annotator("offline")
        if "distilled" in wanted:
            try:
                from mfmdp.annotate.distilled import distill
            except ImportError as err:
                report["skipped"]["distilled"] = f"distilled module unavailable: {err}"
            else:
                if not silver.is_file():
                    report["skipped"]["distilled"] = f"no training labels at {silver}"
                else:
                    t2 = time.perf_counter()
                    model_dir = distill(silver, work / "distilled", seed=args.seed, progress=args.progress)
                    report["distilled_training_seconds"] = round(time.perf_counter() - t2, 2)
                    print(f"distilled annotator trained on {silver.name} in "
                          f"{report['distilled_training_seconds']}s", flush=True)
                    makers["distilled"] = lambda: get_annotator(f"distilled:{model_dir}")
        for label, make in makers.items():
            entry = run_annotator(label, make, cache, work, args.progress)
            if not args.no_gold and gold.is_file():
                entry["gold_dev"] = score_on_gold(make, gold)
                st = entry["gold_dev"]["state"]
                print(f"  {label:10s} gold_dev state: accuracy {st['accuracy']:.3f}, macro-F1 {st['macro_f1']:.3f}")
            report["annotators"].append(entry)
        for label, why in report["skipped"].items():
            print(f"  {label}: skipped ({why})")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(report, ensure_ascii=False, indent=2))
    if args.json_out:
        args.json_out.parent.mkdir(parents=True, exist_ok=True)
        args.json_out.write_text(json.dumps(report, ensure_ascii=False, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
