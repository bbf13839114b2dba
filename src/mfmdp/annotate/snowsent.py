"""snownlp's bundled sentiment model, scored fast: its Naive Bayes word counts over jieba tokens.

`SnowNLP(text).sentiments` spends ~1-6 ms per text in snownlp's pure-Python segmenter. The model
itself is a two-class Naive Bayes with add-one word counts, so P(pos | words) only needs one
log-likelihood ratio per word: we take the counts from snownlp's shipped model, segment with jieba
(~40 us per text), drop snownlp's stop words, and memoise each word's ratio. Same model, same
formula; only the segmentation differs (correlation ~0.83 with SnowNLP on Weibo responses).
"""

from __future__ import annotations

import logging
import math


class SnowSentiment:
    """P(positive) of a text under snownlp's product-review sentiment model."""

    def __init__(self) -> None:
        import jieba
        from snownlp import normal, sentiment  # importing loads the bundled model

        jieba.setLogLevel(logging.WARNING)
        bayes = sentiment.classifier.classifier
        try:
            pos, neg = bayes.d["pos"], bayes.d["neg"]
        except KeyError as err:
            raise RuntimeError(f"snownlp's sentiment model lacks class {err}") from None
        self._pos, self._neg = pos, neg
        self._log_total_pos = math.log(pos.getsum())
        self._log_total_neg = math.log(neg.getsum())
        self._prior = self._log_total_pos - self._log_total_neg
        self._stop = normal.stop
        self._cut = jieba.lcut
        self._llr: dict[str, float] = {}

    def word_llr(self, word: str) -> float:
        v = self._llr.get(word)
        if v is None:
            # AddOneProb.freq: count (1 when unseen) / class total.
            v = (math.log(self._pos.get(word)[1]) - self._log_total_pos) - (
                math.log(self._neg.get(word)[1]) - self._log_total_neg
            )
            self._llr[word] = v
        return v

    def probability(self, text: str) -> float:
        z = self._prior
        for w in self._cut(text):
            if w.strip() and w not in self._stop:
                z += self.word_llr(w)
        if z >= 0:
            return 1.0 / (1.0 + math.exp(-min(z, 700.0)))
        e = math.exp(max(z, -700.0))
        return e / (1.0 + e)
