"""The 8-dimension label schema: the one source of truth for label names and their order."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from mfmdp.core.records import BEHAVIORS

DIMENSIONS: dict[str, tuple[str, ...]] = {
    "state": ("positive", "neutral", "negative"),
    "sentiment": ("angry", "calm", "happy", "sad", "fear", "surprise"),
    "stance": ("support", "oppose", "neutral"),
    "belief": ("believe", "doubt"),
    "rumor": ("spread", "counter"),
    "subjectivity": ("subjective", "objective"),
    "intent": ("question", "promotion", "opinion"),
    "behavior": BEHAVIORS,
}
STATES: tuple[str, ...] = DIMENSIONS["state"]
# Dimensions an annotator reads off the text; behavior comes from the data, never guessed.
TEXT_DIMENSIONS: tuple[str, ...] = tuple(d for d in DIMENSIONS if d != "behavior")
CONFIDENCES: tuple[str, ...] = ("high", "low")


def label_index(dimension: str, label: str) -> int:
    """Index of `label` in `dimension`'s order; a clear error for unknown names."""
    try:
        values = DIMENSIONS[dimension]
    except KeyError:
        raise ValueError(f"unknown dimension {dimension!r}; known: {', '.join(DIMENSIONS)}") from None
    try:
        return values.index(label)
    except ValueError:
        raise ValueError(
            f"unknown label {label!r} for dimension {dimension!r}; allowed: {'|'.join(values)}"
        ) from None


@dataclass
class Labels:
    """Labels for n responses: one int8 code array per dimension (-1 = unknown) + confidence in [0,1]."""

    codes: dict[str, np.ndarray]
    confidence: np.ndarray = field(default=None)  # float32 [n]

    def __post_init__(self) -> None:
        n = self.n
        for d in DIMENSIONS:
            if d not in self.codes:
                self.codes[d] = np.full(n, -1, dtype=np.int8)
            self.codes[d] = np.asarray(self.codes[d], dtype=np.int8)
        if self.confidence is None:
            self.confidence = np.ones(n, dtype=np.float32)

    @property
    def n(self) -> int:
        return len(next(iter(self.codes.values()))) if self.codes else 0

    @classmethod
    def empty(cls, n: int) -> "Labels":
        return cls({d: np.full(n, -1, dtype=np.int8) for d in DIMENSIONS})

    def names(self, dimension: str) -> list[str | None]:
        values = DIMENSIONS[dimension]
        return [values[c] if c >= 0 else None for c in self.codes[dimension]]

    def take(self, idx: np.ndarray) -> "Labels":
        return Labels({d: c[idx] for d, c in self.codes.items()}, self.confidence[idx])

    @classmethod
    def concat(cls, parts: list["Labels"]) -> "Labels":
        return cls(
            {d: np.concatenate([p.codes[d] for p in parts]) for d in DIMENSIONS},
            np.concatenate([p.confidence for p in parts]),
        )
