"""The README's Python example runs as written, against a tiny trained run.

The example reads a finished run from `demo-out` and an event from `events.jsonl`; the test makes
both in a temporary folder (the tiny run of `experiment_helpers`, one synthetic event) and runs the
README's code there, unchanged."""

from __future__ import annotations

import contextlib
import io
import math
import re
from pathlib import Path

import pytest

from experiment_helpers import trained_tiny_run
from mfmdp.data.synthetic import generate_event, write_synthetic

README = Path(__file__).resolve().parents[1] / "README.md"
HEADING = "## A what-if in ten lines of Python"


def readme_example() -> str:
    """The first ```python block under HEADING (before the next heading of its level)."""
    text = README.read_text(encoding="utf-8")
    assert f"\n{HEADING}\n" in text, f"README.md has no heading {HEADING!r}"
    section = text.split(f"\n{HEADING}\n", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"^```python\n(.*?)^```", section, re.S | re.M)
    assert block, f"no ```python block under {HEADING!r}"
    return block.group(1)


def test_the_example_is_short_and_reads_what_the_test_provides():
    code = readme_example()
    assert len(code.strip().splitlines()) <= 12
    assert '"demo-out"' in code and '"events.jsonl"' in code


def test_the_readme_example_runs(tmp_path_factory, tmp_path, monkeypatch):
    run_root = trained_tiny_run(tmp_path_factory)
    (tmp_path / "demo-out").symlink_to(run_root, target_is_directory=True)
    write_synthetic([generate_event("rumor_debunked", n_responses=400, seed=21)], tmp_path / "events.jsonl")
    before = sorted(p.relative_to(run_root) for p in run_root.rglob("*"))
    monkeypatch.chdir(tmp_path)
    printed = io.StringIO()
    namespace: dict = {"__name__": "readme_example"}
    with contextlib.redirect_stdout(printed):
        exec(compile(readme_example(), str(README), "exec"), namespace)
    values = [float(x) for x in printed.getvalue().split()]
    assert len(values) == 3 and all(math.isfinite(v) for v in values)
    summary = namespace["summary"]
    assert summary["identical_before_injection"] is True
    assert summary["effect_mean"] == pytest.approx(summary["net_polarity_scenario"] - summary["net_polarity_baseline"])
    assert sorted(p.relative_to(run_root) for p in run_root.rglob("*")) == before  # the run is only read
