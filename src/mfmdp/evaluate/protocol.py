"""Score a simulated run of an event against the real one (same slots), per setting and dimension.

Primary metrics live on windows of `window` scored responses (see windows.py for the partial-window
rule) with add-1/2 smoothing of counts: kl = KL(real || sim), js = Jensen-Shannon divergence (nats),
wasserstein = W1 (ordinal for state, 0/1 i.e. total variation for nominal dimensions),
matched_accuracy = 1 - total variation; each the mean over windows. dtw = DTW between the windowed
distribution series. Secondary: kl_step (the same KL per step, smoothed the same way, mean over
steps), slot-by-slot macro_f1 / micro_f1, and nll (mean over scored slots of the per-slot NLL the
simulator passes in, nats). A window or step in which the real or the simulated labels are all
unknown (-1) is left out for that dimension; a metric with nothing left is NaN.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from mfmdp.core.schema import DIMENSIONS, Labels
from mfmdp.data.stepping import Steps
from mfmdp.evaluate import metrics as M
from mfmdp.evaluate.reversal import DEFAULT_THRESHOLDS, ReversalThresholds, critical_magnitude, polarity_series
from mfmdp.evaluate.windows import (Horizon, check_steps, group_counts, horizon, scored_mask, smooth,
                                    step_groups, window_ids)

SETTINGS: tuple[str, ...] = ("short", "long", "reversal")
SHORT_RESPONSES = 300
METRICS: tuple[str, ...] = ("kl", "js", "wasserstein", "dtw", "matched_accuracy", "kl_step",
                            "macro_f1", "micro_f1", "nll")
LOWER_IS_BETTER: dict[str, bool] = {"kl": True, "js": True, "wasserstein": True, "dtw": True,
                                    "matched_accuracy": False, "kl_step": True, "macro_f1": False,
                                    "micro_f1": False, "nll": True}
ROW_KEYS: tuple[str, ...] = ("setting", "dimension", *METRICS, "responses", "steps")


def horizons(n: int, steps: Steps, warmup_slots: int, settings: Sequence[str],
             real_state: np.ndarray | None = None, window: int = 128,
             reversal_thresholds: ReversalThresholds | None = None,
             short_responses: int = SHORT_RESPONSES) -> list[Horizon]:
    """The scored slots of each requested setting. "reversal" is the long horizon, present only when
    the real state trajectory (real_state codes) shows a reversal under the thresholds."""
    check_steps(steps, n, "horizons")
    scored = scored_mask(n, steps.is_signal, warmup_slots)
    step_of = steps.step_of()
    out = []
    for name in settings:
        if name == "short":
            out.append(horizon("short", scored, step_of, short_responses))
        elif name == "long":
            out.append(horizon("long", scored, step_of, None))
        elif name == "reversal":
            long = horizon("reversal", scored, step_of, None)
            if real_state is None:
                raise ValueError("the reversal setting needs the real state codes")
            if real_reverses(real_state, long.slots, window, reversal_thresholds):
                out.append(long)
        else:
            raise ValueError(f"unknown setting {name!r}; known: {', '.join(SETTINGS)}")
    return out


def real_reverses(state_codes: np.ndarray, slots: np.ndarray, window: int = 128,
                  thresholds: ReversalThresholds | None = None) -> bool:
    th = thresholds or DEFAULT_THRESHOLDS
    if len(slots) == 0:
        return False
    series, _ = polarity_series(state_codes, slots, window)
    return bool(critical_magnitude(series, th.duration)[0] >= th.magnitude - 1e-12)


def _distribution_metrics(real_c: np.ndarray, sim_c: np.ndarray, groups: np.ndarray, n_groups: int,
                          k: int) -> tuple[np.ndarray, np.ndarray]:
    """Smoothed real and simulated distributions of the groups where both have known labels."""
    cr = group_counts(real_c, groups, n_groups, k)
    cs = group_counts(sim_c, groups, n_groups, k)
    keep = (cr.sum(axis=1) > 0) & (cs.sum(axis=1) > 0)
    return smooth(cr[keep]), smooth(cs[keep])


def score_dimension(real_c: np.ndarray, sim_c: np.ndarray, dimension: str, hz: Horizon,
                    step_of: np.ndarray, window: int = 128) -> dict[str, float]:
    """Window, step and slot metrics of one dimension over one horizon (no NLL)."""
    nan = float("nan")
    out = dict.fromkeys(("kl", "js", "wasserstein", "dtw", "matched_accuracy", "kl_step",
                         "macro_f1", "micro_f1"), nan)
    if hz.responses == 0:
        return out
    k = M.n_labels(dimension)
    r, s = real_c[hz.slots], sim_c[hz.slots]
    ids = window_ids(len(r), window)
    p, q = _distribution_metrics(r, s, ids, int(ids[-1]) + 1, k)
    if len(p):
        out["kl"] = float(M.kl(p, q).mean())
        out["js"] = float(M.js(p, q).mean())
        out["wasserstein"] = float(M.wasserstein(p, q, dimension).mean())
        out["matched_accuracy"] = float(1.0 - M.total_variation(p, q).mean())
        out["dtw"] = M.dtw_distance(p, q)
    groups, n_groups = step_groups(hz.slots, step_of)
    ps, qs = _distribution_metrics(r, s, groups, n_groups, k)
    if len(ps):
        out["kl_step"] = float(M.kl(ps, qs).mean())
    out["macro_f1"], out["micro_f1"] = M.f1_scores(r, s, k)
    return out


def evaluate_event(real: Labels, sim: Labels, steps: Steps, warmup_slots: int,
                   settings: Sequence[str] = ("short", "long"), nll: np.ndarray | None = None,
                   window: int = 128, reversal_thresholds: ReversalThresholds | None = None,
                   dimensions: Sequence[str] | None = None,
                   short_responses: int = SHORT_RESPONSES) -> list[dict]:
    """One row per setting x dimension with the keys in ROW_KEYS (metrics.csv minus method, event,
    seed). `nll`: per-slot NLL of the real action under the policy in nats (NaN where absent)."""
    if real.n != sim.n:
        raise ValueError(f"real and simulated runs differ in length: {real.n} vs {sim.n} slots")
    if nll is not None and len(nll) != real.n:
        raise ValueError(f"nll has {len(nll)} values for {real.n} slots")
    dims = list(dimensions or DIMENSIONS)
    step_of = steps.step_of()
    rows = []
    for hz in horizons(real.n, steps, warmup_slots, settings, real.codes["state"], window,
                       reversal_thresholds, short_responses):
        nll_value = float("nan")
        if nll is not None and hz.responses:
            vals = np.asarray(nll, dtype=np.float64)[hz.slots]
            vals = vals[np.isfinite(vals)]
            nll_value = float(vals.mean()) if len(vals) else float("nan")
        for dim in dims:
            row = {"setting": hz.name, "dimension": dim}
            try:
                row.update(score_dimension(real.codes[dim], sim.codes[dim], dim, hz, step_of, window))
            except ValueError as exc:
                raise ValueError(f"dimension {dim!r}: {exc}") from exc
            row["nll"] = nll_value
            row["responses"] = hz.responses
            row["steps"] = hz.steps
            rows.append({key: row[key] for key in ROW_KEYS})
    return rows
