"""PNG plots for the report (matplotlib's object API with the Agg canvas; no global pyplot state).

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
