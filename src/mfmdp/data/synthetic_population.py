"""Synthetic users: repeat and one-off authors, heavy-tailed profiles, verified people and institutions.

Vectorised: per-user arrays are drawn with numpy, then turned into `Profile` records once per user
(repeat users share one Profile object across their responses).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timezone

import numpy as np

from mfmdp.core.records import Profile
from mfmdp.data.synthetic_texts import DESCRIPTIONS, INSTITUTION_SUFFIXES, MEDIA, PROVINCES, VERIFIED_REASONS, nicknames

_EPOCH_2009 = datetime(2009, 8, 14, tzinfo=timezone.utc).timestamp()
_EPOCH_2020 = datetime(2020, 1, 1, tzinfo=timezone.utc).timestamp()


@dataclass
class Population:
    slot_user: np.ndarray  # int64 [n]: user index of each response slot
    user_ids: list[str]
    screen_names: list[str]
    followers: np.ndarray  # int64 [U]
    institution: np.ndarray  # bool [U]: verified organisation account (verified_type 1..7)
    profiles: list[Profile]

    @property
    def n_users(self) -> int:
        return len(self.user_ids)


def assign_users(
    rng: np.random.Generator, n: int, repeat_fraction: float, repeat_pool: float, zipf: float = 1.3
) -> tuple[np.ndarray, int]:
    """Slot -> user index: a Zipf-weighted pool of repeat users, everyone else a one-off author."""
    pool = max(3, int(round(n * repeat_pool)))
    from_pool = rng.random(n) < repeat_fraction
    w = 1.0 / np.arange(1, pool + 1) ** zipf
    users = np.empty(n, dtype=np.int64)
    users[from_pool] = rng.choice(pool, size=int(from_pool.sum()), p=w / w.sum())
    n_one = int((~from_pool).sum())
    users[~from_pool] = pool + np.arange(n_one)
    return users, pool + n_one


def make_population(
    rng: np.random.Generator,
    slot_user: np.ndarray,
    n_users: int,
    *,
    id_prefix: str,
    place: str,
    verified_share: float,
    institution_users: np.ndarray,
    institution_names: dict[int, tuple[str, int]] | None = None,
) -> Population:
    """Profiles for n_users; `institution_users` are verified organisations (named per `institution_names`
    {user: (screen name, verified_type)} or from templates)."""
    U = n_users
    inst = np.zeros(U, dtype=bool)
    inst[institution_users] = True
    followers = np.floor(rng.lognormal(math.log(120), 1.9, U)).astype(np.int64)
    person_v = (rng.random(U) < verified_share) & ~inst
    followers[person_v] = followers[person_v] * 40 + 10_000
    followers[inst] = np.floor(rng.lognormal(math.log(2e6), 1.0, int(inst.sum()))).astype(np.int64)
    friends = np.clip(np.floor(rng.lognormal(math.log(280), 0.9, U)), 0, 5000).astype(np.int64)
    statuses = np.floor(rng.lognormal(math.log(1800), 1.3, U)).astype(np.int64)
    favourites = np.floor(rng.lognormal(math.log(250), 1.7, U)).astype(np.int64)
    bi = np.floor(np.minimum(friends, followers) * rng.beta(2, 5, U)).astype(np.int64)
    gender_m = rng.random(U) < 0.47
    has_desc = rng.random(U) < 0.45
    desc_i = rng.integers(0, len(DESCRIPTIONS), U)
    loc_i = rng.integers(0, len(PROVINCES), U)
    reason_i = rng.integers(0, len(VERIFIED_REASONS), U)
    created = rng.uniform(_EPOCH_2009, _EPOCH_2020, U).astype(np.int64)
    names = nicknames(rng, U)
    inst_kind = rng.integers(0, len(INSTITUTION_SUFFIXES), U)
    media_i = rng.integers(0, len(MEDIA), U)
    fixed = institution_names or {}
    taken = {name for name, _ in fixed.values()}
    user_ids = [f"{id_prefix}u{k:07d}" for k in range(U)]
    profiles: list[Profile] = []
    cols = zip(followers.tolist(), friends.tolist(), statuses.tolist(), favourites.tolist(), bi.tolist(),
               gender_m.tolist(), has_desc.tolist(), desc_i.tolist(), loc_i.tolist(), reason_i.tolist(),
               created.tolist(), person_v.tolist(), inst.tolist(), inst_kind.tolist(), media_i.tolist())
    for k, (fo, fr, st, fa, b, m, hd, di, li, ri, cr, pv, ins, ik, mi) in enumerate(cols):
        if ins:
            vtype, tmpl = INSTITUTION_SUFFIXES[ik]
            name = tmpl.format(place=place, media=MEDIA[mi])
            if k in fixed:
                name, vtype = fixed[k]
            elif name in taken:  # never impersonate the event's official account
                vtype, name = 3, MEDIA[mi]
            names[k] = name
            profiles.append(Profile(
                followers=fo, friends=fr, statuses=st * 10, favourites=fa, bi_followers=b, gender=None,
                verified=True, verified_type=vtype, verified_reason=f"{name}官方微博", description=f"{name}官方微博",
                location=PROVINCES[li], screen_name=name,
                created_at=datetime.fromtimestamp(cr, tz=timezone.utc)))
            continue
        profiles.append(Profile(
            followers=fo, friends=fr, statuses=st, favourites=fa, bi_followers=b, gender="m" if m else "f",
            verified=pv, verified_type=0 if pv else -1, verified_reason=VERIFIED_REASONS[ri] if pv else None,
            description=DESCRIPTIONS[di] if hd else None, location=PROVINCES[li], screen_name=names[k],
            created_at=datetime.fromtimestamp(cr, tz=timezone.utc)))
    return Population(slot_user=slot_user, user_ids=user_ids, screen_names=names, followers=followers,
                      institution=inst, profiles=profiles)
