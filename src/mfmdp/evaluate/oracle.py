"""Oracle floor: labels resampled from the real per-window label mix.

No simulator can be expected to score better than this: it knows the true mix of every window and
differs from the real labels only by sampling. Warm-up and signal slots keep their real labels (they
are replayed and never scored); unknown real labels stay unknown.
"""

from __future__ import annotations

import numpy as np

from mfmdp.core.schema import DIMENSIONS, Labels
from mfmdp.evaluate.windows import scored_mask, window_ids


def oracle_labels(real: Labels, is_signal: np.ndarray | None, warmup_slots: int, window: int = 128,
                  seed: int = 0) -> Labels:
    """A copy of `real` whose scored slots are redrawn, per window and dimension, from the real
    window's empirical label mix (windows as in evaluation's long horizon)."""
    rng = np.random.default_rng(seed)
    slots = np.flatnonzero(scored_mask(real.n, is_signal, warmup_slots))
    ids = window_ids(len(slots), window)
    codes = {}
    for dim in DIMENSIONS:
        col = real.codes[dim].copy()
        vals = col[slots]
        for w in range(int(ids[-1]) + 1 if len(ids) else 0):
            in_w = ids == w
            known = in_w & (vals >= 0)
            pool = vals[known]
            if len(pool):
                vals[known] = rng.choice(pool, size=len(pool), replace=True)
        col[slots] = vals
        codes[dim] = col
    return Labels(codes, real.confidence.copy())
