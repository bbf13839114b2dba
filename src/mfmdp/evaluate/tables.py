"""Tables in the paper's layouts, from metrics rows (metrics.csv).

Table 1: rows = the paper's baselines and ours (direct, social_retrieval, mf_llm, mf_mdp), then the
floors (persistence, transition_only, regression, oracle); columns = metrics per setting.
Table 2: mf_mdp against its ablations (no_lct_state, no_lct_policy, no_sampling, pool_resampled).
Cells are "mean ± spread": the mean over events for each seed, then mean ± standard deviation over
seeds when a run has several seeds; with one seed, ± the standard deviation over events.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from mfmdp.evaluate.bootstrap import paired_bootstrap
from mfmdp.evaluate.protocol import LOWER_IS_BETTER
from mfmdp.simulate.methods import METHODS, table_methods

TABLE1_METHODS: tuple[str, ...] = table_methods(1)  # each MethodSpec says which tables it is a row of
TABLE2_METHODS: tuple[str, ...] = table_methods(2)
PRIMARY: tuple[str, ...] = ("kl", "js", "wasserstein", "dtw", "matched_accuracy")
SECONDARY: tuple[str, ...] = ("kl_step", "macro_f1", "micro_f1", "nll")
METRIC_TITLES = {"kl": "KL", "js": "JS", "wasserstein": "W1", "dtw": "DTW", "matched_accuracy": "Acc(1-TV)",
                 "kl_step": "KL/step", "macro_f1": "Macro-F1", "micro_f1": "Micro-F1", "nll": "NLL (nats)",
                 "skill": "skill (1 − KL/KL persistence)"}
ALL_DIMENSIONS = "mean of 8"


def display_names(manifest: dict | None = None) -> dict[str, str]:
    """Method -> name shown in tables; mf_llm is "mf-synopsis (embedding)" unless the manifest says
    an LLM summariser ran (manifest["llm_summariser"] true, or manifest["display_names"])."""
    names = {k: v.display for k, v in METHODS.items()}
    manifest = manifest or {}
    llm = manifest.get("llm_summariser", (manifest.get("config") or {}).get("llm_summariser"))
    if llm:
        names["mf_llm"] = "MF-LLM"
    names.update(manifest.get("display_names") or {})
    return names


def ordered_methods(present: Sequence[str], wanted: Sequence[str]) -> list[str]:
    return [m for m in wanted if m in set(present)]


def _select(metrics: pd.DataFrame, dimension: str) -> pd.DataFrame:
    """Rows of one dimension, or (ALL_DIMENSIONS) the per-row mean over dimensions."""
    keys = ["setting", "method", "event", "seed"]
    if dimension == ALL_DIMENSIONS:
        cols = [c for c in (*PRIMARY, *SECONDARY, "responses", "steps") if c in metrics.columns]
        return metrics.groupby(keys, as_index=False)[cols].mean()
    return metrics[metrics["dimension"] == dimension]


def summarise(metrics: pd.DataFrame, dimension: str, methods: Sequence[str],
              settings: Sequence[str], metric_names: Sequence[str]) -> pd.DataFrame:
    """Tidy summary: method, setting, metric, mean, spread, spread_over, n_events, n_seeds."""
    df = _select(metrics, dimension)
    out = []
    for method in methods:
        for setting in settings:
            part = df[(df["method"] == method) & (df["setting"] == setting)]
            if part.empty:
                continue
            per_seed = part.groupby("seed")[list(metric_names)].mean()
            n_seeds, n_events = len(per_seed), part["event"].nunique()
            for metric in metric_names:
                if n_seeds > 1:
                    vals = per_seed[metric].dropna()
                    spread_over = "seeds"
                else:
                    vals = part[metric].dropna()
                    spread_over = "events"
                mean = float(vals.mean()) if len(vals) else float("nan")
                spread = float(vals.std(ddof=1)) if len(vals) > 1 else float("nan")
                out.append({"method": method, "setting": setting, "metric": metric, "mean": mean,
                            "spread": spread, "spread_over": spread_over, "n_events": n_events,
                            "n_seeds": n_seeds})
    return pd.DataFrame(out, columns=["method", "setting", "metric", "mean", "spread", "spread_over",
                                      "n_events", "n_seeds"])


def kl_skill(metrics: pd.DataFrame, dimension: str, methods: Sequence[str], settings: Sequence[str],
             reference: str = "persistence") -> pd.DataFrame:
    """Skill over a floor: 1 - KL(method) / KL(reference), KL the windowed mean over the events both
    have, per seed (the reference's seed-0 run where it has fewer seeds, as a deterministic floor does);
    mean and spread over seeds, in the layout of `summarise` (metric "skill"). > 0: better than the floor."""
    df = _select(metrics, dimension)
    out = []
    for setting in settings:
        ref = df[(df["method"] == reference) & (df["setting"] == setting)]
        if ref.empty:
            continue
        ref_by_seed = {s: g.set_index("event")["kl"] for s, g in ref.groupby("seed")}
        for method in methods:
            part = df[(df["method"] == method) & (df["setting"] == setting)]
            skills, events = [], set()
            for seed, g in part.groupby("seed"):
                floor = ref_by_seed.get(seed, ref_by_seed[min(ref_by_seed)])
                mine = g.set_index("event")["kl"]
                common = mine.index.intersection(floor.index)
                denominator = float(floor.loc[common].mean()) if len(common) else float("nan")
                if len(common) and denominator > 0:
                    skills.append(1.0 - float(mine.loc[common].mean()) / denominator)
                    events |= set(common)
            if not skills:
                continue
            out.append({"method": method, "setting": setting, "metric": "skill", "mean": float(np.mean(skills)),
                        "spread": float(np.std(skills, ddof=1)) if len(skills) > 1 else float("nan"),
                        "spread_over": "seeds", "n_events": len(events), "n_seeds": len(skills)})
    return pd.DataFrame(out, columns=["method", "setting", "metric", "mean", "spread", "spread_over",
                                      "n_events", "n_seeds"])


def reversal_skill(reversals: pd.DataFrame, methods: Sequence[str]) -> pd.DataFrame:
    """Per method, from compare_reversals rows (event, method, seed, hit, false_alarm): the hit rate
    on events whose real trajectory reverses, the false-alarm rate on those where it does not (each a
    mean over event x seed), and hits minus false alarms (Peirce's skill score: 0 for a simulator
    that reverses at random, whatever its rate; NaN when either kind of event is missing)."""
    cols = ["method", "reversing_events", "hit_rate", "quiet_events", "false_alarm_rate", "hits_minus_false_alarms"]
    rows = []
    for method in methods:
        part = reversals[reversals["method"] == method]
        if part.empty:
            continue
        hits = part.loc[part["hit"].notna(), "hit"].astype(float)
        alarms = part.loc[part["false_alarm"].notna(), "false_alarm"].astype(float)
        hit_rate = float(hits.mean()) if len(hits) else float("nan")
        fa_rate = float(alarms.mean()) if len(alarms) else float("nan")
        rows.append({"method": method, "reversing_events": int(part.loc[part["hit"].notna(), "event"].nunique()),
                     "hit_rate": hit_rate, "quiet_events": int(part.loc[part["false_alarm"].notna(), "event"].nunique()),
                     "false_alarm_rate": fa_rate, "hits_minus_false_alarms": hit_rate - fa_rate})
    return pd.DataFrame(rows, columns=cols)


def horizon_sizes(metrics: pd.DataFrame) -> dict[str, tuple[float, float, int]]:
    """Setting -> (mean scored responses, mean steps, events): every horizon is stated in both."""
    from mfmdp.evaluate.protocol import SETTINGS

    out = {}
    first = metrics.drop_duplicates(["setting", "event"])
    for setting in sorted(first["setting"].unique(), key=lambda s: (SETTINGS + (s,)).index(s)):
        part = first[first["setting"] == setting]
        out[setting] = (float(part["responses"].mean()), float(part["steps"].mean()), int(len(part)))
    return out


def fmt(mean: float, spread: float, digits: int = 3) -> str:
    if not np.isfinite(mean):
        return "–"
    if not np.isfinite(spread):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {spread:.{digits}f}"


def wide_table(summary: pd.DataFrame, methods: Sequence[str], settings: Sequence[str],
               metric_names: Sequence[str], names: dict[str, str]) -> pd.DataFrame:
    """Strings for display: rows = method display names, columns = "setting / metric"."""
    cols = [(s, m) for s in settings for m in metric_names]
    rows = {}
    idx = summary.set_index(["method", "setting", "metric"])
    for method in methods:
        cells = []
        for s, m in cols:
            try:
                r = idx.loc[(method, s, m)]
                cells.append(fmt(r["mean"], r["spread"]))
            except KeyError:
                cells.append("–")
        rows[names.get(method, method)] = cells
    arrows = {m: ("↓" if LOWER_IS_BETTER.get(m, False) else "↑") for m in metric_names}
    header = [f"{s} / {METRIC_TITLES.get(m, m)} {arrows[m]}" for s, m in cols]
    return pd.DataFrame.from_dict(rows, orient="index", columns=header)


def comparisons(metrics: pd.DataFrame, reference: str, methods: Sequence[str], settings: Sequence[str],
                metric_names: Sequence[str], dimension: str = "state", n_boot: int = 10_000,
                seed: int = 0) -> pd.DataFrame:
    """Paired bootstrap over events: reference vs each method (seed-averaged per event, events both
    have). diff = reference - method (with CI). rel_reduction > 0 means the reference is better:
    1 - reference / method for lower-is-better metrics, 1 - method / reference for higher-is-better."""
    df = _select(metrics, dimension)
    per_event = df.groupby(["setting", "method", "event"])[list(metric_names)].mean()
    out = []
    for setting in settings:
        for method in methods:
            if method == reference:
                continue
            try:
                a_all = per_event.loc[(setting, reference)]
                b_all = per_event.loc[(setting, method)]
            except KeyError:
                continue
            common = a_all.index.intersection(b_all.index)
            if len(common) == 0:
                continue
            for metric in metric_names:
                a = a_all.loc[common, metric].to_numpy()
                b = b_all.loc[common, metric].to_numpy()
                lower = LOWER_IS_BETTER[metric]
                r = paired_bootstrap(a, b, n_boot=n_boot, seed=seed) if lower else paired_bootstrap(b, a, n_boot=n_boot, seed=seed)
                out.append({"setting": setting, "reference": reference, "method": method, "metric": metric,
                            "n_events": r["n_events"], "diff": (r["diff"] if lower else -r["diff"]),
                            "diff_lo": (r["diff_lo"] if lower else -r["diff_hi"]),
                            "diff_hi": (r["diff_hi"] if lower else -r["diff_lo"]),
                            "rel_reduction": r["rel_reduction"], "rel_lo": r["rel_lo"], "rel_hi": r["rel_hi"],
                            "p_value": r["p_value"]})
    return pd.DataFrame(out)


def markdown(df: pd.DataFrame, index_title: str = "method") -> str:
    """A GitHub-flavoured Markdown table (no tabulate dependency)."""
    header = [index_title, *map(str, df.columns)]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for idx, row in df.iterrows():
        lines.append("| " + " | ".join([str(idx), *(str(v) for v in row.to_list())]) + " |")
    return "\n".join(lines)
