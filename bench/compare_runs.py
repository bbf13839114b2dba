"""Compare finished runs side by side (the inner loop of issue 13: "did this change help?").

    python bench/compare_runs.py runs/val-a runs/val-b ... [--setting long] [--json out.json]

Per run and method: the windowed state KL of the setting (mean over events, then over seeds), its
skill over persistence (1 - KL/KL persistence, same events and seeds), and from the report's
tables/reversal_skill.csv the reversal hit rate, false-alarm rate and hits minus false alarms. Then,
per run, MF-MDP minus transition-only and minus the ridge floor, paired over events with a bootstrap
95% CI: the gaps issue 13 asks to close. Runs must have been evaluated (mfmdp run does it).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from benchutil import manifest, write_json
from mfmdp.evaluate.bootstrap import paired_bootstrap


def run_figures(run: Path, setting: str) -> tuple[pd.DataFrame, list[dict]]:
    metrics = pd.read_csv(run / "metrics.csv")
    state = metrics[(metrics["dimension"] == "state") & (metrics["setting"] == setting)]
    per_event = state.groupby(["method", "event"])["kl"].mean().unstack("event")
    kl = state.groupby(["method", "seed"])["kl"].mean().groupby("method").mean()
    rows = pd.DataFrame({"kl": kl})
    if "persistence" in per_event.index:
        floor = per_event.loc["persistence"]
        rows["skill"] = [1 - per_event.loc[m, floor.index].mean() / floor.mean() for m in rows.index]
    skill_file = run / "tables" / "reversal_skill.csv"
    if skill_file.is_file():
        rows = rows.join(pd.read_csv(skill_file).set_index("method")[
            ["hit_rate", "false_alarm_rate", "hits_minus_false_alarms"]])
    gaps = []
    for other in ("transition_only", "regression"):
        if {"mf_mdp", other} <= set(per_event.index):
            both = per_event.loc[["mf_mdp", other]].dropna(axis=1)
            r = paired_bootstrap(both.loc["mf_mdp"].to_numpy(), both.loc[other].to_numpy(), n_boot=10_000, seed=0)
            gaps.append({"run": run.name, "vs": other, "events": r["n_events"], "diff": r["diff"],
                         "lo": r["diff_lo"], "hi": r["diff_hi"]})
    return rows, gaps


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", type=Path)
    ap.add_argument("--setting", default="long")
    ap.add_argument("--json", type=Path, default=Path("bench/results/compare_runs.json"))
    args = ap.parse_args()
    out = {"manifest": manifest("compare_runs.py", args), "setting": args.setting, "runs": {}, "gaps": []}
    for run in args.runs:
        rows, gaps = run_figures(run, args.setting)
        print(f"\n== {run} ({args.setting}, state)\n{rows.round(4).to_string()}")
        for g in gaps:
            print(f"mf_mdp - {g['vs']}: {g['diff']:+.4f} [{g['lo']:+.4f}, {g['hi']:+.4f}] over {g['events']} events")
        out["runs"][str(run)] = rows.reset_index().to_dict(orient="records")
        out["gaps"] += gaps
    write_json(args.json, out)
    print(f"\nwrote {args.json}")


if __name__ == "__main__":
    main()
