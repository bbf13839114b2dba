"""Weibo-aware text features for the distilled annotator: fast, deterministic, saved as plain arrays.

A response text on Weibo is "own words//@user: forwarded words//@user2: ...". The responder's own
words (before the first "//@") carry most of the label; the forwarded chain matters when the own
part is empty (a bare repost of a debunk is still a debunk). Feature blocks, all sparse:

- own:   hashed character 1-3-grams of the cleaned own words, sublinear tf * idf, L2-normalised;
- chain: the same for the forwarded chain (its own hash space, so the model can weigh it apart);
- cues:  counts of lexicon cues (doubt, question, promotion, emotions, ...) in own words and chain,
         Weibo emoji codes like [泪] mapped to their emotion, punctuation, length and bare-repost flags;
- topic: cue flags of the topic (source post) and their crossings with the response's cues, so that
         "support" of a debunk and "support" of a rumour can be told apart;
- offline: the rule-based offline annotator's labels (one-hot), its confidence and its lexicon family
         scores: hand-written Weibo knowledge the heads can weigh (+2 points state macro-F1 in CV);
- words (off by default): jieba word 1-2-grams (no gain in CV, slower).

Hashing (murmurhash, stateless) keeps the vocabulary out of the checkpoint: the only fitted state is
one idf vector per hashed block. Rows depend on the topic only through `FeatureExtractor.topic_key`.
"""

from __future__ import annotations

import logging
import re
from dataclasses import asdict, dataclass
from typing import Sequence

import numpy as np
import scipy.sparse as sp
from sklearn.feature_extraction.text import HashingVectorizer

from mfmdp.core.records import BARE_REPOST_TEXT

# Texts the platform (or a client) writes for a repost with nothing added.
BARE_REPOST_TEXTS = frozenset({"", BARE_REPOST_TEXT, "轉發微博", "repost", "转发", "快转微博", "轉發"})

_URL = re.compile(r"https?://\S+|www\.\S+")
_NOISE = re.compile(r"¡查看图片|查看图片|网页链接|\S{0,20}的微博视频|[\u200b\u200c\u200d\ufeff]")
_MENTION = re.compile(r"@[\w\u4e00-\u9fff\-·]{1,30}[:：]?")
_EMOJI_CODE = re.compile(r"\[([^\[\]\s]{1,8})\]")
_SPACE = re.compile(r"\s+")

# Cue lexicons. Substrings of the cleaned text (lower-cased), counted. Kept short and generic: they
# describe Weibo language, not any labelled item.
CUES: dict[str, tuple[str, ...]] = {
    "positive": (
        "加油", "支持", "点赞", "赞", "棒", "好样", "感谢", "谢谢", "致敬", "辛苦", "平安", "祝福",
        "祈祷", "希望", "期待", "厉害", "威武", "感动", "好消息", "太好了", "开心", "可爱", "喜欢",
        "英雄", "骄傲", "必胜", "挺住", "顺利", "保重", "康复", "给力", "真好", "好人", "温暖", "暖心",
        "👍", "❤", "💪", "🙏", "🌹", "respect", "冲鸭", "一起", "共同", "团结", "感恩", "佩服", "牛",
    ),
    "negative": (
        "垃圾", "恶心", "滚", "傻", "脑残", "无耻", "可耻", "丢人", "呵呵", "活该", "该死", "畜生",
        "混蛋", "骗子", "坑", "气死", "愤怒", "无语", "服了", "过分", "有病", "智障", "奇葩", "变态",
        "卧槽", "他妈", "tm", "狗", "凭什么", "严惩", "枪毙", "追责", "死", "惨", "痛", "怒", "骂",
        "恨", "可怕", "害怕", "担心", "心疼", "难过", "伤心", "哭", "悲", "唉", "哎", "不行", "完了",
        "糟", "烂", "差", "废", "蠢", "low", "醉了", "笑死", "贱", "黑心", "缺德", "良心",
    ),
    "doubt": (
        "谣言", "造谣", "辟谣", "假的", "假新闻", "不实", "假消息", "真的吗", "真的假的", "是真的吗",
        "求证", "骗", "不可信", "不信", "胡说", "瞎说", "扯", "谣", "谎", "虚假", "误导", "别信",
        "不要信", "不靠谱", "ps", "p图", "标题党", "以讹传讹", "澄清", "假", "真假", "属实", "有图有真相",
        "是不是真", "信吗", "鬼才信", "编的", "瞎编", "乱说", "假消息", "已辟谣", "不是真",
    ),
    "question": (
        "?", "？", "吗", "呢", "么", "为什么", "为啥", "怎么", "什么时候", "哪里", "哪儿", "谁", "多少",
        "是否", "有没有", "能不能", "求问", "请问", "难道", "咋", "啥",
    ),
    "promotion": (
        "转发", "扩散", "快转", "求转", "帮转", "分享", "关注", "转起来", "周知", "提醒", "大家注意",
        "链接", "视频", "【", "#", "http", "抽奖", "报名", "私信", "戳", "详情", "速看", "必看",
    ),
    "sad": (
        "泪", "哭", "心疼", "难过", "伤心", "哀悼", "一路走好", "安息", "节哀", "rip", "悲", "痛心",
        "可怜", "唉", "哎", "蜡烛", "呜", "难受", "心酸", "遗憾", "走好",
    ),
    "fear": ("害怕", "可怕", "恐怖", "吓", "怕", "担心", "恐慌", "慌", "紧张", "瑟瑟发抖", "😱", "危险"),
    "surprise": (
        "天哪", "天啊", "我的天", "卧槽", "震惊", "竟然", "居然", "没想到", "惊", "吃惊", "what",
        "😮", "啊？", "真的假", "不会吧", "我去", "妈呀",
    ),
    "angry": (
        "怒", "气", "愤", "滚", "垃圾", "恶心", "无耻", "可耻", "混蛋", "畜生", "严惩", "该死", "枪毙",
        "凭什么", "过分", "有病", "傻逼", "sb", "骂", "去死", "耻辱", "败类", "黑心", "缺德",
    ),
    "happy": ("哈哈", "嘻嘻", "开心", "高兴", "太好了", "可爱", "笑", "好玩", "有趣", "爽", "😂", "😄", "✌"),
    "subjective": (
        "我", "觉得", "认为", "感觉", "希望", "应该", "太", "真", "啊", "吧", "呀", "哈", "!", "！",
        "好", "想", "讨厌", "喜欢", "必须", "竟", "简直",
    ),
    "objective": (
        "通报", "新增", "确诊", "病例", "据", "报道", "消息", "记者", "发布", "显示", "截至", "累计",
        "日", "月", "时", "例", "%", "万", "官方", "卫健委", "通知", "公告",
    ),
}

# Weibo emoji codes (the text inside [..]) by the emotion they usually carry.
EMOJI_CUES: dict[str, tuple[str, ...]] = {
    "happy": ("哈哈", "嘻嘻", "偷笑", "太开心", "可爱", "亲亲", "爱你", "鼓掌", "耶", "笑cry", "笑哭", "doge",
              "二哈", "馋嘴", "兔子", "good", "赞", "给力", "威武", "心", "加油", "抱抱", "握手", "作揖",
              "玫瑰", "赞啊", "太阳", "礼物", "干杯", "酷", "憧憬", "星星眼", "送花花"),
    "sad": ("泪", "伤心", "悲伤", "蜡烛", "心碎", "失望", "可怜", "委屈", "允悲", "泪目", "悲哀", "哭",
            "大哭", "拜拜", "晕"),
    "angry": ("怒", "怒骂", "鄙视", "吐", "抓狂", "哼", "白眼", "左哼哼", "右哼哼", "弱", "no", "打脸",
              "生气", "愤怒", "微笑", "呵呵", "挖鼻", "不屑"),
    "fear": ("生病", "口罩", "害怕", "惊恐", "汗", "衰"),
    "surprise": ("吃惊", "费解", "黑线", "问号", "疑问", "思考", "吃瓜", "what", "震惊"),
}

# Topic (source post) cues: what kind of post is being responded to.
TOPIC_CUES: dict[str, tuple[str, ...]] = {
    "debunk": ("辟谣", "谣言", "不实", "网传", "澄清", "造谣", "虚假", "假消息", "假的", "真相", "求证"),
    "news": ("【", "通报", "新增", "确诊", "据", "报道", "记者", "发布", "截至", "累计", "卫健委"),
    "tragic": ("死亡", "去世", "逝世", "牺牲", "遇难", "病逝", "离世", "殉职", "悼念"),
    "hero": ("医护", "医生", "护士", "援鄂", "驰援", "英雄", "志愿者", "捐", "支援", "感谢"),
    "scandal": ("被查", "违纪", "处理", "拘留", "涉嫌", "倒卖", "骗", "非法", "问责", "免职"),
    "question": ("?", "？", "吗", "为什么", "怎么"),
    "foreign": ("美国", "日本", "意大利", "英国", "特朗普", "欧洲", "韩国", "印度"),
}
RESPONSE_CUES_FOR_CROSSING = ("positive", "negative", "doubt", "question", "angry", "sad")


@dataclass(frozen=True)
class FeatureConfig:
    """What the extractor computes; stored as JSON beside the weights."""

    ngram_min: int = 1
    ngram_max: int = 3
    own_bits: int = 18
    chain_bits: int = 16
    chain_weight: float = 0.5
    cue_weight: float = 1.0
    topic_weight: float = 1.0
    use_chain: bool = True
    use_cues: bool = True
    use_topic: bool = True
    use_words: bool = False  # jieba word 1-2-grams of the own words (slower: jieba segmentation)
    word_bits: int = 16
    word_weight: float = 0.5
    emoji_ngrams: bool = False  # keep emoji codes ("[泪]") in the own-words n-grams, not only as cues
    use_offline: bool = True  # the offline annotator's labels + its lexicon scores as features
    offline_weight: float = 1.0

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, obj: dict) -> "FeatureConfig":
        known = {k: v for k, v in obj.items() if k in cls.__dataclass_fields__}
        return cls(**known)


@dataclass(frozen=True)
class SplitText:
    own: str  # cleaned own words ("" for a bare repost)
    chain: str  # cleaned forwarded words
    emojis: tuple[str, ...]  # emoji codes in the own words
    chain_emojis: tuple[str, ...]
    bare: bool  # nothing of the responder's own
    has_chain: bool
    raw_own_len: int


def _clean(text: str) -> str:
    text = _URL.sub(" ", text)
    text = _NOISE.sub(" ", text)
    text = _MENTION.sub(" ", text)
    return _SPACE.sub(" ", text).strip().lower()


def split_weibo(text: str) -> SplitText:
    """Split a response into the responder's own words and the forwarded chain, cleaned."""
    text = text or ""
    head, sep, tail = text.partition("//@")
    own_raw = head.strip().lstrip(":：").strip()
    own_emojis = tuple(_EMOJI_CODE.findall(own_raw))
    chain_emojis = tuple(_EMOJI_CODE.findall(tail))
    own = _clean(_EMOJI_CODE.sub(" ", own_raw))
    chain = _clean(_EMOJI_CODE.sub(" ", tail)) if sep else ""
    bare = own_raw.lower() in BARE_REPOST_TEXTS or (not own and not own_emojis)
    return SplitText(own, chain, own_emojis, chain_emojis, bare, bool(sep), len(own_raw))


def _cue_counts(text: str, emojis: Sequence[str]) -> np.ndarray:
    out = np.zeros(len(CUES) + len(EMOJI_CUES), dtype=np.float32)
    for i, words in enumerate(CUES.values()):
        out[i] = sum(text.count(w) for w in words)
    for j, codes in enumerate(EMOJI_CUES.values()):
        out[len(CUES) + j] = sum(1 for e in emojis if e.lower() in codes)
    return out


def topic_flags(topic: str) -> np.ndarray:
    """Binary cue flags of a topic text (one per TOPIC_CUES entry)."""
    t = (topic or "").lower()
    return np.array([float(any(w in t for w in words)) for words in TOPIC_CUES.values()], np.float32)


N_CUE = len(CUES) + len(EMOJI_CUES)
_CROSS_IDX = [list(CUES).index(c) for c in RESPONSE_CUES_FOR_CROSSING]
# own cues, chain cues, 8 shape features
N_DENSE = 2 * N_CUE + 8
N_TOPIC = len(TOPIC_CUES) + len(TOPIC_CUES) * (len(RESPONSE_CUES_FOR_CROSSING) + 1)


def dense_features(parts: Sequence[SplitText]) -> np.ndarray:
    """Cue counts (log-scaled) and shape features, one row per split text."""
    out = np.zeros((len(parts), N_DENSE), dtype=np.float32)
    for i, p in enumerate(parts):
        out[i, :N_CUE] = _cue_counts(p.own, p.emojis)
        out[i, N_CUE : 2 * N_CUE] = _cue_counts(p.chain, p.chain_emojis)
        n = len(p.own)
        out[i, 2 * N_CUE :] = (
            float(p.bare),
            float(p.has_chain),
            float(p.bare and p.has_chain),
            float(n == 0),
            np.log1p(n) / 5.0,
            float(n > 40),
            float(len(p.emojis) > 0 and n == 0),  # emoji-only answer
            np.log1p(len(p.chain)) / 5.0,
        )
    np.log1p(out[:, : 2 * N_CUE], out=out[:, : 2 * N_CUE])
    return out


def topic_features(dense: np.ndarray, flags: np.ndarray) -> np.ndarray:
    """Topic flags, plus their crossings with the response's own cue presence and bare flag."""
    n = dense.shape[0]
    own_cues = (dense[:, _CROSS_IDX] > 0).astype(np.float32)
    bare = dense[:, 2 * N_CUE : 2 * N_CUE + 1]
    resp = np.concatenate([own_cues, bare], axis=1)  # [n, C+1]
    crossed = (flags[None, :, None] * resp[:, None, :]).reshape(n, -1)
    return np.concatenate([np.broadcast_to(flags, (n, len(flags))), crossed], axis=1)


class FeatureExtractor:
    """Texts (+ their topic) -> sparse feature matrix. Fitted state: idf vectors only."""

    def __init__(self, config: FeatureConfig | None = None) -> None:
        self.config = config or FeatureConfig()
        c = self.config
        kw = dict(analyzer="char", ngram_range=(c.ngram_min, c.ngram_max), alternate_sign=False,
                  norm=None, lowercase=False, dtype=np.float32)
        self._own = HashingVectorizer(n_features=2**c.own_bits, **kw)
        self._chain = HashingVectorizer(n_features=2**c.chain_bits, **kw)
        self._words = HashingVectorizer(n_features=2**c.word_bits, analyzer="word", token_pattern=r"\S+",
                                        ngram_range=(1, 2), alternate_sign=False, norm=None,
                                        lowercase=False, dtype=np.float32)
        self.idf_own: np.ndarray | None = None
        self.idf_chain: np.ndarray | None = None
        self.idf_words: np.ndarray | None = None

    @property
    def n_features(self) -> int:
        c = self.config
        n = 2**c.own_bits
        if c.use_chain:
            n += 2**c.chain_bits
        if c.use_words:
            n += 2**c.word_bits
        if c.use_cues:
            n += N_DENSE
        if c.use_topic:
            n += N_TOPIC
        if c.use_offline:
            n += _offline_block_width()
        return n

    # -- fitting ---------------------------------------------------------------------------------
    def fit(self, texts: Sequence[str]) -> "FeatureExtractor":
        parts = [split_weibo(t) for t in texts]
        self.idf_own = _idf(self._own.transform([self._own_text(p) for p in parts]))
        self.idf_chain = _idf(self._chain.transform([p.chain for p in parts]))
        if self.config.use_words:
            self.idf_words = _idf(self._words.transform(_segment(p.own for p in parts)))
        return self

    def state(self) -> dict[str, np.ndarray]:
        if self.idf_own is None:
            raise RuntimeError("FeatureExtractor is not fitted")
        out = {"idf_own": self.idf_own, "idf_chain": self.idf_chain}
        if self.idf_words is not None:
            out["idf_words"] = self.idf_words
        return out

    @classmethod
    def from_state(cls, config: FeatureConfig, arrays: dict[str, np.ndarray]) -> "FeatureExtractor":
        fx = cls(config)
        fx.idf_own = np.asarray(arrays["idf_own"], np.float32)
        fx.idf_chain = np.asarray(arrays["idf_chain"], np.float32)
        if fx.idf_own.shape != (2**config.own_bits,) or fx.idf_chain.shape != (2**config.chain_bits,):
            raise ValueError("idf arrays do not match the feature config's hash sizes")
        if config.use_words:
            if "idf_words" not in arrays:
                raise ValueError("feature config uses words but no 'idf_words' array was saved")
            fx.idf_words = np.asarray(arrays["idf_words"], np.float32)
        return fx

    def _own_text(self, p: SplitText) -> str:
        if self.config.emoji_ngrams and p.emojis:
            return p.own + " " + "".join(f"[{e.lower()}]" for e in p.emojis)
        return p.own

    def topic_key(self, topic: str) -> bytes:
        """Everything of `topic` the features depend on: equal keys give equal rows for equal texts."""
        key = topic_flags(topic).tobytes() if self.config.use_topic else b""
        if self.config.use_offline:
            key += b"|" + _offline().topic_tone(topic).encode("utf-8")
        return key

    # -- transforming ----------------------------------------------------------------------------
    def transform(self, texts: Sequence[str], topics: Sequence[str] | str) -> sp.csr_matrix:
        """Feature rows for `texts`; `topics` is one topic for all or one per text."""
        if self.idf_own is None:
            raise RuntimeError("FeatureExtractor is not fitted")
        c = self.config
        parts = [split_weibo(t) for t in texts]
        blocks = [_tfidf(self._own.transform([self._own_text(p) for p in parts]), self.idf_own)]
        if c.use_chain:
            chain = _tfidf(self._chain.transform([p.chain for p in parts]), self.idf_chain)
            blocks.append(chain * c.chain_weight)
        if c.use_words:
            words = _tfidf(self._words.transform(_segment(p.own for p in parts)), self.idf_words)
            blocks.append(words * c.word_weight)
        if c.use_cues or c.use_topic:
            dense = dense_features(parts)
            if c.use_cues:
                blocks.append(sp.csr_matrix(dense * c.cue_weight))
            if c.use_topic:
                blocks.append(sp.csr_matrix(self._topic_block(dense, topics, len(parts)) * c.topic_weight))
        if c.use_offline:
            blocks.append(sp.csr_matrix(offline_features(texts, topics) * c.offline_weight))
        return sp.hstack(blocks, format="csr", dtype=np.float32)

    def _topic_block(self, dense: np.ndarray, topics: Sequence[str] | str, n: int) -> np.ndarray:
        if isinstance(topics, str):
            return topic_features(dense, topic_flags(topics))
        if len(topics) != n:
            raise ValueError(f"got {len(topics)} topics for {n} texts")
        out = np.zeros((n, N_TOPIC), np.float32)
        # Group rows by topic so each topic's flags are computed once.
        by_topic: dict[str, list[int]] = {}
        for i, t in enumerate(topics):
            by_topic.setdefault(t, []).append(i)
        for t, rows in by_topic.items():
            out[rows] = topic_features(dense[rows], topic_flags(t))
        return out


_OFFLINE = None


def _offline():
    global _OFFLINE
    if _OFFLINE is None:
        from mfmdp.annotate.offline import OfflineAnnotator

        _OFFLINE = OfflineAnnotator()
    return _OFFLINE


def _offline_block_width() -> int:
    from mfmdp.annotate.lexicons import FAMILIES
    from mfmdp.core.schema import DIMENSIONS, TEXT_DIMENSIONS

    return sum(len(DIMENSIONS[d]) for d in TEXT_DIMENSIONS) + 1 + len(FAMILIES)


def offline_features(texts: Sequence[str], topics: Sequence[str] | str) -> np.ndarray:
    """One-hot labels of the rule-based offline annotator, its confidence, and its lexicon scores."""
    from mfmdp.annotate.lexicons import normalise
    from mfmdp.core.schema import DIMENSIONS, TEXT_DIMENSIONS

    ann = _offline()
    n = len(texts)
    if isinstance(topics, str):
        topics = [topics] * n
    out = np.zeros((n, _offline_block_width()), np.float32)
    by_topic: dict[str, list[int]] = {}
    for i, t in enumerate(topics):
        by_topic.setdefault(t, []).append(i)
    for topic, rows in by_topic.items():
        labels = ann.annotate([texts[i] for i in rows], topic)
        col = 0
        for d in TEXT_DIMENSIONS:
            k = len(DIMENSIONS[d])
            codes = labels.codes[d]
            ok = codes >= 0
            out[np.array(rows)[ok], col + codes[ok]] = 1.0
            col += k
        out[rows, col] = labels.confidence
    col += 1
    for i, t in enumerate(texts):
        own = normalise(split_weibo(t).own)
        for j, lex in enumerate(ann.lex.values()):
            out[i, col + j] = np.log1p(lex.score(own)) if own else 0.0
    return out


def _segment(texts) -> list[str]:
    import jieba  # lazy: only the word block needs it

    jieba.setLogLevel(logging.WARNING)
    return [" ".join(w for w in jieba.lcut(t) if w.strip()) for t in texts]


def _idf(counts: sp.csr_matrix) -> np.ndarray:
    n = counts.shape[0]
    df = np.bincount(counts.indices, minlength=counts.shape[1])
    return (np.log((1.0 + n) / (1.0 + df)) + 1.0).astype(np.float32)


def _tfidf(counts: sp.csr_matrix, idf: np.ndarray) -> sp.csr_matrix:
    x = counts.astype(np.float32)
    np.log1p(x.data, out=x.data)  # sublinear tf
    x = x @ sp.diags(idf)
    norms = np.sqrt(np.asarray(x.multiply(x).sum(axis=1)).ravel())
    norms[norms == 0] = 1.0
    return sp.csr_matrix(sp.diags(1.0 / norms) @ x)
