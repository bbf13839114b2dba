"""Ground-truth labels on the 8 schema dimensions, drawn from an agent's latent state and context.

Conventions follow the annotation prompt (src/mfmdp/prompts/annotate.txt), so that an annotator
reading the generated text can recover them:
- stance / belief are toward the source post's claim: a state aligned with the claim's polarity
  supports and believes it, the opposite state opposes and doubts it;
- rumor = counter exactly when the author doubts the claim;
- a bare repost is neutral / calm / neutral / believe / spread / objective / promotion whatever the
  author's latent state (the text carries nothing else).
All draws are vectorised; codes index `DIMENSIONS[dimension]`.
"""

from __future__ import annotations

import numpy as np

from mfmdp.core.schema import DIMENSIONS, Labels, label_index

def state_codes(states: np.ndarray) -> np.ndarray:
    """Latent state (+1, 0, -1) -> code in DIMENSIONS["state"] = (positive, neutral, negative)."""
    return (1 - np.asarray(states, dtype=np.int8)).astype(np.int8)


def _code(dim: str, name: str) -> int:
    return label_index(dim, name)


def _draw(rng: np.random.Generator, probs: np.ndarray) -> np.ndarray:
    """One categorical draw per row of probs [n, K] (rows need not be normalised)."""
    c = np.cumsum(probs, axis=1)
    u = rng.random(len(probs)) * c[:, -1]
    return (u[:, None] >= c).sum(axis=1).astype(np.int8)


def _rows(table: dict[int, list[float]], key: np.ndarray, names: tuple[str, ...], order: tuple[str, ...]) -> np.ndarray:
    """probs [n, len(order)] picking table[key] rows given in `names` order, reordered to `order`."""
    perm = [names.index(o) for o in order]
    keys = sorted(table)
    mat = np.array([[table[k][p] for p in perm] for k in keys], dtype=np.float64)
    return mat[np.searchsorted(keys, key)]


# Conditional probability tables. Keys are latent states (+1, 0, -1) or alignments.
_SENTIMENT = ("angry", "calm", "happy", "sad", "fear", "surprise")
_SENTIMENT_SUBJECTIVE = {
    1: [0.00, 0.35, 0.60, 0.00, 0.00, 0.05],
    0: [0.00, 0.50, 0.00, 0.00, 0.00, 0.50],
    -1: [0.55, 0.00, 0.00, 0.25, 0.20, 0.00],
}
_SENTIMENT_OBJECTIVE = {
    1: [0.00, 0.85, 0.15, 0.00, 0.00, 0.00],
    0: [0.00, 0.85, 0.00, 0.00, 0.00, 0.15],
    -1: [0.20, 0.60, 0.00, 0.10, 0.10, 0.00],
}
_P_OBJECTIVE = {1: 0.08, 0: 0.55, -1: 0.06}
_STANCE = ("support", "oppose", "neutral")
_STANCE_BY_ALIGNMENT = {1: [0.90, 0.03, 0.07], 0: [0.10, 0.10, 0.80], -1: [0.03, 0.90, 0.07]}
_P_DOUBT_BY_STANCE = {0: 0.05, 1: 0.95, 2: 0.35}  # stance code -> P(doubt)


def draw_labels(
    rng: np.random.Generator,
    states: np.ndarray,
    share: np.ndarray,
    bare: np.ndarray,
    exposed: np.ndarray,
    source_polarity: int,
    p_promotion_share: float = 0.45,
    p_question_doubt: float = 0.6,
) -> Labels:
    """Labels for n responses by authors in `states` (-1/0/+1) who shared or commented.

    `exposed` (had seen a signal) makes neutral authors doubt the claim more often.
    """
    states = np.asarray(states, dtype=np.int8)
    n = len(states)
    codes: dict[str, np.ndarray] = {"state": state_codes(states)}
    p_objective = np.array([_P_OBJECTIVE[-1], _P_OBJECTIVE[0], _P_OBJECTIVE[1]])[states + 1]
    objective = rng.random(n) < p_objective
    subj = np.where(objective, _code("subjectivity", "objective"), _code("subjectivity", "subjective"))
    sent_s = _rows(_SENTIMENT_SUBJECTIVE, states, _SENTIMENT, DIMENSIONS["sentiment"])
    sent_o = _rows(_SENTIMENT_OBJECTIVE, states, _SENTIMENT, DIMENSIONS["sentiment"])
    codes["sentiment"] = _draw(rng, np.where(objective[:, None], sent_o, sent_s))
    alignment = (states * int(np.sign(source_polarity))).astype(np.int8)
    stance = _draw(rng, _rows(_STANCE_BY_ALIGNMENT, alignment, _STANCE, DIMENSIONS["stance"]))
    codes["stance"] = stance
    p_doubt = np.select(
        [stance == _code("stance", "support"), stance == _code("stance", "oppose")],
        [_P_DOUBT_BY_STANCE[0], _P_DOUBT_BY_STANCE[1]],
        _P_DOUBT_BY_STANCE[2],
    )
    p_doubt = np.where((stance == _code("stance", "neutral")) & exposed, 0.7, p_doubt)
    doubt = rng.random(n) < p_doubt
    codes["belief"] = np.where(doubt, _code("belief", "doubt"), _code("belief", "believe"))
    codes["rumor"] = np.where(doubt, _code("rumor", "counter"), _code("rumor", "spread"))
    codes["subjectivity"] = subj
    u = rng.random(n)
    question = doubt & (stance == _code("stance", "neutral")) & (u < p_question_doubt)
    # news copy passes the story on: promotion (the annotation convention), as do many commented reposts
    promotion = ~question & ((share & (u < p_promotion_share)) | objective)
    codes["intent"] = np.select(
        [question, promotion],
        [_code("intent", "question"), _code("intent", "promotion")],
        _code("intent", "opinion"),
    )
    codes["behavior"] = np.where(share, _code("behavior", "share"), _code("behavior", "comment"))
    labels = Labels({d: np.asarray(c, dtype=np.int8) for d, c in codes.items()})
    set_fixed(labels, np.asarray(bare, dtype=bool), BARE_LABELS)
    return labels


BARE_LABELS = {"state": "neutral", "sentiment": "calm", "stance": "neutral", "belief": "believe",
               "rumor": "spread", "subjectivity": "objective", "intent": "promotion", "behavior": "share"}
# An official debunk/clarification and a media account's news copy (always comments: behavior is
# taken from the data, not fixed here).
COUNTER_SIGNAL_LABELS = {"state": "neutral", "sentiment": "calm", "stance": "oppose", "belief": "doubt",
                         "rumor": "counter", "subjectivity": "objective", "intent": "promotion"}
NEWS_LABELS = {"state": "neutral", "sentiment": "calm", "stance": "support", "belief": "believe",
               "rumor": "spread", "subjectivity": "objective", "intent": "promotion"}


def set_fixed(labels: Labels, where: np.ndarray, names: dict[str, str]) -> None:
    """Overwrite the labels of the slots in `where` (bool mask) with fixed label names."""
    if not np.any(where):
        return
    for dim, name in names.items():
        labels.codes[dim][where] = _code(dim, name)
