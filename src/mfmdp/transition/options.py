"""f_psi's training options and the model sizes a config may set, importable without torch so that
`mfmdp run` checks a config before any work starts (mfmdp.simulate.config builds on these)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.dataclasses import dataclass


@dataclass(config=ConfigDict(extra="forbid"))
class TrainConfig:
    epochs: int = Field(30, ge=1)
    lr: float = Field(3e-4, gt=0.0)
    weight_decay: float = Field(0.01, ge=0.0)
    alpha: float = Field(1.0, ge=0.0)  # weight of L_roll; 0 = w/o LCT-State
    horizon: int = Field(30, ge=1)  # K
    # L_seq alone for the first epochs, then L_seq + alpha L_roll: an L_roll epoch costs ~7-15x an L_seq
    # epoch, and from a random start it slowed learning (bench/transition.py; docs/transition.md)
    roll_start_epoch: int = Field(2, ge=0)
    starts_per_event: int = Field(4, ge=1)
    events_per_batch: int = Field(8, ge=1)
    crop: int = Field(512, ge=1)  # longest training segment (steps); longer events are cropped at random each epoch
    patience: int = Field(5, ge=0)  # epochs without validation improvement before stopping
    val_fraction: float = Field(0.2, ge=0.0, lt=1.0)
    val_starts: int = Field(8, ge=1)  # fixed rollout start points per validation event
    grad_clip: float = Field(1.0, ge=0.0)
    seed: int = 0
    persistence_steps: int = Field(8, ge=1)  # the persistence forecast averages the last 8 real steps (128 responses)
    max_seconds: float | None = Field(None, ge=0.0)  # wall-clock budget: training stops at the first batch past it
    # torch intra-op threads while training (restored after). 1 by default: the rollout matmuls are
    # tiny, and on a shared 2-core machine OpenMP threads waiting for each other made them 10-40x
    # slower (measured); 0 or None leaves torch's setting alone (try 2 on an idle machine).
    threads: int | None = Field(1, ge=0)
    # Learning rate: "constant", or "cosine" (linear warm-up over the first epoch, then cosine decay
    # to lr/10 over the planned epochs or the time budget, whichever ends first).
    lr_schedule: Literal["constant", "cosine"] = "constant"
    # Exponential moving average of the weights (0 = off): validated and kept instead of the raw
    # weights, which smooths the epoch-to-epoch swings of the rollout KL that early stopping reads.
    ema_decay: float = Field(0.0, ge=0.0, lt=1.0)
    # What an L_roll rollout feeds back as the next step's mix: None = its forecast (the expectation,
    # as transition-only simulates); n = the histogram of n states drawn from it (what a simulation of
    # n agents per step feeds back; data.step_size), with a straight-through gradient. Noise injection
    # for issue 13: f_psi learns to stay calibrated on sampled inputs.
    roll_feedback_slots: int | None = Field(None, ge=1)
    # how those n states are drawn: "independent" (multinomial) or "systematic" (one stratified draw per
    # step, within one state of n x forecast per state: what the simulator's state_draws: systematic feeds)
    roll_feedback_draws: Literal["independent", "systematic"] = "independent"


class ModelSizes(BaseModel):
    """The sizes of f_psi a config may set (`transition.model`); the other TransitionConfig fields
    follow from the encoder. Their defaults are TransitionConfig's (the paper's sizes)."""

    model_config = ConfigDict(extra="forbid")

    d_model: int = Field(256, ge=1)
    n_layers: int = Field(3, ge=1)
    n_heads: int = Field(8, ge=1)
    d_ff: int = Field(1024, ge=1)
    dropout: float = Field(0.1, ge=0.0, lt=1.0)
    window: int = Field(256, ge=1)
    synopsis_decay: float = Field(0.8, ge=0.0, le=1.0)

    @model_validator(mode="after")
    def _heads_divide_width(self) -> "ModelSizes":
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model {self.d_model} is not divisible by n_heads {self.n_heads}")
        return self
