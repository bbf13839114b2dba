"""Candidate dropout masks for LLM policies: one mask per candidate, shared by all agents of a step.

peft's LoRA applies `lora_dropout` to each adapted layer's input. We replace those modules with
`SharedMaskDropout`: in training it is ordinary dropout; inside `candidate_masks(model, seed)` it
drops the same input features for every row and position (the mask depends only on the seed and the
layer), so candidate j is one fixed sub-network lambda_j applied to the whole step.
"""

from __future__ import annotations

from contextlib import contextmanager

import torch
from torch import nn


class SharedMaskDropout(nn.Module):
    def __init__(self, p: float, layer_index: int) -> None:
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"dropout p must be in [0, 1), got {p}")
        self.p = float(p)
        self.layer_index = layer_index
        self.mask_seed: int | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.p == 0.0:
            return x
        if self.mask_seed is not None:
            g = torch.Generator(device="cpu").manual_seed(self.mask_seed * 100_003 + self.layer_index)
            keep = (torch.rand(x.shape[-1], generator=g) >= self.p).to(device=x.device, dtype=x.dtype)
            return x * keep / (1.0 - self.p)
        if self.training:
            return nn.functional.dropout(x, self.p, training=True)
        return x


def install_shared_dropout(model: nn.Module, p: float) -> int:
    """Replace every LoRA dropout module of a peft model; returns how many were replaced."""
    count = 0
    for module in model.modules():
        drop = getattr(module, "lora_dropout", None)
        if isinstance(drop, nn.ModuleDict):
            for name in list(drop.keys()):
                drop[name] = SharedMaskDropout(p, count)
                count += 1
    if count == 0:
        raise ValueError("no LoRA dropout modules found: is this a peft LoRA model?")
    return count


@contextmanager
def candidate_masks(model: nn.Module, seed: int | None):
    """Within the block every SharedMaskDropout uses the mask of candidate `seed` (None: off)."""
    mods = [m for m in model.modules() if isinstance(m, SharedMaskDropout)]
    for m in mods:
        m.mask_seed = seed
    try:
        yield
    finally:
        for m in mods:
            m.mask_seed = None
