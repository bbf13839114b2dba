"""Event ids become file names through one helper (`event_slug`): distinct ids never share a folder,
no id escapes its parent folder, and non-ASCII ids survive into reports and plot titles."""

from __future__ import annotations

import json
import warnings
from dataclasses import replace

import numpy as np
import pytest

from evaluate_helpers import frame, real_codes
from mfmdp.evaluate import plots
from mfmdp.evaluate.runs import evaluate_run
from mfmdp.simulate.results import RunDir, event_slug

CHINESE_IDS = ("新冠疫苗谣言", "地震预警谣言")


def test_plain_ids_keep_their_name_and_others_get_a_hashed_slug():
    assert event_slug("3509874") == "3509874" and event_slug("ev-1.b_2") == "ev-1.b_2"
    a, b = (event_slug(i) for i in CHINESE_IDS)
    assert a != b and a.isascii() and b.isascii()
    assert event_slug("a b") != event_slug("a_b") == "a_b"
    assert len(event_slug("x" * 500)) < 80
    assert "\n" not in event_slug("ev1\n") and event_slug("ev1\n") != event_slug("ev1")  # a trailing newline too


@pytest.mark.parametrize("bad", ["..", ".", "../escape", "/etc/passwd", "a/../../b", ".hidden", "", "\\..\\x"])
def test_no_id_steps_outside_the_events_folder(tmp_path, bad):
    rd = RunDir(tmp_path / "run")
    d = rd.event_dir(bad)
    assert d.parent == tmp_path / "run" / "events"
    assert d.name not in (".", "..") and "/" not in d.name and not d.name.startswith(".")
    assert d.resolve().parent == (tmp_path / "run" / "events").resolve()


def _write_event(rd: RunDir, event_id: str, seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = 400
    codes = real_codes(n, rng, reverses=seed == 0)
    rd.write_real(event_id, frame(codes, np.zeros(n, bool), sim=False))
    rd.write_sim(event_id, "mf_mdp", 0, frame(codes, np.zeros(n, bool), sim=True))


def test_two_chinese_ids_give_two_folders_and_keep_their_ids_in_the_report(tmp_path):
    from mfmdp.evaluate.report import write_report

    rd = RunDir(tmp_path)
    for seed, eid in enumerate(CHINESE_IDS):
        _write_event(rd, eid, seed)
    assert len(list((tmp_path / "events").iterdir())) == 2
    ev = evaluate_run(tmp_path, window=32, show_progress=False)
    assert set(ev.metrics["event"]) == set(CHINESE_IDS)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "Glyph ... missing from font" per character
        write_report(tmp_path, window=32, n_boot=50)
    trajectories = sorted((tmp_path / "plots").glob("trajectory__*.png"))
    assert len(trajectories) == 2
    assert {p.name for p in trajectories} == {f"trajectory__{event_slug(i)}.png" for i in CHINESE_IDS}


def test_titles_without_a_cjk_font_are_escaped_not_boxes(monkeypatch):
    monkeypatch.setattr(plots, "cjk_font", lambda: None)
    text, font = plots.plot_text("新冠 - direct")
    assert text == "\\u65b0\\u51a0 - direct" and font == {}
    assert plots.plot_text("plain é title") == ("plain é title", {})  # the default font has these


def test_titles_use_an_installed_cjk_font_when_there_is_one(monkeypatch):
    family, path = plots._default_font()
    monkeypatch.setattr(plots, "cjk_font", lambda: ("Some CJK Sans", "/fonts/cjk.ttc"))
    real_charmap = plots._charmap
    monkeypatch.setattr(plots, "_charmap", lambda f: frozenset(map(ord, "新冠")) if f == "/fonts/cjk.ttc"
                        else real_charmap(f))
    assert plots.plot_text("新冠") == ("新冠", {"fontfamily": [family, "Some CJK Sans"]})


def test_scenario_with_two_chinese_ids_writes_two_folders_and_two_plots(tmp_path_factory, tmp_path):
    from experiment_helpers import trained_tiny_run
    from mfmdp.data.synthetic import generate_event
    from mfmdp.evaluate.whatif import run_scenario
    from mfmdp.simulate.scenario import load_trained

    run_root = trained_tiny_run(tmp_path_factory)
    base = generate_event("rumor_debunked", n_responses=200, seed=21)
    events = [replace(base, id=eid) for eid in CHINESE_IDS]
    out = tmp_path / "out"
    run = load_trained(run_root, methods=["mf_mdp"], cache_dir=tmp_path / "cache")
    summary = run_scenario(run, events, [], out, seeds=[0], progress=False)
    assert len(set(summary["plots"])) == 2
    assert sorted(p.name for p in (out / "baseline" / "events").iterdir()) == sorted(event_slug(i) for i in CHINESE_IDS)
    assert [e["event"] for e in json.loads((out / "summary.json").read_text())["events"]] == list(CHINESE_IDS)


def _render_title(text: str, **font) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure()
    FigureCanvasAgg(fig)
    fig.suptitle(text, **font)
    fig.canvas.draw()


def test_fallback_font_really_draws_glyphs_the_default_font_lacks(monkeypatch):
    """With matplotlib's own STIX font standing in for a CJK font: 'Ⓐ' is not in DejaVu Sans."""
    from matplotlib import font_manager

    stix = next(f for f in font_manager.fontManager.ttflist if f.name == "STIXGeneral")
    with pytest.warns(UserWarning, match="missing from font"):  # what the plots did before
        _render_title("event Ⓐ")
    monkeypatch.setattr(plots, "cjk_font", lambda: (stix.name, stix.fname))
    text, font = plots.plot_text("event Ⓐ")
    assert text == "event Ⓐ" and font["fontfamily"][-1] == "STIXGeneral"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _render_title(text, **font)
        monkeypatch.setattr(plots, "cjk_font", lambda: None)
        text, font = plots.plot_text("event Ⓐ 新冠")
        assert text == "event \\u24b6 \\u65b0\\u51a0" and font == {}
        _render_title(text, **font)
