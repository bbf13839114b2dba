"""`mfmdp annotate` via typer's CliRunner: score (table and JSON), events (labels beside the cache,
store reuse), distill, the annotator registry and the label store."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from mfmdp.annotate.offline import OfflineAnnotator
from mfmdp.annotate.registry import get_annotator
from mfmdp.core.schema import DIMENSIONS, label_index
from mfmdp.annotate.store import LabelStore, annotate_texts, read_labels, text_keys
from mfmdp.cli import app

runner = CliRunner()


def flat(text: str) -> str:
    """Output with rich's line wrapping undone."""
    return " ".join(text.split())

GOLD_ROWS = [
    ("转发微博", "share", {"state": "neutral", "sentiment": "calm", "stance": "neutral", "intent": "promotion",
                          "subjectivity": "objective"}),
    ("武汉加油！致敬", "comment", {"state": "positive", "sentiment": "happy", "stance": "support"}),
    ("这是谣言，别信", "share", {"state": "negative", "stance": "oppose", "belief": "doubt", "rumor": "counter"}),
    ("太无耻了[怒]", "comment", {"state": "negative", "sentiment": "angry"}),
]


@pytest.fixture
def gold_file(tmp_path):
    lines = []
    for i, (text, behavior, labels) in enumerate(GOLD_ROWS):
        row = {"source": "test", "event": "e/1", "response_id": str(i), "topic": "某地疫情", "text": text,
               "state": "neutral", "sentiment": "calm", "stance": "neutral", "belief": "believe",
               "rumor": "spread", "subjectivity": "subjective", "intent": "opinion", "behavior": behavior,
               "confidence": "high"}
        row.update(labels)
        lines.append(json.dumps(row, ensure_ascii=False))
    p = tmp_path / "gold.jsonl"
    p.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return p


def test_score_json_has_the_agreed_shape(gold_file):
    res = runner.invoke(app, ["annotate", "score", str(gold_file), "--annotator", "offline:nosnownlp", "--json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert set(doc) == {"annotator", "dimensions", "calibration"}
    assert doc["annotator"] == "offline"
    for cal in doc["calibration"].values():
        assert set(cal) == {"n", "ece", "mean_confidence", "accuracy"} and 0 <= cal["ece"] <= 1
    assert list(doc["dimensions"]) == list(DIMENSIONS)
    state = doc["dimensions"]["state"]
    assert set(state) == {"n", "accuracy", "macro_f1"}
    assert state["n"] == 4 and state["accuracy"] == pytest.approx(1.0)
    assert doc["dimensions"]["behavior"]["accuracy"] == 1.0


def test_score_table_prints_confusion_matrices(gold_file):
    res = runner.invoke(app, ["annotate", "score", str(gold_file), "--annotator", "offline:nosnownlp"])
    assert res.exit_code == 0, res.output
    assert "macro-F1" in res.stdout
    assert "state: reference (rows) x predicted (columns)" in res.stdout
    assert "intent: reference" in res.stdout


def test_score_bad_file_and_bad_spec_fail_clearly(tmp_path, gold_file):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "x", "state": "happy"}\n', encoding="utf-8")
    res = runner.invoke(app, ["annotate", "score", str(bad)])
    assert res.exit_code == 2 and "bad.jsonl:1" in flat(res.output) and "state" in res.output
    res = runner.invoke(app, ["annotate", "score", str(gold_file), "--annotator", "oracle"])
    assert res.exit_code == 2 and "unknown annotator spec" in flat(res.output)


def _write_events(path, n_events=2):
    texts = ["转发微博", "武汉加油！", "这是谣言", "转发微博", "太可怕了", "请问什么时候开学？"]
    lines = []
    for e in range(n_events):
        lines.append({"event_id": f"ev{e}", "kind": "source", "id": f"s{e}", "time": 1_580_000_000,
                      "user_id": "u0", "text": f"话题{e}"})
        for i, t in enumerate(texts):
            lines.append({"event_id": f"ev{e}", "kind": "response", "id": f"r{e}-{i}",
                          "time": 1_580_000_100 + 60 * i, "user_id": f"u{i}", "text": t,
                          "behavior": "share" if i % 2 == 0 else "comment"})
    path.write_text("\n".join(json.dumps(x, ensure_ascii=False) for x in lines) + "\n", encoding="utf-8")
    return path


def test_annotate_events_writes_labels_beside_the_cache_and_reuses_the_store(tmp_path):
    data = _write_events(tmp_path / "events.jsonl")
    cache = tmp_path / "cache"
    args = ["annotate", str(data), "--cache", str(cache), "--annotator", "offline:nosnownlp", "--no-progress"]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    assert (cache / "responses.parquet").is_file()
    out = cache / "labels__offline_nosnownlp.parquet"
    assert out.is_file()
    labels = read_labels(out)
    assert sorted(labels) == ["ev0", "ev1"]
    lab = labels["ev0"]
    assert lab.n == 6
    assert lab.codes["behavior"].tolist() == [0, 1, 0, 1, 0, 1]  # from the data
    assert lab.codes["state"][1] == label_index("state", "positive")
    assert lab.codes["rumor"][2] == label_index("rumor", "counter")
    assert "10 new distinct texts" in flat(res.stdout)  # 5 per event: topics differ
    # Second run on the cache folder itself: everything comes from the store.
    res2 = runner.invoke(app, ["annotate", str(cache), "--annotator", "offline:nosnownlp", "--no-progress"])
    assert res2.exit_code == 0, res2.output
    assert "0 new distinct texts, 10 reused" in flat(res2.stdout)
    again = read_labels(cache)
    for d in DIMENSIONS:
        assert np.array_equal(again["ev1"].codes[d], labels["ev1"].codes[d])


def test_annotate_missing_path_fails(tmp_path):
    res = runner.invoke(app, ["annotate", str(tmp_path / "absent"), "--no-progress"])
    assert res.exit_code == 2 and "no such file" in flat(res.output)


def test_distill_command_trains_a_usable_annotator(tmp_path, gold_file):
    pytest.importorskip("mfmdp.annotate.distilled")
    rows = []
    base = [json.loads(x) for x in gold_file.read_text(encoding="utf-8").splitlines()]
    for k in range(12):  # 48 items over 6 "events" so grouped calibration has folds
        for r in base:
            r = dict(r, response_id=f"{k}-{r['response_id']}", event=f"e/{k % 6}", text=r["text"] + "!" * (k % 3))
            rows.append(json.dumps(r, ensure_ascii=False))
    # Two label files, pooled: 48 items in all.
    first, second = tmp_path / "train1.jsonl", tmp_path / "train2.jsonl"
    first.write_text("\n".join(rows[:20]) + "\n", encoding="utf-8")
    second.write_text("\n".join(rows[20:]) + "\n", encoding="utf-8")
    out = tmp_path / "model"
    res = runner.invoke(app, ["annotate", "distill", str(first), str(second), "--out", str(out), "--no-progress"])
    assert res.exit_code == 0, res.output
    assert "48 labelled responses from 2 files" in flat(res.output)
    assert "confidence ECE" in flat(res.output)
    res = runner.invoke(app, ["annotate", "score", str(gold_file), "--annotator", f"distilled:{out}", "--json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["dimensions"]["state"]["n"] == 4
    # The distilled annotator has probabilities for every text dimension, so each gets an ECE.
    assert {"state", "sentiment", "stance"} <= set(doc["calibration"])
    res = runner.invoke(app, ["annotate", "score", str(gold_file), "--annotator", f"distilled:{out}"])
    assert "expected calibration error" in flat(res.output)
    res = runner.invoke(app, ["annotate", "distill", str(first), str(tmp_path / "nope.jsonl"), "--out", str(out)])
    assert res.exit_code == 2 and "nope.jsonl: no such file" in flat(res.output)


# --- registry and store ----------------------------------------------------------------------------
def test_registry_specs():
    a = get_annotator("offline")
    assert a.name == "offline" and a.use_snownlp
    b = get_annotator("offline:nosnownlp")
    assert not b.use_snownlp and b.fingerprint != a.fingerprint
    for bad in ("offline:fast", "distilled:", "nonsense"):
        with pytest.raises(ValueError):
            get_annotator(bad)
    with pytest.raises(FileNotFoundError):
        get_annotator("distilled:/nonexistent/model/dir")


def test_llm_spec_with_fake_backend():
    pytest.importorskip("mfmdp.annotate.llm")
    try:
        a = get_annotator("llm:backend=fake,items_per_call=5")
    except (ValueError, RuntimeError, TypeError) as err:
        pytest.skip(f"fake LLM backend unavailable: {err}")
    assert a.name.startswith("llm")


class CountingAnnotator(OfflineAnnotator):
    def __init__(self):
        super().__init__(use_snownlp=False)
        self.calls = 0
        self.seen = 0

    def annotate(self, texts, topic="", behaviors=None):
        self.calls += 1
        self.seen += len(texts)
        return super().annotate(texts, topic, behaviors)


def test_store_labels_each_distinct_text_once_and_persists(tmp_path):
    texts = ["转发微博"] * 50 + ["加油", "这是谣言", "加油"]
    ann = CountingAnnotator()
    store = LabelStore(tmp_path, ann)
    out = annotate_texts(ann, texts, [""] * len(texts), store)
    assert ann.seen == 3
    store.save()
    ref = OfflineAnnotator(use_snownlp=False).annotate(texts, "")
    for d in DIMENSIONS:
        if d != "behavior":
            assert np.array_equal(out.codes[d], ref.codes[d]), d
    assert (out.codes["behavior"] == -1).all()
    # A new process (new store object) finds them all.
    ann2 = CountingAnnotator()
    store2 = LabelStore(tmp_path, ann2)
    assert len(store2) == 3
    out2 = annotate_texts(ann2, texts + ["新的文本"], [""] * (len(texts) + 1), store2)
    assert ann2.seen == 1
    assert np.array_equal(out2.codes["state"][:-1], out.codes["state"])


def test_store_is_keyed_by_annotator_fingerprint(tmp_path):
    a = get_annotator("offline")
    b = get_annotator("offline:nosnownlp")
    assert LabelStore(tmp_path, a).path != LabelStore(tmp_path, b).path


def test_text_keys_separate_topics():
    k1 = text_keys(["加油"], ["A"])
    k2 = text_keys(["加油"], ["B"])
    k3 = text_keys(["加油"])
    assert k1[0] != k2[0] and k1[0] != k3[0]
    assert text_keys(["加油"])[0] == k3[0]


def test_damaged_store_is_rebuilt(tmp_path):
    ann = OfflineAnnotator(use_snownlp=False)
    store = LabelStore(tmp_path, ann)
    store.path.parent.mkdir(parents=True, exist_ok=True)
    store.path.write_bytes(b"not parquet")
    again = LabelStore(tmp_path, ann)
    assert len(again) == 0
    out = annotate_texts(ann, ["加油"], [""], again)
    assert out.codes["state"][0] == label_index("state", "positive")


def test_explain_shows_parse_cues_and_labels():
    res = runner.invoke(app, ["annotate", "explain", "致敬！//@某人:转发微博", "--no-snownlp"])
    assert res.exit_code == 0, res.output
    out = flat(res.stdout)
    assert "own words: '致敬!'" in out  # NFKC-normalised
    assert "happy=2" in out
    assert "state=positive" in out and "stance=support" in out


def test_read_labels_errors(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"x": [1]}), tmp_path / "labels__bad.parquet")
    with pytest.raises(ValueError, match="not a labels file"):
        read_labels(tmp_path / "labels__bad.parquet")
    pq.write_table(pa.table({"x": [1]}), tmp_path / "labels__other.parquet")
    with pytest.raises(FileNotFoundError, match="found 2"):
        read_labels(tmp_path)


def test_annotate_never_writes_a_cache_over_the_data_or_its_folder(tmp_path):
    proj = tmp_path / "proj"
    proj.mkdir()
    data = _write_events(proj / "events.jsonl")
    (proj / "README.txt").write_text("mine", encoding="utf-8")
    before = {p.name: p.read_bytes() for p in proj.iterdir()}
    for cache in (proj, tmp_path):  # the data's folder, and a folder above it
        res = runner.invoke(app, ["annotate", str(data), "--cache", str(cache), "--no-progress"])
        assert res.exit_code == 2 and "contains the source" in flat(res.output), res.output
    assert {p.name: p.read_bytes() for p in proj.iterdir()} == before


def _files(root) -> dict:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_reruns_keep_every_annotators_labels_and_caches(tmp_path):
    pytest.importorskip("mfmdp.annotate.llm")
    data = _write_events(tmp_path / "events.jsonl")
    cache = tmp_path / "cache"
    base = ["annotate", str(data), "--cache", str(cache), "--no-progress", "--annotator"]
    for spec in ("offline", "offline:nosnownlp", "llm:backend=fake"):
        res = runner.invoke(app, [*base, spec])
        assert res.exit_code == 0, res.output
    names = {p.name for p in cache.glob("labels__*.parquet")}
    assert names == {"labels__offline.parquet", "labels__offline_nosnownlp.parquet", "labels__llm_fake.parquet"}
    assert (cache / "encoder_cache" / "llm_annotations.sqlite").is_file()
    kept = {k: v for k, v in _files(cache).items() if k not in ("index.json", "responses.parquet")}
    # Rerunning one annotator rebuilds the data cache but keeps (and reuses) everything else.
    res = runner.invoke(app, [*base, "llm:backend=fake"])
    assert res.exit_code == 0, res.output
    assert "0 new distinct texts, 10 reused" in flat(res.stdout)
    after = _files(cache)
    changed = [k for k, v in kept.items() if after.get(k) != v and not k.startswith("encoder_cache/")]
    assert changed == [] and set(kept) <= set(after)


def test_stored_labels_are_used_only_for_the_responses_they_label(tmp_path):
    from mfmdp.core.schema import Labels
    from mfmdp.annotate.store import event_labels, write_labels
    from mfmdp.data import load

    events = load(_write_events(tmp_path / "events.jsonl"))
    ann = get_annotator("offline:nosnownlp")
    zeros = [Labels({d: np.zeros(len(e), np.int8) for d in DIMENSIONS}) for e in events]
    write_labels(tmp_path, ann, events, zeros)  # distinguishable from what the annotator says
    got = event_labels(events, "offline:nosnownlp", tmp_path, progress=False)
    assert all((lab.codes["state"] == 0).all() for lab in got)  # the file fits: used as is
    for e in events:  # same counts, other responses (the data was rebuilt): the file is not trusted
        e.table.ids[:] = [f"new-{i}" for i in e.table.ids]
    got = event_labels(events, "offline:nosnownlp", tmp_path, progress=False)
    ref = OfflineAnnotator(use_snownlp=False).annotate([str(t) for t in events[0].table.texts], events[0].topic.text)
    assert np.array_equal(got[0].codes["state"], ref.codes["state"])


def test_invalid_llm_answers_are_not_stored_and_fail_the_run(tmp_path, monkeypatch):
    pytest.importorskip("mfmdp.annotate.llm")
    from fake_openai_server import FakeOpenAIServer
    from llm_helpers import good_answer_from_request

    data = _write_events(tmp_path / "events.jsonl")
    cache = tmp_path / "cache"
    args = ["annotate", str(data), "--cache", str(cache), "--annotator", "llm", "--no-progress"]
    monkeypatch.setenv("MFMDP_LLM_MODEL", "m")
    with FakeOpenAIServer(default=("text", '{"items": [{"id": 1, "state": "happy"}]}')) as bad:
        monkeypatch.setenv("MFMDP_LLM_BASE_URL", bad.base_url)
        res = runner.invoke(app, args)
    assert res.exit_code == 1 and "12 of 12 responses (100%) got no labels" in flat(res.output), res.output
    assert "0 of 12 responses labelled" in flat(res.output) and "Traceback" not in res.output
    assert not list(cache.glob("labels__*.parquet"))  # no file of -1s for training to pick up
    with FakeOpenAIServer(default=("json", good_answer_from_request)) as good:
        monkeypatch.setenv("MFMDP_LLM_BASE_URL", good.base_url)
        res = runner.invoke(app, args)
        assert res.exit_code == 0, res.output
        assert good.calls > 0 and "12 of 12 responses labelled" in flat(res.output)  # nothing bad was kept
    labels = read_labels(cache / "labels__llm_openai_m.parquet")
    assert all((lab.codes["state"] >= 0).all() for lab in labels.values())


def test_an_unreachable_llm_server_gives_one_error_line(tmp_path, monkeypatch, caplog):
    pytest.importorskip("mfmdp.annotate.llm")
    import socket

    from mfmdp.llm.wrappers import RetryingModel

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("MFMDP_LLM_BASE_URL", f"http://127.0.0.1:{port}/v1")
    monkeypatch.setenv("MFMDP_LLM_MODEL", "m")
    monkeypatch.setattr(RetryingModel, "_delay", lambda self, attempt, err: 0.0)
    data = _write_events(tmp_path / "events.jsonl")
    res = runner.invoke(app, ["annotate", str(data), "--cache", str(tmp_path / "c"), "--annotator", "llm",
                              "--no-progress"])
    assert res.exit_code == 1 and "Traceback" not in res.output
    errors = [line for line in res.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "cannot reach" in errors[0], res.output
    assert len([r for r in caplog.records if r.levelname == "WARNING"]) <= 1  # not one line per retry


def test_llm_budget_from_the_command_line(tmp_path):
    pytest.importorskip("mfmdp.annotate.llm")
    data = _write_events(tmp_path / "events.jsonl")
    cache = tmp_path / "cache"
    args = ["annotate", str(data), "--cache", str(cache), "--annotator", "llm:backend=fake,items_per_call=1",
            "--no-progress"]
    res = runner.invoke(app, [*args, "--max-calls", "2"])
    out = flat(res.output)
    assert res.exit_code == 1 and "LLM: 2 calls" in out and "(budget 2 calls)" in out and "call limit" in out, out
    assert not list(cache.glob("labels__*.parquet"))
    res = runner.invoke(app, args)  # the two paid-for answers are reused
    assert res.exit_code == 0 and "8 new distinct texts, 2 reused from the store" in flat(res.output), res.output
    res = runner.invoke(app, ["annotate", str(data), "--cache", str(cache), "--max-calls", "2", "--no-progress"])
    assert res.exit_code == 2 and "only apply to llm" in flat(res.output)

def test_annotate_skip_bad_names_skipped_files(tmp_path):
    """A broken file stops `annotate FOLDER` naming it; --skip-bad skips it, counted and named."""
    data = tmp_path / "data"
    data.mkdir()
    good = {"event_id": "e1", "id": "1", "time": "2020-03-09T10:00:00+08:00", "text": "武汉加油", "behavior": "comment"}
    (data / "good.jsonl").write_text(json.dumps(good, ensure_ascii=False) + "\n")
    (data / "bad.jsonl").write_text(json.dumps(good).replace("e1", "e2") + '\n{"event_id": \n')
    res = runner.invoke(app, ["annotate", str(data), "--cache", str(tmp_path / "c1"), "--no-progress"])
    assert res.exit_code == 2 and "bad.jsonl" in res.output and "--skip-bad" in flat(res.output)
    res = runner.invoke(app, ["annotate", str(data), "--cache", str(tmp_path / "c2"), "--no-progress", "--skip-bad"])
    assert res.exit_code == 0, res.output
    assert "1 file(s)/folder(s) skipped" in flat(res.output) and str(data / "bad.jsonl") in flat(res.output)
