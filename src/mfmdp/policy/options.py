"""The policy trainers' options, importable without torch so that `mfmdp run` checks a config's
`policy:` section before any work starts (LCT settings; the neural policy's sizes on top)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class LCTConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    lct: bool = True  # False: "w/o LCT-Policy", L_text only
    alpha: float = Field(1.0, ge=0.0)  # weight of L_text
    beta: float = Field(1.0, ge=0.0)  # candidate weights softmax(-beta V)
    gamma: float = Field(0.95, gt=0.0, le=1.0)
    J: int = Field(4, ge=1)
    K: int = Field(30, ge=1)
    starts_per_event: int = Field(4, ge=1)  # sampled rollout start steps per event and epoch
    max_start_step: int | None = Field(400, ge=1)  # starts drawn from steps < this (bounds the teacher-forced walk)
    epochs: int = Field(3, ge=1)
    lr: float = Field(2e-3, gt=0.0)
    weight_decay: float = Field(1e-4, ge=0.0)
    text_batch: int = Field(2048, ge=1)  # agent slots per event per update for L_text
    time_budget_s: float | None = Field(None, ge=0.0)  # stop early (after the current event) past this
    torch_threads: int | None = Field(1, ge=0)  # tiny per-step matrices: more threads only contend (measured 10x+)
    seed: int = 0


class PolicyTrainConfig(LCTConfig):
    """The `policy:` section of an experiment config: LCT settings + network and retrieval sizes."""

    hidden: int = Field(128, ge=1)
    dropout: float = Field(0.2, ge=0.0, lt=1.0)
    top_k: int = Field(16, ge=1)  # retrieval: draw among the top_k nearest pool texts
    pool_max_per_group: int | None = Field(20000, ge=1)  # retrieval pool rows kept per (state, behavior)
    social_k: int = Field(8, ge=1)  # social-retrieval context: k most recent + k most popular responses
    synopsis_decay: float = Field(0.8, ge=0.0, le=1.0)
