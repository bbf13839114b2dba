"""The one prepare stage: load -> split -> label -> step -> embed, for every command that trains or
simulates (`mfmdp run`, `mfmdp train transition|policy`, `mfmdp simulate`, the Ray runner).

One config decides everything: which events (data.path or synthetic), which side each is on (the split
file or a seeded event-level split, then data.min_responses and data.max_events per side, in that order),
how they are labelled (annotator; "truth" = labels stored with the events) and stepped (step_size, the
signal rule, a scenario file), and how their texts are embedded (encoder).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from mfmdp.core.records import Event
from mfmdp.core.schema import Labels
from mfmdp.data.split import Split
from mfmdp.data.stepping import Steps, make_steps, verified_institution_rule

log = logging.getLogger(__name__)

SIDES = ("train", "validation", "test")


@dataclass
class PreparedEvent:
    event: Event
    steps: Steps
    labels: Labels  # real labels of every slot (behavior from the data)
    embeddings: np.ndarray  # float32 [n, D] of every slot's text


@dataclass
class Prepared:
    """The prepared sides of a data set and the parts that made them (reused by training and simulation)."""

    sides: dict[str, list[PreparedEvent]]
    encoder: object
    annotator: object | None  # None: the events' own labels ("truth")
    split: Split | None = None
    events: dict[str, list[Event]] = field(default_factory=dict)  # side -> events, before labelling


def load_events(cfg, path: str | None = None, progress: bool = True) -> list[Event]:
    """The config's events: `path` (default data.path), or the synthetic generator's when there is none."""
    from mfmdp.data import load

    path = path if path is not None else cfg.data.path
    if path is None:
        from mfmdp.data.synthetic import generate_events

        syn = cfg.data.synthetic
        return generate_events(syn.n_events, (syn.min_responses, syn.max_responses), seed=syn.seed)
    return load(path, progress=progress)


def make_event_split(cfg, events: list[Event]) -> Split:
    from mfmdp.data.split import load_split, make_split

    if cfg.data.split:
        return load_split(cfg.data.split)
    return make_split(events, seed=cfg.seed, fractions=cfg.data.fractions)


def side_events(cfg, split: Split, events: list[Event], side: str) -> list[Event]:
    """The events of one side, then the min_responses filter, then the max_events cap (always after
    the split, so every command sees the same events on each side)."""
    chosen = [e for e in split.select(events, side) if len(e) >= cfg.data.min_responses]
    return chosen if cfg.data.max_events is None else chosen[: cfg.data.max_events]


def evaluation_subset(items: Sequence, k: int | None) -> list:
    """`k` items evenly spread over `items` (first and last included), or all of them when k is None or
    not smaller: a fixed subset that keeps the side's spread of dates."""
    items = list(items)
    if k is None or k >= len(items):
        return items
    if k == 1:
        return items[:1]
    return [items[i] for i in sorted({round(j * (len(items) - 1) / (k - 1)) for j in range(k)})]


def signal_rule(cfg):
    return verified_institution_rule if cfg.data.signal_rule == "verified_institution" else None


def steps_for(cfg, event: Event, scenario=None) -> Steps:
    """The event's steps under the config (step size, signal rule) with optional injected signals."""
    return make_steps(event, cfg.data.step_size, signal_rule=signal_rule(cfg), scenario=scenario)


def get_parts(cfg, cache: Path):
    """(encoder, annotator or None for "truth") of the config, caching under `cache`."""
    from mfmdp.annotate.registry import get_annotator
    from mfmdp.encoders import get_encoder

    encoder = get_encoder(cfg.encoder, cache_dir=str(cache / "embeddings"))
    annotator = None if cfg.annotator.kind == "truth" else get_annotator(cfg.annotator, cache_dir=str(cache))
    return encoder, annotator


def prepare_events(cfg, events: Sequence[Event], annotator, encoder, cache: Path | None,
                   progress: bool = True) -> list[PreparedEvent]:
    """Label, step and embed `events` (labels reused from the store under `cache`/labels, or from a
    labels file beside cached data)."""
    from mfmdp.annotate.store import event_labels
    from mfmdp.data.scenario import load_scenario

    scenario = load_scenario(cfg.data.scenario) if cfg.data.scenario else None
    data_path = Path(cfg.data.path) if cfg.data.path else None
    labels = event_labels(events, annotator, data_path, progress=progress,
                          store_dir=cache / "labels" if cache is not None and annotator is not None else None)
    out = []
    for e, lab in zip(events, labels):
        emb = encoder.encode([str(t) for t in e.table.texts])
        out.append(PreparedEvent(e, steps_for(cfg, e, scenario), lab, emb))
    return out


def select_sides(cfg, sides: Sequence[str] = SIDES, test_data: str | None = None,
                 progress: bool = True) -> tuple[Split, dict[str, list[Event]]]:
    """Load the config's events and split them: (the split, side -> events). `test_data` replaces the
    test side by other events (all of them, after the min_responses filter)."""
    events = load_events(cfg, progress=progress)
    split = make_event_split(cfg, events)
    chosen = {side: side_events(cfg, split, events, side) for side in sides}
    if test_data is not None and "test" in chosen:
        chosen["test"] = [e for e in load_events(cfg, test_data, progress) if len(e) >= cfg.data.min_responses]
    log.info("events: %s", {k: len(v) for k, v in chosen.items()})
    return split, chosen


def prepare_sides(cfg, split: Split, chosen: dict[str, list[Event]], cache: Path, progress: bool = True) -> Prepared:
    encoder, annotator = get_parts(cfg, cache)
    prepared = {side: prepare_events(cfg, evs, annotator, encoder, cache, progress) for side, evs in chosen.items()}
    return Prepared(prepared, encoder, annotator, split, chosen)


def prepare(cfg, cache: Path, sides: Sequence[str] = SIDES, test_data: str | None = None,
            progress: bool = True) -> Prepared:
    """select_sides then prepare_sides: the config's events, split, labelled, stepped and embedded."""
    split, chosen = select_sides(cfg, sides, test_data, progress)
    return prepare_sides(cfg, split, chosen, cache, progress)
