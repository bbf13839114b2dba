"""The offline annotator: Weibo-aware cue lexicons first, snownlp only where the cues are silent.

No network, no hub, no training: every label is a readable rule over the lexicons in
mfmdp/data/lexicons/. The rules follow the labelling conventions of the reference data:
- a bare repost (no words of one's own, nothing forwarded but platform text) and a copied
  headline/hashtag/news item are neutral / calm / neutral / believe / spread / objective / promotion;
- a debunk ("谣言", "辟谣", "假的", ...) is negative / oppose / doubt / counter;
- otherwise the state is the balance of positive cues (cheering, thanks, hope, blessing) against
  negative ones (anger, grief, fear, sarcasm, rhetorical blame), with negation and sarcasm handled;
  snownlp's product-review sentiment model only breaks ties on longer texts (alone it scores below
  always answering "neutral" on Weibo).
- stance is relative to the source post: anger at an outraged post (judged by the same cues) agrees.
The topic enters only through that tone; `annotate` labels each distinct (text, tone) once.
"""

from __future__ import annotations

import hashlib
import logging
import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Sequence

import numpy as np

from mfmdp.annotate.lexicons import Lexicon, load_lexicons
from mfmdp.core.schema import DIMENSIONS, Labels, label_index
from mfmdp.annotate.weibo import ParsedText, parse

log = logging.getLogger(__name__)

# Rule set version: bump it whenever a rule changes (lexicon and threshold edits are hashed in).
VERSION = "offline-1"

_NON_BEHAVIOR = tuple(d for d in DIMENSIONS if d != "behavior")

BARE_LABELS: dict[str, str] = {
    "state": "neutral",
    "sentiment": "calm",
    "stance": "neutral",
    "belief": "believe",
    "rumor": "spread",
    "subjectivity": "objective",
    "intent": "promotion",
}


@dataclass(frozen=True)
class Thresholds:
    """Decision thresholds of the rules (cue-score units: a typical strong cue weighs 2)."""

    polar: float = 1.0  # minimum winning score for a positive/negative state
    margin: float = 0.5  # winner must beat the other side by this much
    debunk: float = 2.0  # debunk score that makes a response a refutation
    doubt: float = 1.5  # doubt score that makes a response doubting
    surprise: float = 1.5  # surprise score that makes the sentiment surprise
    news: float = 2.5  # news-copy score above which a cue-less text is objective news
    rhetoric_scale: float = 1.3  # multiplier of the weak rhetorical-blame cues
    snownlp_min_chars: int = 6  # snownlp breaks ties only on texts at least this long
    snownlp_high: float = 0.95  # snownlp above this -> positive (ties only)
    snownlp_low: float = 0.3  # snownlp below this -> negative (ties only)


@dataclass(frozen=True)
class Cues:
    """Cue scores of one effective text, per family (after negation and sarcasm handling)."""

    happy: float
    hope: float
    anger: float
    sad: float
    fear: float
    surprise: float
    debunk: float
    doubt: float
    disagree: float
    question: float
    rhetoric: float
    sarcasm: float
    news: float
    promotion: float
    ends_with_question: bool
    asks: bool  # the words ask something: a "?", a closing question particle, or "请问"-like cues

    @property
    def positive(self) -> float:
        return self.happy + self.hope

    @property
    def strong_negative(self) -> float:
        """Explicit emotion or mockery, as opposed to rhetorical blame."""
        return self.anger + self.sad + self.fear + self.sarcasm

    @property
    def negative(self) -> float:
        return self.anger + self.sad + self.fear + self.sarcasm + self.rhetoric + 0.5 * self.debunk


def _negated(text: str, start: int, negation: Lexicon) -> bool:
    """A negator right before a cue ("不支持", "没有希望"), or one character earlier ("不太好"), cancels it."""
    window = text[max(0, start - 3) : start]
    return any(window.endswith(n) for n in negation.cues) or any(ch in window[-2:] for ch in "不没别")


class OfflineAnnotator:
    """Rule-based 7-dimension annotator (behavior is copied from the data)."""

    name = "offline"
    # Only stance looks at the topic, through its tone; dedup and caches key on (topic, text).
    uses_topic = True

    def __init__(
        self,
        lexicon_dir: str | None = None,
        thresholds: Thresholds | None = None,
        use_snownlp: bool = True,
        cache_size: int = 100_000,
    ):
        self.lex = load_lexicons(lexicon_dir)
        self.bare = frozenset(self.lex["bare"].cues)
        self.thresholds = thresholds or Thresholds()
        self.use_snownlp = use_snownlp
        # Rules + lexicon contents + thresholds: edits to a lexicon file never reuse stale stored labels.
        self.version = f"{VERSION}-{_digest(self.lex, self.thresholds)}"
        self._snownlp_failed = False
        self._snow = None  # loaded on first tie: most texts never need it
        # Per-instance memo of (text, topic tone) -> (codes, confidence): bare reposts and slogans
        # repeat a lot; bounded, since the persistent label store does the large-scale dedup.
        self._cache_size = cache_size
        self._label_one = lru_cache(maxsize=cache_size)(self._label_text)

    def __getstate__(self) -> dict:
        # The memo holds a lock and the snownlp model is reloaded on demand: neither travels to
        # worker processes (Ray pickles the annotator into every simulation task).
        state = dict(self.__dict__)
        del state["_label_one"]
        state["_snow"] = None
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._label_one = lru_cache(maxsize=self._cache_size)(self._label_text)

    # --- public API -----------------------------------------------------------------------------
    def annotate(self, texts: Sequence[str], topic: str = "", behaviors: np.ndarray | None = None) -> Labels:
        n = len(texts)
        if behaviors is not None and len(behaviors) != n:
            raise ValueError(f"behaviors has {len(behaviors)} entries for {n} texts")
        codes = {d: np.empty(n, dtype=np.int8) for d in _NON_BEHAVIOR}
        conf = np.empty(n, dtype=np.float32)
        tone = self.topic_tone(topic)
        for i, text in enumerate(texts):
            row, c = self._label_one(text or "", tone)
            for d, v in zip(_NON_BEHAVIOR, row):
                codes[d][i] = v
            conf[i] = c
        codes["behavior"] = (
            np.asarray(behaviors, dtype=np.int8) if behaviors is not None else np.full(n, -1, np.int8)
        )
        return Labels(codes, conf)

    def label_names(self, text: str, topic: str = "") -> dict[str, str]:
        """Labels of one text by name (for inspection and tests)."""
        row, _ = self._label_one(text, self.topic_tone(topic))
        return {d: DIMENSIONS[d][v] for d, v in zip(_NON_BEHAVIOR, row)}

    def explain(self, text: str, topic: str = "") -> dict:
        """The parsed text, cue scores and topic tone behind a label: what a user debugging a rule needs."""
        p = parse(text, self.bare)
        return {
            "parsed": p,
            "cues": self.cues(p.opinion, p.effective),
            "tone": self.topic_tone(topic),
            "labels": self.label_names(text, topic),
        }

    # --- rules ----------------------------------------------------------------------------------
    def cues(self, opinion: str, effective: str) -> Cues:
        lex = self.lex
        neg = lex["negation"]
        # Positive cues preceded by a negator flip into weak negatives ("不支持", "没希望").
        happy = hope = flipped = 0.0
        for fam in ("happy", "hope"):
            for m in lex[fam].matches(opinion):
                if _negated(opinion, m.start, neg):
                    flipped += 0.5 * m.weight
                elif fam == "happy":
                    happy += m.weight
                else:
                    hope += m.weight
        sarcasm = lex["sarcasm"].score(opinion)
        if sarcasm >= 1.5 and happy + hope > 0:
            # Praise next to a sarcasm marker ("真是厉害了[微笑]") is mockery.
            sarcasm += 0.5 * (happy + hope)
            happy = hope = 0.0
        # Rhetorical cues only count where no strong cue already explains the words.
        strong = opinion
        for fam in ("happy", "hope", "anger", "sad", "fear", "debunk", "doubt"):
            for m in lex[fam].matches(strong):
                strong = strong[: m.start] + "\0" * (m.end - m.start) + strong[m.end :]
        rhetoric = min(self.thresholds.rhetoric_scale * lex["rhetoric"].score(strong), 3.0)
        stripped = opinion.rstrip(" ~~.。!！…)）")
        return Cues(
            happy=happy,
            hope=hope,
            anger=lex["anger"].score(opinion),
            sad=lex["sad"].score(opinion),
            fear=lex["fear"].score(opinion),
            surprise=lex["surprise"].score(opinion),
            debunk=lex["debunk"].score(effective),
            doubt=lex["doubt"].score(effective),
            disagree=lex["disagree"].score(opinion),
            question=lex["question"].score(opinion),
            rhetoric=rhetoric + flipped,
            sarcasm=sarcasm,
            news=lex["news"].score(effective),
            promotion=lex["promotion"].score(effective),
            ends_with_question=stripped.endswith("?"),
            asks="?" in opinion
            or (stripped.endswith(("吗", "嘛", "么", "呢")) and not stripped.endswith(("好吗", "好嘛")))
            or any(m.weight >= 2 for m in lex["question"].matches(opinion)),
        )

    def topic_tone(self, topic: str) -> str:
        """"outrage" when the source post itself is angry, grieving or alarmed; else "other".

        Stance is relative to the source: anger at an outraged post agrees with it (support).
        """
        if not topic:
            return "other"
        p = parse(topic, self.bare)
        c = self.cues(p.opinion or p.effective, p.effective)
        return "outrage" if c.strong_negative >= 2.0 and c.strong_negative > c.positive else "other"

    def _label_text(self, text: str, tone: str = "other") -> tuple[tuple[int, ...], float]:
        labels, conf = self.decide(parse(text, self.bare), tone)
        return tuple(label_index(d, labels[d]) for d in _NON_BEHAVIOR), conf

    def decide(self, p: ParsedText, tone: str = "other") -> tuple[dict[str, str], float]:
        th = self.thresholds
        # 1. Nothing of one's own and nothing forwarded but platform text, or only a copied headline.
        if not p.effective or p.effective in self.bare:
            debunk_in_chain = max((self.lex["debunk"].score(s) for s in p.chain), default=0.0)
            if debunk_in_chain >= th.debunk:
                return self._debunk_labels(angry=False), 0.6
            return dict(BARE_LABELS), 0.95
        c = self.cues(p.opinion, p.effective)
        # 2. Refutation wins over everything else: it defines belief, rumor, stance and state.
        if c.debunk >= th.debunk and c.debunk >= c.positive:
            labels = self._debunk_labels(angry=c.anger + c.sarcasm >= 1.5)
            labels["intent"] = "question" if c.ends_with_question and c.question >= 1.5 else "opinion"
            return labels, _confidence(c.debunk - c.positive)
        if not p.opinion:
            # Only copied headlines/hashtags: sharing news, like a bare repost.
            return dict(BARE_LABELS), 0.85
        pos, neg = c.positive, c.negative
        doubting = c.doubt >= th.doubt
        if pos >= th.polar and pos - neg >= th.margin:
            state = "positive"
        elif neg >= th.polar and neg - pos >= th.margin:
            state = "negative"
        else:
            state = "neutral"
            if abs(pos - neg) < th.margin and not doubting:
                state = self._tie_break(p.opinion, c.news)
        if doubting and state == "positive":
            state = "neutral"
        # A question without explicit emotion asks; rhetorical blame alone does not make it negative.
        asking = c.asks and c.strong_negative < 1.5 and c.debunk < 1.0 and "凭什么" not in p.opinion
        if asking and state == "negative" and c.rhetoric < 1.5:
            state = "neutral"
        labels = {
            "state": state,
            "sentiment": self._sentiment(state, c, asking and _only_marks(p.opinion)),
            "stance": self._stance(state, c, tone),
            "belief": "doubt" if doubting else "believe",
            "rumor": "counter" if doubting else "spread",
        }
        objective = (
            state == "neutral"
            and labels["sentiment"] == "calm"
            and c.news >= th.news
            and not doubting
            and not c.ends_with_question
        )
        labels["subjectivity"] = "objective" if objective else "subjective"
        labels["intent"] = "question" if asking and state != "positive" else self._intent(c, objective)
        margin = abs(pos - neg) if state != "neutral" else max(0.0, th.polar - max(pos, neg))
        return labels, _confidence(margin)

    @staticmethod
    def _debunk_labels(angry: bool) -> dict[str, str]:
        return {
            "state": "negative",
            "sentiment": "angry" if angry else "calm",
            "stance": "oppose",
            "belief": "doubt",
            "rumor": "counter",
            "subjectivity": "subjective",
            "intent": "opinion",
        }

    def _sentiment(self, state: str, c: Cues, bewildered: bool = False) -> str:
        th = self.thresholds
        if bewildered:  # "???", "?!": astonishment without words
            return "surprise"
        if state == "positive":
            return "happy" if c.happy >= c.hope else "calm"
        emotions = {"angry": c.anger + c.sarcasm, "sad": c.sad, "fear": c.fear}
        best = max(emotions, key=emotions.get)
        if c.surprise >= th.surprise and c.surprise > emotions[best]:
            return "surprise"
        if state == "negative":
            return best if emotions[best] > 0 else "angry"
        return "calm"

    @staticmethod
    def _stance(state: str, c: Cues, tone: str) -> str:
        if state == "positive":
            return "support"
        if state == "negative" and (c.doubt >= 1.5 or c.debunk >= 1.0 or c.disagree >= 1.5):
            return "oppose"
        if state == "negative" and tone == "outrage":
            return "support"
        return "neutral"

    def _intent(self, c: Cues, objective: bool) -> str:
        if objective or c.promotion >= 2.5:
            return "promotion"
        return "opinion"

    def _tie_break(self, opinion: str, news: float) -> str:
        """snownlp on longer cue-less (or balanced) texts, only where it is very sure."""
        th = self.thresholds
        if not self.use_snownlp or self._snownlp_failed or len(opinion) < th.snownlp_min_chars or news >= th.news:
            return "neutral"
        try:
            if self._snow is None:
                from mfmdp.annotate.snowsent import SnowSentiment

                self._snow = SnowSentiment()
            s = self._snow.probability(opinion[:200])
        except Exception as err:  # a broken snownlp/jieba install must not stop annotation
            log.warning("snownlp sentiment unavailable (%s): ties stay neutral", err)
            self._snownlp_failed = True
            return "neutral"
        if s >= th.snownlp_high:
            return "positive"
        if s <= th.snownlp_low:
            return "negative"
        return "neutral"


def _digest(lex: dict[str, Lexicon], thresholds: Thresholds) -> str:
    h = hashlib.sha256(repr(thresholds).encode())
    for name in sorted(lex):
        h.update(name.encode())
        h.update(repr(sorted(lex[name].cues.items())).encode())
    return h.hexdigest()[:10]


def _only_marks(text: str) -> bool:
    return bool(text) and all(ch in "?!.~ " for ch in text)


def _confidence(margin: float) -> float:
    """Map a cue-score margin to (0.5, 0.95): bigger margins, surer labels."""
    return float(0.5 + 0.45 * (1.0 - math.exp(-max(margin, 0.0) / 2.0)))
