"""`write_report(run_dir)`: score a run directory and write tables (CSV/JSON), plots and a
self-contained report.html + report.md (images referenced relatively from plots/)."""

from __future__ import annotations

import html
import json
import math
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from mfmdp.core.atomic import atomic_write_csv, atomic_write_text
from mfmdp.core.schema import DIMENSIONS
from mfmdp.evaluate import plots
from mfmdp.evaluate.protocol import SETTINGS
from mfmdp.evaluate.reversal import REVERSAL_TOLERANCE, ReversalThresholds
from mfmdp.evaluate.runs import RunEvaluation, evaluate_run
from mfmdp.evaluate.tables import (ALL_DIMENSIONS, PRIMARY, SECONDARY, TABLE1_METHODS, TABLE2_METHODS,
                                   comparisons, display_names, horizon_sizes, kl_skill, markdown,
                                   ordered_methods, reversal_skill, summarise, wide_table)
from mfmdp.simulate.results import event_slug

MAX_LISTED_REVERSAL_EVENTS = 10  # below this many reversal events, list each event, not percentages


def _ordered(present: list[str], wanted: tuple[str, ...], include_unknown: bool = False) -> list[str]:
    """Wanted methods in order, then (include_unknown) any method no table names, so nothing scored
    goes unreported."""
    known = set(TABLE1_METHODS) | set(TABLE2_METHODS)
    extra = sorted(m for m in present if m not in known) if include_unknown else []
    return ordered_methods(present, wanted) + extra


class _Doc:
    """Builds the Markdown and HTML versions of the report side by side."""

    def __init__(self, title: str) -> None:
        self.md: list[str] = [f"# {title}", ""]
        self.html: list[str] = [f"<h1>{html.escape(title)}</h1>"]

    def heading(self, text: str) -> None:
        self.md += [f"## {text}", ""]
        self.html.append(f"<h2>{html.escape(text)}</h2>")

    def para(self, text: str) -> None:
        self.md += [text, ""]
        self.html.append(f"<p>{html.escape(text)}</p>")

    def table(self, df: pd.DataFrame, index_title: str = "method") -> None:
        if df.empty:
            self.para("(nothing to show)")
            return
        self.md += [markdown(df, index_title), ""]
        self.html.append(df.to_html(border=0, classes="t", na_rep="–", index_names=False))

    def image(self, rel: str, alt: str) -> None:
        self.md += [f"![{alt}]({rel})", ""]
        self.html.append(f'<p><img src="{html.escape(rel)}" alt="{html.escape(alt)}" style="max-width:100%"></p>')

    def render_html(self) -> str:
        style = ("body{font-family:sans-serif;max-width:1400px;margin:auto;padding:1em}"
                 "table.t{border-collapse:collapse;font-size:12px;margin-bottom:1em}"
                 "table.t td,table.t th{border:1px solid #ccc;padding:3px 6px;text-align:right}")
        return ("<!doctype html><html><head><meta charset='utf-8'><title>mfmdp report</title>"
                f"<style>{style}</style></head><body>" + "\n".join(self.html) + "</body></html>")


def _setting_header(metrics: pd.DataFrame) -> str:
    sizes = horizon_sizes(metrics)
    parts = [f"{s}: {r:.0f} scored responses ≈ {t:.1f} steps on average over {n} event(s)"
             for s, (r, t, n) in sizes.items()]
    return "Horizons (after warm-up, signals excluded) — " + "; ".join(parts) + "."


def plot_selection(series: dict, reversals: pd.DataFrame, n: int) -> list[str]:
    """Events worth a trajectory plot: half reversing events (largest real swing in net polarity), the
    rest the longest events (most windows); ties and the remainder by id."""
    def swing(e: str) -> float:
        real = series[e]["real"].get("state")
        if real is None or len(real) == 0:
            return 0.0
        net = real[:, 0] - real[:, -1]
        return float(net.max() - net.min())

    ids = sorted(series)
    reversing = set(reversals.loc[reversals["real_reversals"] > 0, "event"]) if not reversals.empty else set()
    picked = sorted((e for e in ids if e in reversing), key=lambda e: (-swing(e), e))[: n // 2]
    longest = sorted(ids, key=lambda e: (-len(series[e]["centres"]), e))
    picked += [e for e in longest if e not in picked][: n - len(picked)]
    return picked


def _reversal_section(doc: _Doc, ev: RunEvaluation, names: dict[str, str], order: list[str]) -> pd.DataFrame:
    th = ev.thresholds
    doc.heading("Reversal")
    doc.para(f"Reversal = a level of windowed net polarity (positive − negative share) held for {th.duration} "
             f"window(s), then a level at least {th.magnitude:.2f} higher (up) or lower (down) held as long; "
             f"the turning point is the last window of the first level. Thresholds: {th.source}; share of "
             f"time-permuted nulls flagged when fitted: {'–' if th.fp_rate is None else f'{th.fp_rate:.3f}'}; "
             f"on this run's real events (responses shuffled): {ev.null_fp_rate:.3f}.")
    rev = ev.reversals
    if rev.empty:
        doc.para("(no reversal comparisons)")
        return rev
    real_rev = rev[rev["real_reversals"] > 0]
    n_events = real_rev["event"].nunique()
    doc.para(f"{n_events} of {rev['event'].nunique()} event(s) reverse in the real data.")
    skill = reversal_skill(rev, order)
    if not skill.empty:
        doc.para(f"Hit: on an event whose real trajectory reverses, a simulated turning point within "
                 f"{REVERSAL_TOLERANCE} windows of a real one, same direction. False alarm: on an event that does "
                 "not reverse, any simulated reversal. Hits − false alarms is 0 for a simulator that reverses at "
                 "random (the oracle, the real trajectory's own resample, is the reference).")
        shown = skill.set_index("method").round(3).astype(object)
        shown = shown.where(shown.notna(), "–")
        shown.index = [names.get(m, m) for m in shown.index]
        doc.table(shown)
    if n_events == 0:
        return rev
    if n_events < MAX_LISTED_REVERSAL_EVENTS:
        show = real_rev.copy()
        show["method"] = show["method"].map(lambda m: names.get(m, m))
        show = show.set_index("event")[["method", "seed", "real_direction", "real_at_response",
                                        "sim_reversals", "same_direction", "timing_error_responses"]]
        doc.para("Fewer than 10 reversal events: each one listed (timing error in scored responses).")
        doc.table(show.round(1), "event")
    else:
        agg = real_rev.groupby("method").agg(events=("event", "nunique"),
                                              same_direction=("same_direction", "mean"),
                                              median_timing_error=("timing_error_responses", "median"))
        agg.index = [names.get(m, m) for m in agg.index]
        doc.table(agg.round(3))
    return rev


def coupling_line(manifest: dict | None) -> str:
    """How far the agents' evidence moved their states off f_psi's forecast in this run (evaluate/calibration.py)."""
    from mfmdp.simulate.coupling import describe_coupling

    c = (manifest or {}).get("coupling")
    if not c:
        return ""
    calibrated = (manifest.get("config") or {}).get("simulation", {}).get("evidence_weight") == "calibrate"
    return describe_coupling(c.get("evidence_weight"), c.get("evidence_half_life"), calibrated,
                             c.get("calibration_events"))


def write_report(run_dir: str | Path, thresholds: ReversalThresholds | None = None, window: int = 128,
                 max_event_plots: int = 12, n_boot: int = 10_000, show_progress: bool = False) -> Path:
    """Score RUN_DIR, rewrite metrics.csv, write tables/, plots/, summary.json, report.md and
    report.html; returns the path of report.html."""
    run_dir = Path(run_dir)
    ev = evaluate_run(run_dir, thresholds=thresholds, window=window, show_progress=show_progress)
    metrics = ev.metrics
    atomic_write_csv(run_dir / "metrics.csv", metrics)
    names = display_names(ev.manifest)
    present = sorted(metrics["method"].unique())
    t1_methods = _ordered(present, TABLE1_METHODS, include_unknown=True)
    t2_methods = _ordered(present, TABLE2_METHODS)
    settings = [s for s in SETTINGS if s in set(metrics["setting"])]
    tables_dir = run_dir / "tables"
    tables_dir.mkdir(exist_ok=True)
    plots_dir = run_dir / "plots"

    doc = _Doc("mfmdp evaluation report")
    doc.para(f"Run: {run_dir.name}. Generated {datetime.now(timezone.utc).isoformat(timespec='seconds')}. "
             f"{metrics['event'].nunique()} event(s), methods: {', '.join(names.get(m, m) for m in present)}.")
    doc.para(f"Primary metrics on windows of {window} scored responses with add-1/2 smoothing; KL(real‖sim) "
             "and JS in nats; W1 ordinal for state, total variation for nominal dimensions; Acc = 1 − TV; "
             "DTW = RMS distance along the best path (Sakoe-Chiba band 10%). Cells: mean ± std over seeds "
             "(over events when one seed). ↓ lower is better, ↑ higher.")
    doc.para(_setting_header(metrics))
    coupling = coupling_line(ev.manifest)
    if coupling:
        doc.para(coupling)

    summary_json: dict = {"thresholds": ev.thresholds.__dict__, "null_fp_rate": ev.null_fp_rate,
                          "horizons": horizon_sizes(metrics), "tables": {}}
    for label, dim in (("state", "state"), ("all", ALL_DIMENSIONS)):
        summ = summarise(metrics, dim, t1_methods, settings, PRIMARY)
        skill = kl_skill(metrics, dim, t1_methods, settings)
        shown = [*PRIMARY, "skill"] if not skill.empty else list(PRIMARY)
        summ = pd.concat([summ, skill], ignore_index=True) if not skill.empty else summ
        wide = wide_table(summ, t1_methods, settings, shown, names)
        doc.heading(f"Table 1 — {'state' if dim == 'state' else 'mean over the 8 dimensions'}")
        if not skill.empty:
            doc.para("skill = 1 − KL(method) / KL(persistence) on the same events and seed: > 0 beats "
                     "carrying the warm-up mix forward, ≤ 0 adds nothing over it.")
        doc.table(wide)
        wide.to_csv(tables_dir / f"table1_{label}.csv")
        summary_json["tables"][f"table1_{label}"] = summ.to_dict(orient="records")
    summ = summarise(metrics, "state", t1_methods, settings, SECONDARY)
    doc.heading("Secondary metrics — state (per-step KL, slot F1, NLL)")
    doc.table(wide_table(summ, t1_methods, settings, SECONDARY, names))
    summary_json["tables"]["secondary_state"] = summ.to_dict(orient="records")
    if not ev.references.empty:
        refs = ev.references[ev.references["dimension"] == "state"].groupby("setting")[
            ["macro_f1_majority", "micro_f1_majority", "macro_f1_random", "micro_f1_random"]].mean()
        doc.para("Slot F1 references (state; predictors that ignore the slot): always the majority label, and "
                 "random labels from the real mix. Slot F1 rewards collapsing to the majority: read it against these.")
        doc.table(refs.round(3), "setting")
        ev.references.to_csv(tables_dir / "f1_references.csv", index=False)

    if len(t2_methods) > 1:
        summ = summarise(metrics, "state", t2_methods, settings, PRIMARY)
        doc.heading("Table 2 — ablations (state)")
        doc.table(wide_table(summ, t2_methods, settings, PRIMARY, names))
        wide_table(summ, t2_methods, settings, PRIMARY, names).to_csv(tables_dir / "table2_state.csv")
        summary_json["tables"]["table2_state"] = summ.to_dict(orient="records")

    if "mf_mdp" in present and len(present) > 1:
        others = [m for m in t1_methods + t2_methods if m != "mf_mdp"]
        comp = comparisons(metrics, "mf_mdp", list(dict.fromkeys(others)), settings,
                           ("kl", "wasserstein", "dtw", "matched_accuracy"), "state", n_boot=n_boot)
        if not comp.empty:
            doc.heading("MF-MDP vs each method: paired bootstrap over events (state)")
            doc.para("diff = MF-MDP − method; rel = relative reduction (> 0: MF-MDP better); 95% percentile CIs "
                     f"from {n_boot} event resamples (seed 0).")
            show = comp.copy()
            show["method"] = show["method"].map(lambda m: names.get(m, m))
            show["diff [95% CI]"] = [f"{d:.3f} [{lo:.3f}, {hi:.3f}]" for d, lo, hi in
                                     zip(show["diff"], show["diff_lo"], show["diff_hi"])]
            show["rel [95% CI]"] = [f"{r:.1%} [{lo:.1%}, {hi:.1%}]" if math.isfinite(r) else "–" for r, lo, hi in
                                    zip(show["rel_reduction"], show["rel_lo"], show["rel_hi"])]
            doc.table(show.set_index("method")[["setting", "metric", "n_events", "diff [95% CI]",
                                                "rel [95% CI]", "p_value"]].round(3))
            comp.to_csv(tables_dir / "comparisons.csv", index=False)
            summary_json["comparisons"] = comp.to_dict(orient="records")

    long_setting = "long" if "long" in settings else (settings[0] if settings else None)
    if long_setting:
        order = list(dict.fromkeys(t1_methods + t2_methods))
        for metric, title in (("kl", "KL(real ‖ sim)"), ("matched_accuracy", "Matched accuracy (1 − TV)")):
            table = (metrics[metrics["setting"] == long_setting]
                     .groupby(["method", "dimension"])[metric].mean().unstack("dimension"))
            table = table.reindex([m for m in order if m in table.index])
            table = table[[d for d in DIMENSIONS if d in table.columns]]
            doc.heading(f"{title} per dimension, {long_setting} horizon (mean over events and seeds)")
            shown = table.copy()
            shown.index = [names.get(m, m) for m in shown.index]
            doc.table(shown.round(3))
            shown.to_csv(tables_dir / f"per_dimension_{metric}.csv")
        per_dim = table
        radar_methods = [m for m in t1_methods if m in per_dim.index]
        values = {m: per_dim.loc[m].to_dict() for m in radar_methods}
        plots.radar_plot(values, names, f"Matched accuracy per dimension ({long_setting})", plots_dir / "radar.png")
        doc.image("plots/radar.png", "radar chart of methods over dimensions")

    rev = _reversal_section(doc, ev, names, list(dict.fromkeys(t1_methods + t2_methods + present)))
    if not rev.empty:
        rev.to_csv(tables_dir / "reversals.csv", index=False)
        skill = reversal_skill(rev, list(dict.fromkeys(t1_methods + t2_methods + present)))
        skill.to_csv(tables_dir / "reversal_skill.csv", index=False)
        summary_json["reversal_skill"] = skill.to_dict(orient="records")
    ev.thresholds.save(tables_dir / "reversal_thresholds_used.json")

    doc.heading("Trajectories")
    events = plot_selection(ev.series, rev, max_event_plots)
    if len(ev.series) > max_event_plots:
        doc.para(f"Showing {len(events)} of {len(ev.series)} events (--max-event-plots): the real reversals "
                 "with the largest swings, then the longest events.")
    focus = "mf_mdp" if "mf_mdp" in present else (t1_methods[0] if t1_methods else present[0])
    for event in events:
        s = ev.series[event]
        if len(s["centres"]) == 0:
            continue
        slug = event_slug(event)
        p1 = plots.trajectory_plot(event, s, t1_methods + [m for m in t2_methods if m not in t1_methods],
                                   names, plots_dir / f"trajectory__{slug}.png")
        p2 = plots.dimensions_plot(event, s, focus, names, plots_dir / f"dimensions__{slug}__{focus}.png")
        doc.image(f"plots/{p1.name}", f"{event} state trajectories")
        doc.image(f"plots/{p2.name}", f"{event} 8 dimensions")

    atomic_write_text(run_dir / "summary.json", json.dumps(_clean(summary_json), indent=2, default=_json_default))
    atomic_write_text(run_dir / "report.md", "\n".join(doc.md))
    out = run_dir / "report.html"
    atomic_write_text(out, doc.render_html())
    return out


def _clean(obj):
    """NaN/inf -> null so summary.json is strict JSON."""
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if isinstance(obj, (float, np.floating)):
        return float(obj) if np.isfinite(obj) else None
    if isinstance(obj, np.integer):
        return int(obj)
    return obj


def _json_default(obj):
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating,)):
        return None if not np.isfinite(obj) else float(obj)
    if isinstance(obj, tuple):
        return list(obj)
    return str(obj)
