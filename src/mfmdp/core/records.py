"""Typed records of an event and a columnar view of its responses for the hot path.

Records are what loaders produce and what users inspect; the simulator and the models read
`ResponseTable`, a struct of numpy arrays, never lists of Python objects.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import cached_property

import numpy as np

BEHAVIORS: tuple[str, ...] = ("share", "comment")
SHARE, COMMENT = 0, 1

# The platform's text for a repost with nothing added: empty reposts are normalised to it.
BARE_REPOST_TEXT = "转发微博"


@dataclass(frozen=True, slots=True)
class Profile:
    """What a source knows about a response's author. Every field is optional."""

    followers: int | None = None
    friends: int | None = None
    statuses: int | None = None
    favourites: int | None = None
    bi_followers: int | None = None
    gender: str | None = None  # "m" | "f"
    verified: bool | None = None
    verified_type: int | None = None
    verified_reason: str | None = None
    description: str | None = None
    location: str | None = None
    screen_name: str | None = None
    created_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Signal:
    """An exogenous message (official clarification, debunk, media report) at a time."""

    time: datetime
    source: str
    text: str


@dataclass(slots=True)
class Response:
    id: str
    time: datetime  # timezone-aware UTC
    user_id: str
    text: str
    behavior: str  # "share" | "comment"
    parent: str | None = None
    reposts: int | None = None
    comments: int | None = None
    likes: int | None = None
    profile: Profile | None = None


@dataclass(slots=True)
class SourcePost:
    id: str
    time: datetime
    user_id: str
    text: str
    profile: Profile | None = None


@dataclass
class Event:
    """One source post and its time-ordered, de-duplicated responses."""

    id: str
    format: str
    topic: SourcePost
    responses: list[Response]
    signals: list[Signal] = field(default_factory=list)
    metadata: dict = field(default_factory=dict)
    skipped: dict[str, int] = field(default_factory=dict)  # reason -> count of skipped records
    path: str | None = None

    @cached_property
    def table(self) -> "ResponseTable":
        return ResponseTable.from_responses(self.responses)

    def __len__(self) -> int:
        return len(self.responses)


# --- profile features: one fixed vector layout shared by every model -----------------------------
PROFILE_FEATURES: tuple[str, ...] = (
    "has_profile",
    "log_followers",
    "log_friends",
    "log_statuses",
    "verified",
    "verified_person",  # verified_type == 0 (individual)
    "verified_org",  # verified_type in 1..7 (government, media, institution ...)
    "gender_m",
    "gender_f",
    "has_description",
)


def profile_features(profile: Profile | None) -> np.ndarray:
    v = np.zeros(len(PROFILE_FEATURES), dtype=np.float32)
    if profile is None:
        return v

    def lg(x: int | None) -> float:
        return math.log1p(max(x, 0)) / 10.0 if x is not None else 0.0

    vt = profile.verified_type
    v[:] = (
        1.0,
        lg(profile.followers),
        lg(profile.friends),
        lg(profile.statuses),
        1.0 if profile.verified else 0.0,
        1.0 if vt == 0 else 0.0,
        1.0 if vt is not None and 1 <= vt <= 7 else 0.0,
        1.0 if profile.gender == "m" else 0.0,
        1.0 if profile.gender == "f" else 0.0,
        1.0 if profile.description else 0.0,
    )
    return v


# Ids that name no user: empty, or the md5 of the empty string (on 57% of CHECKED responses).
MISSING_USER_IDS = frozenset({"", "d41d8cd98f00b204e9800998ecf8427e"})


def author_index(user_ids) -> np.ndarray:
    """int64 [n]: one number per distinct author of an event (in order of first appearance), -1 where
    the id is missing, so that "the same author responded before" never pairs two unknown users."""
    seen: dict[str, int] = {}
    out = np.full(len(user_ids), -1, dtype=np.int64)
    for i, uid in enumerate(user_ids):
        if uid is not None and str(uid) not in MISSING_USER_IDS:
            out[i] = seen.setdefault(str(uid), len(seen))
    return out


def to_utc(dt: datetime) -> datetime:
    if dt.tzinfo is None:
        raise ValueError(f"naive datetime {dt!r}: loaders must attach the source's timezone")
    return dt.astimezone(timezone.utc)


@dataclass
class ResponseTable:
    """Columnar view of an event's responses, in time order (ties by id)."""

    ids: np.ndarray  # object[str]
    times: np.ndarray  # float64 unix seconds (UTC)
    user_ids: np.ndarray  # object[str]
    texts: np.ndarray  # object[str]
    behavior: np.ndarray  # int8, index into BEHAVIORS
    parents: np.ndarray  # object[str | None]
    profiles: np.ndarray  # float32 [n, len(PROFILE_FEATURES)]
    likes: np.ndarray  # float64, nan when unknown

    def __len__(self) -> int:
        return len(self.ids)

    @classmethod
    def from_responses(cls, responses: list[Response]) -> "ResponseTable":
        n = len(responses)
        prof = np.zeros((n, len(PROFILE_FEATURES)), dtype=np.float32)
        for i, r in enumerate(responses):
            if r.profile is not None:
                prof[i] = profile_features(r.profile)
        return cls(
            ids=np.array([r.id for r in responses], dtype=object),
            times=np.array([r.time.timestamp() for r in responses], dtype=np.float64),
            user_ids=np.array([r.user_id for r in responses], dtype=object),
            texts=np.array([r.text for r in responses], dtype=object),
            behavior=np.array([BEHAVIORS.index(r.behavior) for r in responses], dtype=np.int8),
            parents=np.array([r.parent for r in responses], dtype=object),
            profiles=prof,
            likes=np.array([np.nan if r.likes is None else r.likes for r in responses], dtype=np.float64),
        )
