"""Weibo response text, taken apart: the responder's own words, the forwarded chain, the noise.

A repost reads "own words//@user1: their words//@user2: ...". The responder wrote only the part
before the first "//@"; when that part is empty, the response endorses the nearest non-empty chain
segment (annotators label such a repost by that segment). Replies may start with "回复@user:".
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from mfmdp.annotate.lexicons import normalise

_REPLY_PREFIX = re.compile(r"^\s*回复\s*@[^:：\s]{1,40}[:：]")
_URL = re.compile(r"https?://\S+|www\.\S+|\bt\.cn/\S+")
# Platform furniture that carries no opinion: link stubs, picture stubs, "X的微博视频" video cards.
_FURNITURE = re.compile(r"网页链接|[¡!]?查看图片|\bl?\S{0,24}的微博视频|\S{0,24}的秒拍视频|\(?分享自@\S+\)?")
_MENTION = re.compile(r"@[\w\u4e00-\u9fff\-·_]{1,30}")
_HASHTAG = re.compile(r"#[^#]{1,60}#")
_HEADLINE = re.compile(r"【[^【】]{0,200}】")
_LEADING_PUNCT = re.compile(r"^[\s:：,，.。、;；/]+")
_SPACE = re.compile(r"\s+")


@dataclass(frozen=True)
class ParsedText:
    text: str  # normalised full text
    own: str  # the responder's own words, cleaned (mentions, links, furniture removed)
    chain: tuple[str, ...]  # cleaned forwarded segments, nearest first
    effective: str  # what a reader labels: own words, else the nearest non-empty chain segment
    from_chain: bool  # effective text was taken from the chain
    opinion: str  # effective text without copied headlines and hashtags: the words that judge


def clean(segment: str) -> str:
    s = _URL.sub(" ", segment)
    s = _FURNITURE.sub(" ", s)
    s = _MENTION.sub(" ", s)
    s = _LEADING_PUNCT.sub("", s)
    return _SPACE.sub(" ", s).strip()


def strip_copied(text: str) -> str:
    """Remove 【headlines】 and #hashtags#: copied from the source, they are not the responder's view."""
    s = _HEADLINE.sub(" ", text)
    s = _HASHTAG.sub(" ", s)
    return _SPACE.sub(" ", s).strip(" ,，.。!！:：")


def parse(text: str | None, bare: frozenset[str] | set[str] = frozenset()) -> ParsedText:
    t = normalise(text or "")
    t = _REPLY_PREFIX.sub("", t)
    own_raw, *chain_raw = t.split("//@")
    own = clean(own_raw)
    chain = []
    for seg in chain_raw:
        # "user: words" -> words; a segment without a colon is a mention fragment, no words.
        _, sep, words = seg.partition(":")
        chain.append(clean(words) if sep else "")
    effective, from_chain = own, False
    if not own or own in bare:
        for seg in chain:
            if seg and seg not in bare:
                effective, from_chain = seg, True
                break
        else:
            effective = own
    return ParsedText(t, own, tuple(chain), effective, from_chain, strip_copied(effective))
