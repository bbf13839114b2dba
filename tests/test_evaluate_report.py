"""Run-directory evaluation, write_report and `mfmdp evaluate` on tiny run dirs the tests write."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from evaluate_helpers import make_run_dir
from mfmdp.cli import app
from mfmdp.evaluate.report import write_report
from mfmdp.evaluate.reversal import ReversalThresholds
from mfmdp.evaluate.runs import METRICS_CSV_COLUMNS, evaluate_run
from mfmdp.evaluate.tables import display_names

FAST = dict(n_events=2, n=700, seeds=(0, 1))


def _strict_json(text):
    def bad(token):
        raise ValueError(f"non-standard JSON constant {token}")
    return json.loads(text, parse_constant=bad)


def test_evaluate_run_scores_every_file_and_adds_the_oracle(tmp_path):
    run = make_run_dir(tmp_path / "run", **FAST)
    ev = evaluate_run(run, thresholds=ReversalThresholds(0.3, 2), show_progress=False)
    m = ev.metrics
    assert tuple(m.columns) == METRICS_CSV_COLUMNS
    assert set(m["method"]) == {"direct", "mf_mdp", "persistence", "no_sampling", "oracle"}
    assert set(m["seed"]) == {0, 1} and set(m["event"]) == {"ev0", "ev1"}
    # ev0 reverses (negative -> positive) and ev1 does not: only ev0 has the reversal setting
    assert set(m.loc[m["setting"] == "reversal", "event"]) == {"ev0"}
    long_state = m[(m["setting"] == "long") & (m["dimension"] == "state")].groupby("method")["kl"].mean()
    assert long_state["mf_mdp"] < long_state["persistence"] < long_state["direct"]
    np.testing.assert_allclose(m.loc[m["method"] == "mf_mdp", "nll"], 0.9)
    rev = ev.reversals[(ev.reversals["event"] == "ev0") & (ev.reversals["method"] == "mf_mdp")]
    assert rev["same_direction"].all()


def test_write_report_writes_tables_plots_and_pages(tmp_path):
    run = make_run_dir(tmp_path / "run", **FAST)
    out = write_report(run, max_event_plots=1, n_boot=200)
    assert out == run / "report.html"
    for name in ("metrics.csv", "report.md", "summary.json", "tables/table1_state.csv", "tables/table1_all.csv",
                 "tables/table2_state.csv", "tables/comparisons.csv", "tables/reversals.csv", "plots/radar.png"):
        assert (run / name).is_file(), name
    t1 = pd.read_csv(run / "tables/table1_state.csv", index_col=0)
    assert list(t1.index) == ["Direct", "MF-MDP", "Persistence", "Oracle"]  # Table 1 order
    assert any(c.startswith("short / KL") for c in t1.columns) and any(c.startswith("long / DTW") for c in t1.columns)
    t2 = pd.read_csv(run / "tables/table2_state.csv", index_col=0)
    assert list(t2.index) == ["MF-MDP", "w/o Sampling"]
    html = out.read_text()
    imgs = [s.split('"')[0] for s in html.split('<img src="')[1:]]
    assert "plots/radar.png" in imgs and len(imgs) == 3  # radar + one event's two plots
    assert all((run / i).is_file() for i in imgs)
    summary = _strict_json((run / "summary.json").read_text())
    assert summary["horizons"]["short"][0] == 300
    assert "MF-MDP" in (run / "report.md").read_text()
    assert pd.read_csv(run / "metrics.csv").shape[0] == len(evaluate_run(run, show_progress=False).metrics)
    # skill over persistence in Table 1 (0 for persistence itself), hits - false alarms per method
    skill = t1[[c for c in t1.columns if c.startswith("long / skill")][0]]
    assert skill["Persistence"].startswith("0.000") and not skill["Oracle"].startswith("-")
    rev_skill = pd.read_csv(run / "tables/reversal_skill.csv").set_index("method")
    assert {"mf_mdp", "oracle"} <= set(rev_skill.index)
    assert summary["reversal_skill"] and "Hits − false alarms" in (run / "report.md").read_text()


def test_bad_run_dirs_fail_naming_the_file(tmp_path):
    with pytest.raises(ValueError, match="no events/ folder"):
        evaluate_run(tmp_path, show_progress=False)
    run = make_run_dir(tmp_path / "run", n_events=1, n=400, seeds=(0,), methods={"mf_mdp": 0.1})
    sim = run / "events/ev0/sim__mf_mdp__seed0.parquet"
    pd.read_parquet(sim).iloc[:-5].to_parquet(sim, index=False)
    with pytest.raises(ValueError, match="sim__mf_mdp__seed0.parquet: slots differ"):
        evaluate_run(run, show_progress=False)
    df = pd.read_parquet(run / "events/ev0/real.parquet").drop(columns=["stance"])
    df.to_parquet(run / "events/ev0/real.parquet", index=False)
    with pytest.raises(ValueError, match="real.parquet: missing label column"):
        evaluate_run(run, show_progress=False)


def test_display_name_of_mf_llm_depends_on_the_summariser():
    assert display_names({})["mf_llm"] == "mf-synopsis (embedding)"
    assert display_names({"llm_summariser": True})["mf_llm"] == "MF-LLM"


def test_cli_evaluate_prints_table1_and_writes_outputs(tmp_path):
    run = make_run_dir(tmp_path / "run", **FAST)
    train = make_run_dir(tmp_path / "train", n_events=3, n=900, seeds=(0,), methods={"mf_mdp": 0.1})
    runner = CliRunner()
    res = runner.invoke(app, ["evaluate", str(run), "--fit-thresholds-on", str(train), "--max-event-plots", "0",
                              "--n-boot", "100", "--json", str(tmp_path / "s.json")])
    assert res.exit_code == 0, res.output
    assert "Table 1" in res.output and "MF-MDP" in res.output
    assert (run / "reversal_thresholds.json").is_file() and (run / "report.html").is_file()
    assert _strict_json((tmp_path / "s.json").read_text())["thresholds"]["source"].startswith("real events of train")
    res = runner.invoke(app, ["evaluate", str(tmp_path / "nope")])
    assert res.exit_code == 2 and "not a directory" in res.output
    res = runner.invoke(app, ["evaluate", str(tmp_path)])
    assert res.exit_code == 1 and "no events/ folder" in res.output


def test_reads_run_dirs_written_by_the_simulators_writer(tmp_path):
    """The agreed layout as mfmdp.simulate.results writes it (real + sim frames) is read back as written."""
    from mfmdp.simulate import results
    from mfmdp.core.schema import DIMENSIONS, Labels

    rng = np.random.default_rng(0)
    n, warm = 500, 160
    real = Labels({d: rng.integers(0, len(v), n) for d, v in DIMENSIONS.items()})
    sim = Labels({d: rng.integers(0, len(v), n) for d, v in DIMENSIONS.items()})
    steps_of = np.arange(n) // 16
    is_signal = np.zeros(n, dtype=bool)
    is_signal[300] = True
    rd = results.RunDir(tmp_path / "run")
    rd.write_real("topic/1", results.labels_frame(real, steps_of, is_signal, warm))
    frame = results.sim_frame(sim, steps_of, is_signal, warm, nll=np.full(n, 1.5))
    rd.write_sim("topic/1", "mf_mdp", 3, frame)
    ev = evaluate_run(tmp_path / "run", thresholds=ReversalThresholds(0.3, 2), show_progress=False)
    m = ev.metrics
    assert set(m["method"]) == {"mf_mdp", "oracle"} and set(m["seed"]) == {3}
    row = m[(m["method"] == "mf_mdp") & (m["setting"] == "long") & (m["dimension"] == "state")].iloc[0]
    assert row["responses"] == n - warm - 1 and row["nll"] == pytest.approx(1.5)
    assert set(m["event"]) == {"topic/1"}  # the id, not its folder's slug


def test_plot_selection_prefers_big_reversals_then_long_events():
    import numpy as np
    import pandas as pd

    from mfmdp.evaluate.report import plot_selection

    def series(n, swing):
        real = np.full((n, 3), 1 / 3)
        real[: n // 2, 0], real[: n // 2, 2] = 0.5 + swing / 2, 0.5 - swing / 2  # net polarity drops by `swing`
        real[: n // 2, 1] = 0.0
        return {"centres": np.arange(n), "real": {"state": real}}

    s = {"a": series(5, 0.1), "b": series(5, 0.8), "c": series(50, 0.0), "d": series(20, 0.0), "e": series(3, 0.0)}
    rev = pd.DataFrame({"event": ["a", "b", "c"], "real_reversals": [1, 1, 0]})
    assert plot_selection(s, rev, 4) == ["b", "a", "c", "d"]
    assert plot_selection(s, rev, 3) == ["b", "c", "d"]
    assert plot_selection(s, pd.DataFrame(), 2) == ["c", "d"]


def test_kl_skill_is_one_minus_the_ratio_to_the_floor_on_the_same_events_and_seed():
    from mfmdp.evaluate.tables import kl_skill

    rows = [{"setting": "long", "dimension": "state", "method": m, "event": e, "seed": s, "kl": kl}
            for s in (0, 1) for e, scale in (("a", 1.0), ("b", 3.0))
            for m, kl in (("persistence", 0.2 * scale), ("good", 0.1 * scale), ("bad", 0.4 * scale))]
    rows.append({"setting": "long", "dimension": "state", "method": "good", "event": "c", "seed": 0, "kl": 9.0})
    out = kl_skill(pd.DataFrame(rows), "state", ["good", "bad", "persistence"], ["long"]).set_index("method")
    assert out.loc["good", "mean"] == pytest.approx(0.5)  # event c has no floor: left out
    assert out.loc["bad", "mean"] == pytest.approx(-1.0) and out.loc["persistence", "mean"] == pytest.approx(0.0)
    assert out.loc["good", "n_seeds"] == 2 and out.loc["good", "n_events"] == 2


def test_the_report_says_how_the_agents_evidence_was_coupled():
    from mfmdp.evaluate.report import coupling_line

    calibrated = {"config": {"simulation": {"evidence_weight": "calibrate"}},
                  "coupling": {"evidence_weight": 1.0, "evidence_half_life": 5.0, "calibration_events": 4}}
    assert coupling_line(calibrated) == ("Coupling of the agents' evidence with f_psi's forecast: w = 1, halved every "
                                         "5 steps after warm-up, calibrated on 4 validation events.")
    fixed = {"config": {"simulation": {"evidence_weight": 0.0}},
             "coupling": {"evidence_weight": 0.0, "evidence_half_life": None}}
    assert "as configured" in coupling_line(fixed) and "the agents add nothing" in coupling_line(fixed)
    assert coupling_line({}) == "" and coupling_line(None) == ""
