"""The Annotator protocol: texts of one topic in, labels on every text dimension out."""

from __future__ import annotations

from typing import Protocol, Sequence, runtime_checkable

import numpy as np

from mfmdp.core.schema import Labels


@runtime_checkable
class Annotator(Protocol):
    name: str

    def annotate(
        self, texts: Sequence[str], topic: str, behaviors: np.ndarray | None = None
    ) -> Labels:
        """Label `texts` (responses to `topic`) on every dimension of the schema.

        `behaviors` (int8 codes of BEHAVIORS) come from the data and are copied into the result;
        without them the behavior codes stay -1 (unknown): behavior is never guessed from text.
        """
        ...
