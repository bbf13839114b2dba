"""`mfmdp train transition`: from a data path to a saved f_psi checkpoint and its report.

Steps: load events (any supported format or an mfmdp cache), pick the train/validation sides of a
split (or a seeded event-level split), label states ("truth": labels stored with the events, e.g.
synthetic ground truth; otherwise an annotator, reusing a labels file beside cached data), embed the
texts once, build per-event features, train, save (safetensors + JSON) and write train_report.json.
"""

from __future__ import annotations

import json
import logging
import time
from collections import Counter
from dataclasses import asdict
from pathlib import Path

import numpy as np

from mfmdp.core.records import Event
from mfmdp.data.stepping import make_steps, verified_institution_rule
from mfmdp.transition.features import EventFeatures, event_features

log = logging.getLogger(__name__)

REPORT = "train_report.json"


def event_state_codes(events: list[Event], annotator: str, data_path: Path | None = None,
                      progress: bool = True) -> list[np.ndarray]:
    """State codes per event (aligned with event.table rows); see the module doc for the sources."""
    from mfmdp.annotate.store import event_labels

    return [lab.codes["state"] for lab in event_labels(events, annotator, data_path, progress)]


def build_features(events: list[Event], codes: list[np.ndarray], encoder, step_size: int = 16,
                   signal_rule: str = "verified_institution", decay: float = 0.8,
                   progress: bool = True) -> tuple[list[EventFeatures], Counter]:
    """Features of every usable event; events with < 2 steps or no labelled state are skipped and
    counted (reason -> count)."""
    from rich.progress import Progress

    rule = verified_institution_rule if signal_rule == "verified_institution" else None
    feats, skipped = [], Counter()
    with Progress(transient=True, disable=not progress) as bar:
        task = bar.add_task("embedding + features", total=len(events))
        for e, c in zip(events, codes):
            bar.advance(task)
            if len(e) <= step_size:
                skipped["fewer than 2 steps"] += 1
                continue
            if not (np.asarray(c) >= 0).any():
                skipped["no labelled state"] += 1
                continue
            steps = make_steps(e, size=step_size, signal_rule=rule)
            feats.append(event_features(e, steps, c, encoder, decay=decay))
    for reason, n in skipped.items():
        log.info("transition features: skipped %d event(s): %s", n, reason)
    return feats, skipped


def train_from_data(
    data: str,
    out: str,
    annotator: str = "offline",
    encoder_spec: str = "hash",
    split: str | None = None,
    model_overrides: dict | None = None,
    train_overrides: dict | None = None,
    step_size: int = 16,
    signal_rule: str = "verified_institution",
    max_events: int | None = None,
    cache_dir: str | None = None,
    progress: bool = True,
) -> dict:
    """Train and save f_psi; returns the report also written to OUT/train_report.json."""
    from mfmdp.data import load
    from mfmdp.encoders import get_encoder
    from mfmdp.transition.model import TransitionConfig
    from mfmdp.transition.train import TrainConfig, split_events, train

    t0 = time.perf_counter()
    data_path = Path(data)
    events = load(data_path)
    if not events:
        raise ValueError(f"{data}: no events")
    tcfg = TrainConfig(**(train_overrides or {}))
    if split:
        from mfmdp.data.split import load_split

        sp = load_split(split)
        train_ev, val_ev = sp.select(events, "train"), sp.select(events, "validation")
    else:
        train_ev, val_ev = None, None
    if max_events is not None:
        events = events[:max_events]
        if train_ev is not None:
            keep = {e.id for e in events}
            train_ev = [e for e in train_ev if e.id in keep]
            val_ev = [e for e in val_ev if e.id in keep]
    encoder = get_encoder(encoder_spec, cache_dir)
    use = events if train_ev is None else train_ev + val_ev
    codes = event_state_codes(use, annotator, data_path, progress)
    feats, skipped = build_features(use, codes, encoder, step_size, signal_rule, 0.8, progress)
    if train_ev is None:
        train_f, val_f = split_events(feats, tcfg.val_fraction, tcfg.seed)
    else:
        val_ids = {e.id for e in val_ev}
        train_f = [f for f in feats if f.event_id not in val_ids]
        val_f = [f for f in feats if f.event_id in val_ids]
    if not train_f:
        raise ValueError(f"{data}: no usable training events (skipped: {dict(skipped)})")
    mcfg = TransitionConfig.for_encoder(encoder_spec, encoder.dim, **(model_overrides or {}))
    mcfg.extra = {"data": str(data), "annotator": annotator, "step_size": step_size, "signal_rule": signal_rule}
    prep_seconds = time.perf_counter() - t0
    model, result = train(train_f, mcfg, tcfg, val_feats=val_f, progress=progress)
    model.cfg.extra["best_epoch"] = result.best_epoch
    out_dir = model.save(out)
    report = {
        "data": str(data), "annotator": annotator, "encoder": encoder.name, "out": str(out_dir),
        "train_events": len(train_f), "val_events": len(val_f), "skipped_events": dict(skipped),
        "train_steps": int(sum(len(f) for f in train_f)), "prepare_seconds": round(prep_seconds, 2),
        "train_seconds": round(result.seconds, 2), "best_epoch": result.best_epoch,
        "validation": result.validation, "history": result.history, "config": result.config,
        "train_event_ids": result.train_events, "val_event_ids": result.val_events,
    }
    (out_dir / REPORT).write_text(json.dumps(report, indent=2, ensure_ascii=False, default=_json_default))
    return report


def _json_default(o):
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    return asdict(o) if hasattr(o, "__dataclass_fields__") else str(o)
