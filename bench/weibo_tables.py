"""BENCHMARKS.md tables from a finished `mfmdp run experiments/weibo.yaml` directory.

The run's own report (report.md) scores every event together. The issue's layout needs blocks of
events: all scored events (short / long / reversal), the long CHECKED events (> 1000 and > 5000
responses), and the COVID-19 events (profiles and signals) on their own. This script only regroups
the run's metrics.csv; it computes no metric itself.

    python bench/weibo_tables.py runs/weibo-test --json bench/results/weibo_tables.json > tables.md
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pandas as pd

from benchutil import SHARED, write_json
from mfmdp.evaluate.tables import (PRIMARY, SECONDARY, TABLE1_METHODS, TABLE2_METHODS, comparisons,
                                   display_names, horizon_sizes, markdown, ordered_methods, summarise,
                                   wide_table)

DATASETS = {"checked": "checked", "covid19": "covid19_weibo_rumor", "ced": "ced"}
COMPARED = ("mf_llm", "direct", "social_retrieval", "persistence", "transition_only", "regression")
HEADLINE = {"long": 0.75, "reversal": 0.67}  # the paper: MF-MDP's KL reduction vs MF-LLM


def event_datasets(data: Path, wanted: set[str]) -> dict[str, str]:
    """Event id -> dataset name, by loading each dataset folder (cached after the first run)."""
    from mfmdp.data import load

    out = {}
    for name, folder in DATASETS.items():
        if (data / folder).is_dir():
            out.update({e.id: name for e in load(data / folder) if e.id in wanted})
    return out


def blocks(metrics: pd.DataFrame, dataset: dict[str, str]) -> dict[str, tuple[pd.DataFrame, list[str]]]:
    """Block title -> (its metric rows, its settings)."""
    long_len = metrics[metrics["setting"] == "long"].drop_duplicates("event").set_index("event")["responses"]
    checked = {e for e, d in dataset.items() if d == "checked"}
    covid = {e for e, d in dataset.items() if d == "covid19"}
    over = lambda n: {e for e in checked if long_len.get(e, 0) > n}  # noqa: E731
    out = {"all scored events": (metrics, ["short", "long", "reversal"]),
           "CHECKED, > 1000 responses": (metrics[metrics["event"].isin(over(1000))], ["long"]),
           "CHECKED, > 5000 responses": (metrics[metrics["event"].isin(over(5000))], ["long"]),
           "COVID-19 (profiles and signals)": (metrics[metrics["event"].isin(covid)], ["short", "long", "reversal"])}
    return {k: (df, [s for s in settings if s in set(df["setting"])]) for k, (df, settings) in out.items() if not df.empty}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_dir", type=Path)
    ap.add_argument("--data", type=Path, default=SHARED)
    ap.add_argument("--json", type=Path, help="write the figures as JSON here")
    ap.add_argument("--n-boot", type=int, default=10_000)
    args = ap.parse_args()

    metrics = pd.read_csv(args.run_dir / "metrics.csv")
    manifest = json.loads((args.run_dir / "manifest.json").read_text())
    names = display_names(manifest)
    present = sorted(metrics["method"].unique())
    t1 = ordered_methods(present, TABLE1_METHODS)
    t2 = ordered_methods(present, TABLE2_METHODS)
    dataset = event_datasets(args.data, set(metrics["event"]))
    result: dict = {"run_dir": str(args.run_dir), "evaluated_side": manifest.get("evaluated_side", "test"),
                    "annotator": manifest.get("annotator"), "seeds": manifest.get("seeds"), "blocks": {}}
    for title, (df, settings) in blocks(metrics, dataset).items():
        print(f"\n### {title}\n")
        sizes = horizon_sizes(df)
        print("Horizons: " + "; ".join(f"{s}: {n} events, mean {r:.0f} responses = {st:.0f} steps"
                                        for s, (r, st, n) in sizes.items() if s in settings) + "\n")
        block = {"horizons": sizes, "tables": {}, "comparisons": []}
        for label, methods, metric_names in (("Table 1, primary (state)", t1, PRIMARY),
                                             ("Table 1, secondary (state)", t1, SECONDARY),
                                             ("Table 2, ablations (state)", t2, PRIMARY)):
            summ = summarise(df, "state", methods, settings, metric_names)
            print(f"{label}\n\n{markdown(wide_table(summ, methods, settings, metric_names, names))}\n")
            block["tables"][label] = summ.to_dict(orient="records")
        if "mf_mdp" in present:
            comp = comparisons(df, "mf_mdp", [m for m in COMPARED if m in present], settings,
                               ("kl", "wasserstein", "dtw"), "state", n_boot=args.n_boot)
            if not comp.empty:
                show = comp[comp["metric"] == "kl"].copy()
                show.index = [names.get(m, m) for m in show["method"]]
                show["MF-MDP − method [95% CI]"] = [f"{d:.3f} [{lo:.3f}, {hi:.3f}]" for d, lo, hi in
                                                   zip(show["diff"], show["diff_lo"], show["diff_hi"])]
                show["KL reduction [95% CI]"] = [f"{r:.0%} [{lo:.0%}, {hi:.0%}]" for r, lo, hi in
                                                zip(show["rel_reduction"], show["rel_lo"], show["rel_hi"])]
                print("MF-MDP vs each method, windowed state KL, paired bootstrap over events\n")
                print(markdown(show[["setting", "n_events", "MF-MDP − method [95% CI]", "KL reduction [95% CI]"]]) + "\n")
                block["comparisons"] = comp.to_dict(orient="records")
                for setting, paper in HEADLINE.items():
                    row = comp[(comp["metric"] == "kl") & (comp["method"] == "mf_llm") & (comp["setting"] == setting)]
                    if not row.empty:
                        block.setdefault("headline", {})[setting] = {"paper": paper, "ours": float(row["rel_reduction"].iloc[0]),
                                                                     "lo": float(row["rel_lo"].iloc[0]), "hi": float(row["rel_hi"].iloc[0])}
        result["blocks"][title] = block
    if args.json:
        write_json(args.json, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
