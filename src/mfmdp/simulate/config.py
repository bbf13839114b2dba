"""The experiment configuration: one pydantic schema, read from YAML, overridable from the CLI."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator

from mfmdp.simulate.methods import METHODS


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
    min_responses: int = 300  # events shorter than this are not simulated
    step_size: int = 16
    signal_rule: Literal["verified_institution", "none"] = "verified_institution"
    scenario: str | None = None  # JSONL of extra signals (time, source, text)


class SimulationConfig(_Strict):
    warmup_steps: int = 10
    candidates: int = 4  # J
    horizon: int = 30  # K
    beta: float = 1.0
    gamma: float = 0.95
    seeds: list[int] = Field(default_factory=lambda: [0, 1, 2])
    synopsis_decay: float = 0.8
    social_k: int = 8
    # f_psi's synopsis input after warm-up: "realised" (updated from the simulated responses, as the
    # policy's) or "frozen" at the end of warm-up, as in f_psi's L_roll training and the
    # transition-only floor (the simulated texts are retrieved prototypes, not what f_psi saw in training)
    transition_synopsis: Literal["realised", "frozen"] = "realised"


class EvaluationConfig(_Strict):
    window: int = 128
    settings: list[Literal["short", "long", "reversal"]] = Field(default_factory=lambda: ["short", "long", "reversal"])


class ExecutorConfig(_Strict):
    kind: Literal["local", "ray"] = "local"
    num_cpus: int | None = None
    torch_threads: int = 1


class ExperimentConfig(_Strict):
    name: str = "experiment"
    seed: int = 0
    data: DataConfig = Field(default_factory=DataConfig)
    annotator: str = "offline"  # offline | distilled:DIR | llm | truth (synthetic ground truth)
    encoder: str = "hash"
    transition: dict[str, Any] = Field(default_factory=dict)  # passed to the transition trainer's config
    policy: dict[str, Any] = Field(default_factory=dict)  # passed to the policy trainer's config
    # neural: trained here; hf: LoRA adapters trained by `mfmdp train policy --backend hf`, one per
    # method in `policy_checkpoints`; openai: an OpenAI-compatible endpoint (MFMDP_LLM_* variables).
    policy_backend: Literal["neural", "hf", "openai"] = "neural"
    policy_checkpoints: dict[str, str] = Field(default_factory=dict)  # method -> adapter dir (hf)
    summariser: str = "embedding"  # embedding | llm | llm:key=value,... (same options as the LLM annotator)
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


def load_config(path: str | Path, overrides: list[str] | None = None) -> ExperimentConfig:
    """Read YAML and apply `key.sub=value` overrides (values parsed as YAML)."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as e:
        raise ValueError(f"{path}: not valid YAML: {e}") from None
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: an experiment config must be a mapping, got {type(raw).__name__}")
    for item in overrides or []:
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"override {item!r} must look like key.sub=value")
        node = raw
        parts = key.split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = yaml.safe_load(value)
    return ExperimentConfig.model_validate(raw)
