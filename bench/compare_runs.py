"""Compare finished runs side by side (the inner loop of issue 13: "did this change help?").

    python bench/compare_runs.py runs/val-a runs/val-b ... [--setting long] [--json out.json]

Per run and method: the windowed state KL of the setting (mean over events, then over seeds), its
skill over persistence (1 - KL/KL persistence, same events and seeds), and from the report's
tables/reversal_skill.csv the reversal hit rate, false-alarm rate and hits minus false alarms. Then,
per run, MF-MDP minus transition-only and minus the ridge floor, paired over events with a bootstrap
95% CI: the gaps issue 13 asks to close. Runs must have been evaluated (mfmdp run does it).

--subset K scores only the K events that `data.evaluate_subset: K` would simulate (the fast inner loop)
and prints, per run, its gaps beside the full run's and how well the subset ranks the runs (Spearman
over runs of MF-MDP's KL): the agreement of the inner loop with the full validation run.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd
from scipy.stats import spearmanr

from benchutil import manifest, write_json
from mfmdp.evaluate.bootstrap import paired_bootstrap
from mfmdp.simulate.prepare import evaluation_subset


def subset_events(run: Path, k: int) -> list[str]:
    """The events `data.evaluate_subset: k` picks from the run's scored side (same order as the run)."""
    m = json.loads((run / "manifest.json").read_text())
    return [str(e) for e in evaluation_subset(m["split"][m["evaluated_side"]], k)]


def run_figures(run: Path, setting: str, subset: int | None = None) -> tuple[pd.DataFrame, list[dict]]:
    metrics = pd.read_csv(run / "metrics.csv", dtype={"event": str})
    state = metrics[(metrics["dimension"] == "state") & (metrics["setting"] == setting)]
    if subset is not None:
        state = state[state["event"].isin(subset_events(run, subset))]
    per_event = state.groupby(["method", "event"])["kl"].mean().unstack("event")
    kl = state.groupby(["method", "seed"])["kl"].mean().groupby("method").mean()
    rows = pd.DataFrame({"kl": kl})
    if "persistence" in per_event.index:
        floor = per_event.loc["persistence"]
        rows["skill"] = [1 - per_event.loc[m, floor.index].mean() / floor.mean() for m in rows.index]
    skill_file = run / "tables" / "reversal_skill.csv"
    if skill_file.is_file() and subset is None:  # the report's table covers every event
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


def agreement(runs: list[Path], setting: str, k: int) -> dict:
    """The subset's answers beside the full run's: MF-MDP's KL and its gap to transition-only per run,
    and the rank correlation over runs of MF-MDP's KL."""
    rows = []
    for run in runs:
        (full, full_gaps), (part, part_gaps) = run_figures(run, setting), run_figures(run, setting, k)
        gap = {g["vs"]: g for g in full_gaps}.get("transition_only")
        part_gap = {g["vs"]: g for g in part_gaps}.get("transition_only")
        rows.append({"run": run.name, "kl_full": full.loc["mf_mdp", "kl"], "kl_subset": part.loc["mf_mdp", "kl"],
                     "gap_full": gap and gap["diff"], "gap_subset": part_gap and part_gap["diff"]})
    table = pd.DataFrame(rows).set_index("run")
    rho = float(spearmanr(table["kl_full"], table["kl_subset"]).statistic) if len(table) > 2 else float("nan")
    print(f"\n== agreement of the {k}-event subset with the full side (MF-MDP, {setting}, state)")
    print(table.round(4).to_string())
    print(f"Spearman over runs of MF-MDP's KL: {rho:.3f}")
    return {"subset": k, "spearman_kl": rho, "runs": table.reset_index().to_dict(orient="records")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", type=Path)
    ap.add_argument("--setting", default="long")
    ap.add_argument("--subset", type=int, default=None, help="score only the data.evaluate_subset events")
    ap.add_argument("--json", type=Path, default=Path("bench/results/compare_runs.json"))
    args = ap.parse_args()
    out = {"manifest": manifest("compare_runs.py", args), "setting": args.setting, "runs": {}, "gaps": []}
    for run in args.runs:
        rows, gaps = run_figures(run, args.setting, args.subset)
        print(f"\n== {run} ({args.setting}, state{f', subset of {args.subset}' if args.subset else ''})")
        print(rows.round(4).to_string())
        for g in gaps:
            print(f"mf_mdp - {g['vs']}: {g['diff']:+.4f} [{g['lo']:+.4f}, {g['hi']:+.4f}] over {g['events']} events")
        out["runs"][str(run)] = rows.reset_index().to_dict(orient="records")
        out["gaps"] += gaps
    if args.subset is not None:
        out["agreement"] = agreement(args.runs, args.setting, args.subset)
    write_json(args.json, out)
    print(f"\nwrote {args.json}")


if __name__ == "__main__":
    main()
