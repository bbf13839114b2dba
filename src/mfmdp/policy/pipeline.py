"""`mfmdp train policy`: from a data path and a trained transition model to a policy checkpoint.

Steps: load events (any supported format or an mfmdp cache), pick the training side of a split,
label them (ground truth written by the synthetic generator, a labels file in the cache, or an
annotator), embed their texts once with the transition model's encoder, train, save, and write
train_report.json (history, held-out NLL / state-F1 on the validation side when a split is given).
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mfmdp.core.schema import Labels
from mfmdp.annotate.store import event_labels
from mfmdp.core.records import Event
from mfmdp.data.stepping import Steps, make_steps, verified_institution_rule
from mfmdp.policy.inputs import PolicyInputs

log = logging.getLogger(__name__)

REPORT = "train_report.json"


@dataclass
class Corpus:
    events: list[Event]
    labels: list[Labels]
    embeddings: list[np.ndarray]
    steps: list[Steps]


def build_corpus(events: list[Event], annotator: str, encoder, data_path: Path | None = None,
                 step_size: int = 16, signal_rule: str = "verified_institution", progress: bool = True) -> Corpus:
    rule = verified_institution_rule if signal_rule == "verified_institution" else None
    labels = event_labels(events, annotator, data_path, progress)
    for e, lab in zip(events, labels):
        lab.codes["behavior"] = np.asarray(e.table.behavior, dtype=np.int8).copy()
    embeddings = [encoder.encode([str(t) for t in e.table.texts]) for e in events]
    steps = [make_steps(e, size=step_size, signal_rule=rule) for e in events]
    return Corpus(list(events), labels, embeddings, steps)


def select_events(events: list[Event], split_path: str | None, side: str, min_responses: int, max_events: int | None) -> list[Event]:
    if split_path:
        from mfmdp.data.split import load_split

        events = load_split(split_path).select(events, side)
    events = [e for e in events if len(e) >= min_responses]
    if max_events is not None:
        events = events[:max_events]
    return events


def train_from_data(
    data: str,
    transition_dir: str | None,
    out: str,
    method: str = "mf_mdp",
    lct: bool = True,
    annotator: str = "offline",
    split: str | None = None,
    encoder_spec: str | None = None,
    overrides: dict | None = None,
    step_size: int = 16,
    min_responses: int = 32,
    max_events: int | None = None,
    progress: bool = True,
) -> dict:
    """Train and save a neural policy; returns the report written to OUT/train_report.json."""
    from mfmdp.data import load
    from mfmdp.policy.inputs import inputs_for
    from mfmdp.policy.lct import evaluate_policy
    from mfmdp.policy.dataset import add_forecasts, prepare_event
    from mfmdp.policy.training import PolicyTrainConfig, train_neural_policy
    from mfmdp.encoders import get_encoder

    t0 = time.perf_counter()
    inputs: PolicyInputs = inputs_for(method)
    cfg = PolicyTrainConfig.model_validate({**(overrides or {}), "lct": lct})
    transition = None
    decay = cfg.synopsis_decay
    if transition_dir:
        from mfmdp.transition.model import EventTransformer

        transition = EventTransformer.load(transition_dir)
        encoder_spec = encoder_spec or transition.cfg.encoder
        decay = transition.cfg.synopsis_decay
        cfg = cfg.model_copy(update={"synopsis_decay": decay})
    elif inputs.use_prior or lct:
        raise ValueError(f"method {method!r}{' with LCT' if lct else ''} needs --transition DIR")
    encoder = get_encoder(encoder_spec or "hash")
    all_events = load(data, progress=progress)
    train_events = select_events(all_events, split, "train", min_responses, max_events)
    if not train_events:
        raise ValueError(f"{data}: no training events (split {split!r}, at least {min_responses} responses)")
    log.info("training the %s policy on %d events", method, len(train_events))
    corpus = build_corpus(train_events, annotator, encoder, Path(data), step_size, progress=progress)
    policy = train_neural_policy(corpus.events, corpus.labels, corpus.embeddings, encoder, transition, inputs, cfg,
                                 steps=corpus.steps, progress=progress)
    policy.training.update({"method": method, "data": str(data), "annotator": annotator,
                            "transition": str(transition_dir) if transition_dir else None})
    policy.save(out)
    report = {"method": method, "lct": lct, "events": len(train_events), "pool_rows": len(policy.pool),
              "seconds": time.perf_counter() - t0, "history": policy.training.get("history", [])}
    if split:
        val_events = select_events(all_events, split, "validation", min_responses, max_events)
        if val_events:
            val = build_corpus(val_events, annotator, encoder, Path(data), step_size, progress=progress)
            prepared = [prepare_event(e, s, lab, emb, encoder, inputs.context, decay, cfg.social_k)
                        for e, lab, emb, s in zip(val.events, val.labels, val.embeddings, val.steps)]
            if inputs.use_prior:
                for ev in prepared:
                    add_forecasts(ev, transition)
            report["validation"] = evaluate_policy(policy.net, prepared) | {"events": len(prepared)}
    path = Path(out) / REPORT
    path.write_text(json.dumps(report, indent=2, ensure_ascii=False), encoding="utf-8")
    return report
