"""`mfmdp data stats | convert | split` through typer's CliRunner."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from data_fixtures import checked_event, dump, weibo_event, write_covid
from mfmdp.cli import app
from mfmdp.data.split import load_split

runner = CliRunner()
KEYS = {"id", "format", "responses", "steps", "shares", "comments", "skipped", "first_time", "last_time"}


def _data(tmp_path):
    root = tmp_path / "data"
    dump(root / "a.json", checked_event("c1"))
    write_covid(root / "covid")
    dump(root / "w.json", weibo_event())
    return root


def test_stats_json(tmp_path):
    root = _data(tmp_path)
    res = runner.invoke(app, ["data", "stats", str(root), "--json", "--step-size", "2"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert set(doc) == {"events", "total_responses"}
    assert all(set(e) == KEYS for e in doc["events"])
    by_id = {e["id"]: e for e in doc["events"]}
    c1 = by_id["c1"]
    assert (c1["format"], c1["responses"], c1["steps"], c1["shares"], c1["comments"], c1["skipped"]) == \
        ("checked", 5, 3, 2, 3, 1)
    assert c1["first_time"] == "2020-03-09T03:26:00+00:00" and c1["last_time"] == "2020-03-11T02:07:00+00:00"
    assert doc["total_responses"] == sum(e["responses"] for e in doc["events"]) == 5 + 5 + 3


def test_stats_table_and_errors(tmp_path):
    root = _data(tmp_path)
    res = runner.invoke(app, ["data", "stats", str(root)])
    assert res.exit_code == 0, res.output
    assert "3 events, 13 responses" in res.output and "skipped records" in res.output
    bad = dump(tmp_path / "bad.json", {"hello": 1})
    res = runner.invoke(app, ["data", "stats", str(bad)])
    assert res.exit_code == 2 and "unknown format" in " ".join(res.output.split())  # rich may wrap lines


def test_convert_then_stats_and_split_from_cache(tmp_path):
    root = _data(tmp_path)
    out = tmp_path / "cache"
    res = runner.invoke(app, ["data", "convert", str(root), str(out)])
    assert res.exit_code == 0, res.output
    assert (out / "index.json").is_file() and (out / "responses.parquet").is_file()
    direct = json.loads(runner.invoke(app, ["data", "stats", str(root), "--json"]).stdout)
    cached = json.loads(runner.invoke(app, ["data", "stats", str(out), "--json"]).stdout)
    assert cached == direct
    split_file = tmp_path / "split.json"
    res = runner.invoke(app, ["data", "split", str(out), "--out", str(split_file), "--seed", "3",
                              "--fractions", "0.34", "0.33", "0.33"])
    assert res.exit_code == 0, res.output
    s = load_split(split_file)
    assert s.seed == 3 and set(s.assignments) == {e["id"] for e in direct["events"]}
    res = runner.invoke(app, ["data", "split", str(out), "--out", str(split_file), "--fractions", "1", "1", "1"])
    assert res.exit_code == 2 and "fractions" in res.output


def _tree(root) -> dict:
    """{relative path: bytes} of every file under root."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_convert_refuses_folders_it_does_not_own(tmp_path):
    proj = tmp_path / "proj"
    root = _data(proj)  # proj/data/...
    (proj / "README.txt").write_text("mine", encoding="utf-8")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine too", encoding="utf-8")
    before = _tree(tmp_path)
    for src, out, why in [(root / "a.json", proj, "contains the source"),
                          (root, root, "is the source data itself"),
                          (root, root / "cache", "inside the source folder"),
                          (root, tmp_path / "other", "neither empty nor an mfmdp cache"),
                          (root, proj / "README.txt", "neither empty nor an mfmdp cache")]:
        res = runner.invoke(app, ["data", "convert", str(src), str(out)])
        assert res.exit_code == 2 and why in " ".join(res.output.split()), (src, out, res.output)
        assert len(res.output.strip().splitlines()) == 1  # one line, no traceback
    assert _tree(tmp_path) == before  # nothing deleted, nothing added
    (tmp_path / "empty").mkdir()
    assert runner.invoke(app, ["data", "convert", str(root), str(tmp_path / "empty")]).exit_code == 0


def test_reconvert_keeps_what_others_wrote_in_the_cache(tmp_path):
    root = _data(tmp_path)
    out = tmp_path / "cache"
    assert runner.invoke(app, ["data", "convert", str(root), str(out)]).exit_code == 0
    planted = {"labels__llm_openai_m.parquet": b"labels", "label_store/offline__abc.parquet": b"store",
               "encoder_cache/llm_annotations.sqlite": b"paid for", "notes.txt": b"mine"}
    for name, data in planted.items():
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        (out / name).write_bytes(data)
    res = runner.invoke(app, ["data", "convert", str(root), str(out)])
    assert res.exit_code == 0, res.output
    assert all((out / name).read_bytes() == data for name, data in planted.items())
    assert json.loads(runner.invoke(app, ["data", "stats", str(out), "--json"]).stdout)["total_responses"] == 13
    # converting a cache again records the original data as its source, never the cache itself
    assert runner.invoke(app, ["data", "convert", str(out), str(out)]).exit_code == 0
    assert json.loads((out / "index.json").read_text(encoding="utf-8"))["source"] == str(root.resolve())

def _data_with_bad_files(tmp_path):
    root = _data(tmp_path)
    (root / "broken.jsonl").write_text(json.dumps({"event_id": "e", "id": "1", "time": 1.6e9}) + '\n{"event_id": \n')
    bad = checked_event("c2")
    bad["comments"] = "none"  # CHECKED object with a mistyped field
    dump(root / "sub" / "typed.json", bad)
    return root


def test_one_bad_file_stops_a_folder_load_unless_skip_bad(tmp_path):
    root = _data_with_bad_files(tmp_path)
    res = runner.invoke(app, ["data", "stats", str(root)])
    assert res.exit_code == 2 and "broken.jsonl" in res.output and "--skip-bad" in res.output
    assert "Traceback" not in res.output
    for cmd in (["data", "stats", str(root), "--skip-bad"],
                ["data", "convert", str(root), str(tmp_path / "cache"), "--skip-bad"],
                ["data", "split", str(root), "--out", str(tmp_path / "split.json"), "--skip-bad"]):
        res = runner.invoke(app, cmd)
        assert res.exit_code == 0, res.output
        out = " ".join(res.output.split())  # rich wraps long paths
        assert str(root / "broken.jsonl") in out and "line 2" in out and "malformed JSON" in out
        assert str(root / "sub" / "typed.json") in out and "'comments'" in out
    res = runner.invoke(app, ["data", "stats", str(root), "--skip-bad", "--json"])
    assert {e["id"] for e in json.loads(res.stdout)["events"]} == {"c1", "4463962899193527", "3495745049431351"}


def test_skip_bad_report_lists_each_skipped_file(tmp_path):
    from mfmdp.data.loading import LoadReport, load

    root = _data_with_bad_files(tmp_path)
    report = LoadReport()
    events = load(root, report=report, skip_bad=True)
    assert len(events) == 3
    assert [p for p, _ in report.skipped_sources] == [str(root / "broken.jsonl"), str(root / "sub" / "typed.json")]
