"""PNG plots for the report and for what-if scenarios (matplotlib's object API with the Agg canvas; no global pyplot state).

Titles carry event ids, often Chinese. Matplotlib's bundled DejaVu has no CJK glyphs (boxes plus a
warning per glyph), so `plot_text` draws such titles with an installed CJK font when the machine has
one (Noto Sans CJK, Source Han, WenQuanYi, ...; none is required) and otherwise writes the characters
the default font lacks as \\uXXXX escapes: readable, unambiguous, and no warnings.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from mfmdp.core.schema import DIMENSIONS, STATES
from mfmdp.evaluate.windows import SEED_BAND, band, windowed_states

STATE_COLOURS = {"positive": "#2a9d8f", "neutral": "#8d99ae", "negative": "#e63946"}
# tried first (by family name); any other installed font with CJK glyphs is the fallback
CJK_FONT_NAMES = ("Noto Sans CJK SC", "Noto Sans CJK JP", "Noto Sans SC", "Noto Serif CJK SC", "Source Han Sans SC",
                  "Source Han Sans CN", "WenQuanYi Zen Hei", "WenQuanYi Micro Hei", "Droid Sans Fallback",
                  "Microsoft YaHei", "SimHei", "PingFang SC", "Hiragino Sans GB", "Heiti SC", "Arial Unicode MS",
                  "AR PL UMing CN")
_CJK_PROBE = ord("中")


@lru_cache(maxsize=None)
def _charmap(font_file: str) -> frozenset[int]:
    from matplotlib.ft2font import FT2Font

    try:
        return frozenset(FT2Font(font_file).get_charmap())
    except (OSError, RuntimeError, ValueError):  # an unreadable font file covers nothing
        return frozenset()


@lru_cache(maxsize=1)
def _default_font() -> tuple[str, str]:
    """(family name, file) of the font matplotlib draws text with by default."""
    from matplotlib import font_manager

    path = font_manager.findfont(font_manager.FontProperties())
    return font_manager.FontProperties(fname=path).get_name(), path


@lru_cache(maxsize=1)
def cjk_font() -> tuple[str, str] | None:
    """(family name, file) of an installed font with CJK glyphs, or None when the machine has none."""
    from matplotlib import font_manager

    fonts = font_manager.fontManager.ttflist
    rank = {name: i for i, name in enumerate(CJK_FONT_NAMES)}
    for f in sorted(fonts, key=lambda f: (rank.get(f.name, len(rank)), f.name)):  # preferred names first
        if _CJK_PROBE in _charmap(f.fname):
            return f.name, f.fname
    return None


def plot_text(text: str) -> tuple[str, dict]:
    """(text, extra Text keyword arguments) to draw `text` without missing-glyph boxes or warnings."""
    family, path = _default_font()
    missing = {c for c in text if not c.isspace() and ord(c) not in _charmap(path)}
    if not missing:
        return text, {}
    cjk = cjk_font()
    if cjk is not None and all(ord(c) in _charmap(cjk[1]) for c in missing):
        return text, {"fontfamily": [family, cjk[0]]}  # per-glyph fallback to the CJK font
    return "".join(c.encode("ascii", "backslashreplace").decode() if c in missing else c for c in text), {}


def _save(fig: Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(fig)
    fig.savefig(path, dpi=90, bbox_inches="tight")
    return path


def trajectory_plot(event: str, series: dict, methods: Sequence[str], names: dict[str, str], path: Path) -> Path:
    """Windowed shares of positive / neutral / negative: real (solid) vs each method (dashed)."""
    methods = [m for m in methods if m in series]
    n = max(1, len(methods))
    cols = min(4, n)
    rows = int(np.ceil(n / cols))
    fig = Figure(figsize=(3.6 * cols, 2.8 * rows), layout="constrained")
    x = series["centres"]
    real = series["real"]["state"]
    for i, method in enumerate(methods or [None]):
        ax = fig.add_subplot(rows, cols, i + 1)
        for k, state in enumerate(STATES):
            ax.plot(x, real[:, k], color=STATE_COLOURS[state], lw=1.8, label=f"real {state}")
            if method is not None:
                ax.plot(x, series[method]["state"][:, k], color=STATE_COLOURS[state], lw=1.4, ls="--")
        ax.set_title(names.get(method, method) if method else "real", fontsize=9)
        ax.set_ylim(0, 1)
        ax.tick_params(labelsize=7)
        if i == 0:
            ax.legend(fontsize=6, loc="upper right")
    title, font = plot_text(f"{event}: state shares per window (x = scored responses after warm-up; solid real, "
                            "dashed sim)")
    fig.suptitle(title, fontsize=9, **font)
    return _save(fig, path)


def dimensions_plot(event: str, series: dict, method: str, names: dict[str, str], path: Path) -> Path:
    """All 8 dimensions for one method: each label's share per window, real (solid) vs sim (dashed)."""
    fig = Figure(figsize=(14, 5.8), layout="constrained")
    x = series["centres"]
    cmap = ["#264653", "#2a9d8f", "#e9c46a", "#f4a261", "#e76f51", "#8338ec"]
    for i, (dim, labels) in enumerate(DIMENSIONS.items()):
        ax = fig.add_subplot(2, 4, i + 1)
        for k, label in enumerate(labels):
            ax.plot(x, series["real"][dim][:, k], color=cmap[k], lw=1.6, label=label)
            if method in series:
                ax.plot(x, series[method][dim][:, k], color=cmap[k], lw=1.2, ls="--")
        ax.set_title(dim, fontsize=9)
        ax.set_ylim(0, 1)
        ax.tick_params(labelsize=7)
        ax.legend(fontsize=6, loc="upper right")
    title, font = plot_text(f"{event}: real (solid) vs {names.get(method, method)} (dashed), label shares per window")
    fig.suptitle(title, fontsize=10, **font)
    return _save(fig, path)


def radar_plot(values: dict[str, dict[str, float]], names: dict[str, str], title: str, path: Path) -> Path:
    """One polygon per method over the 8 dimensions (values[method][dimension], higher = better)."""
    dims = list(DIMENSIONS)
    angles = np.linspace(0, 2 * np.pi, len(dims), endpoint=False)
    fig = Figure(figsize=(6.5, 6.5))
    ax = fig.add_subplot(1, 1, 1, projection="polar")
    for method, per_dim in values.items():
        v = np.array([per_dim.get(d, np.nan) for d in dims], dtype=float)
        ax.plot(np.r_[angles, angles[0]], np.r_[v, v[0]], lw=1.5, label=names.get(method, method))
    ax.set_xticks(angles)
    ax.set_xticklabels(dims, fontsize=8)
    finite = [x for per in values.values() for x in per.values() if np.isfinite(x)]
    lo = max(0.0, (min(finite) if finite else 0.0) - 0.05)  # zoom: scores often sit near the top
    ax.set_ylim(lo, 1)
    ax.tick_params(axis="y", labelsize=7)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7, loc="upper right", bbox_to_anchor=(1.35, 1.1))
    return _save(fig, path)


def scenario_plot(outcome, method_display: str, path: Path, window: int = 128, stride: int | None = None) -> Path:
    """Net polarity and the three state shares along the event: real (dotted), baseline and scenario
    (mean over seeds with a 10-90 % band), warm-up shaded, signals as vertical lines. `outcome` is a
    mfmdp.simulate.scenario.EventOutcome.

    x is the response index (real events have long tails: months of stragglers after a day of
    activity, which a time axis squeezes into a corner); the top axis gives hours at those indices.
    """
    n_agents = int(outcome.agent.sum())
    window = max(8, min(window, n_agents // 4 or 8))
    stride = stride or max(1, window // 4)
    slots = np.arange(len(outcome.times), dtype=float)
    hours = (outcome.times - float(outcome.times[0])) / 3600.0
    real_c, real_s = windowed_states(outcome.real.codes["state"], outcome.agent, window, stride)
    panels = [("net polarity (pos - neg)", None)] + [(f"{s} share", k) for k, s in enumerate(STATES)]
    fig = Figure(figsize=(10, 8.5), layout="constrained")
    axes = [fig.add_subplot(len(panels), 1, i + 1) for i in range(len(panels))]
    runs = [("baseline", outcome.baseline, "#1d3557")]
    if outcome.scenario:
        runs.append(("scenario", outcome.scenario, "#e76f51"))
    bands = {name: band(labs, outcome.agent, window, stride) for name, labs, _ in runs}
    for ax, (title, k) in zip(axes, panels):
        real_y = real_s[:, 0] - real_s[:, 2] if k is None else real_s[:, k]
        ax.plot(real_c, real_y, color="#6c757d", lw=1.2, ls=":", label="real")
        for name, labs, colour in runs:
            b = bands[name]
            mean, lo_, hi_ = ((b["net_mean"], b["net_lo"], b["net_hi"]) if k is None
                              else (b["shares_mean"][:, k], b["shares_lo"][:, k], b["shares_hi"][:, k]))
            ax.plot(b["centres"], mean, color=colour, lw=1.6, label=f"{name} (mean of {len(labs)} seeds)")
            ax.fill_between(b["centres"], lo_, hi_, color=colour, alpha=0.2, lw=0)
        ax.axvspan(0, outcome.warmup_slots, color="#adb5bd", alpha=0.25, lw=0)
        for slot in np.flatnonzero(~outcome.agent):  # signals already in the data
            ax.axvline(slot, color="#6c757d", lw=0.8, ls="-.")
        for sig in outcome.injected:
            ax.axvline(int(outcome.bounds[sig["step"]]), color="#d62828", lw=1.0, ls="--")
        ax.set_ylabel(title, fontsize=8)
        ax.set_ylim(-1.05, 1.05) if k is None else ax.set_ylim(0, 1)
        ax.set_xlim(0, len(slots))
        ax.tick_params(labelsize=7)
    top = axes[0].secondary_xaxis("top", functions=(lambda x: np.interp(x, slots, hours),
                                                    lambda h: np.interp(h, hours, slots)))
    at = hours[np.linspace(0, len(hours) - 1, 7).astype(int)]
    top.set_ticks(at, labels=[f"{h:.1f} h" if h < 48 else f"{h / 24:.0f} d" for h in at])
    top.set_xlabel("time since the first response", fontsize=7)
    top.tick_params(labelsize=6)
    axes[0].legend(fontsize=7, loc="best")
    axes[-1].set_xlabel("response index (shaded: warm-up replayed; red dashes: injected signals, at the start of "
                        "their step; grey dash-dots: signals in the data)", fontsize=8)
    title, font = plot_text(f"{outcome.event_id} - {method_display}: scenario vs baseline "
                            f"(windows of {window} responses, band = {SEED_BAND[0]}-{SEED_BAND[1]} % over seeds)")
    fig.suptitle(title, fontsize=9, **font)
    return _save(fig, path)
