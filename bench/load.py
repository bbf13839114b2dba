"""Benchmark: load ../shared/data/checked without a cache ("cold": parse the source JSON) and from the
Parquet cache written by `mfmdp data convert`, plus peak RSS of each, measured in separate processes.

    python bench/load.py [--data ../shared/data/checked] [--cache DIR] [--json OUT]

Targets (2-core machine): cold < 15 s, cached < 2 s, peak RSS < 2 GB. "Cold" means no Parquet
cache; the OS page cache is whatever it is (the script cannot drop it). The timed part includes
building every event's columnar table (what the simulator reads).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TARGETS = {"cold_s": 15.0, "cached_s": 2.0, "peak_rss_mb": 2048.0}


def _child(mode: str, path: str) -> dict:
    t0 = time.perf_counter()
    from mfmdp.data.loading import load

    t_import = time.perf_counter() - t0
    t0 = time.perf_counter()
    events = load(path, use_cache=(mode == "cached"))
    t_load = time.perf_counter() - t0
    t0 = time.perf_counter()
    n = sum(len(e.table) for e in events)
    t_table = time.perf_counter() - t0
    return {"mode": mode, "events": len(events), "responses": n, "import_s": t_import, "load_s": t_load,
            "table_s": t_table, "seconds": t_load + t_table,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0}


def _run_child(mode: str, path: Path) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", mode, str(path)], check=True, capture_output=True,
                         text=True, cwd=REPO)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "checked")
    ap.add_argument("--cache", type=Path, default=None, help="cache folder to (re)write; default a temp dir")
    ap.add_argument("--repeat", type=int, default=1, help="runs per mode; the best is reported")
    ap.add_argument("--json", type=Path, default=None, help="write the figures here")
    ap.add_argument("--child", nargs=2, metavar=("MODE", "PATH"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(_child(*args.child)))
        return
    if not args.data.exists():
        sys.exit(f"no data at {args.data}")
    with tempfile.TemporaryDirectory() as tmp:
        cache = args.cache or Path(tmp) / "cache"
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", "from mfmdp.cli import app; app()", "data", "convert",
                        str(args.data), str(cache)], check=True, cwd=REPO, capture_output=True)
        convert_s = time.perf_counter() - t0
        cold = min((_run_child("cold", args.data) for _ in range(args.repeat)), key=lambda r: r["seconds"])
        cached = min((_run_child("cached", cache) for _ in range(args.repeat)), key=lambda r: r["seconds"])
        cache_mb = sum(f.stat().st_size for f in cache.iterdir()) / 2**20
    result = {
        "data": str(args.data), "events": cold["events"], "responses": cold["responses"],
        "cold_s": round(cold["seconds"], 3), "cached_s": round(cached["seconds"], 3),
        "speedup": round(cold["seconds"] / cached["seconds"], 1),
        "cold_peak_rss_mb": round(cold["peak_rss_mb"], 1), "cached_peak_rss_mb": round(cached["peak_rss_mb"], 1),
        "convert_s": round(convert_s, 2), "cache_mb": round(cache_mb, 1), "detail": {"cold": cold, "cached": cached},
        "targets": TARGETS,
    }
    assert cached["responses"] == cold["responses"], "cache lost responses"
    ok = (result["cold_s"] < TARGETS["cold_s"] and result["cached_s"] < TARGETS["cached_s"]
          and max(result["cold_peak_rss_mb"], result["cached_peak_rss_mb"]) < TARGETS["peak_rss_mb"])
    result["meets_targets"] = ok
    print(f"{result['events']} events, {result['responses']} responses from {args.data}")
    print(f"cold   {result['cold_s']:6.2f} s  peak RSS {result['cold_peak_rss_mb']:7.1f} MB  (target < 15 s)")
    print(f"cached {result['cached_s']:6.2f} s  peak RSS {result['cached_peak_rss_mb']:7.1f} MB  (target < 2 s)")
    print(f"speed-up x{result['speedup']}; convert {result['convert_s']} s; cache {result['cache_mb']} MB; "
          f"targets {'met' if ok else 'NOT met'}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
