"""From labelled training events to a trained NeuralPolicy with its retrieval pool.

`train_neural_policy` is what the simulator and `mfmdp train policy` call: one configuration of
inputs (a baseline or MF-MDP), one training mode (LCT or L_text only), the same code.
"""

from __future__ import annotations

import logging
import time
from typing import Sequence

import numpy as np

from mfmdp.core.schema import Labels
from mfmdp.core.records import Event
from mfmdp.data.stepping import Steps, make_steps, verified_institution_rule
from mfmdp.policy.dataset import PolicyEvent, prepare_event
from mfmdp.policy.inputs import PolicyInputs
from mfmdp.policy.lct import train_policy
from mfmdp.policy.network import NeuralPolicyConfig
from mfmdp.policy.neural import NeuralPolicy
from mfmdp.policy.options import LCTConfig, PolicyTrainConfig
from mfmdp.policy.retrieval import RetrievalPool
from mfmdp.transition.api import TransitionModel

log = logging.getLogger(__name__)


def build_pool(
    events: Sequence[Event],
    labels: Sequence[Labels],
    embeddings: Sequence[np.ndarray],
    steps: Sequence[Steps] | None = None,
    encoder_name: str = "",
    max_per_group: int | None = 20000,
    seed: int = 0,
) -> RetrievalPool:
    """Retrieval pool of the TRAINING events' non-signal responses (behavior from the data)."""
    texts: list[str] = []
    lab_parts, emb_parts = [], []
    for i, (ev, lab, emb) in enumerate(zip(events, labels, embeddings)):
        tab = ev.table
        keep = ~steps[i].is_signal if steps is not None else np.ones(len(tab), bool)
        idx = np.flatnonzero(keep)
        part = lab.take(idx)
        part.codes["behavior"] = tab.behavior[idx].astype(np.int8)
        lab_parts.append(part)
        emb_parts.append(np.asarray(emb, dtype=np.float32)[idx])
        texts.extend(str(t) for t in tab.texts[idx])
    if not texts:
        raise ValueError("no training responses to build the retrieval pool from")
    return RetrievalPool.build(texts, Labels.concat(lab_parts), np.concatenate(emb_parts),
                               encoder=encoder_name, max_per_group=max_per_group, seed=seed)


def train_neural_policy(
    events: Sequence[Event],
    labels: Sequence[Labels],
    embeddings: Sequence[np.ndarray],
    encoder,
    transition: TransitionModel | None,
    inputs: PolicyInputs = PolicyInputs(),
    config: PolicyTrainConfig | dict | None = None,
    steps: Sequence[Steps] | None = None,
    step_size: int = 16,
    progress: bool = True,
) -> NeuralPolicy:
    """Train a neural policy on `events` (their `labels` and text `embeddings` by `encoder`, every
    slot in table order). `steps` default to blocks of `step_size` with verified institutions as
    signals, as the simulator's default. The policy is returned with its retrieval pool attached."""
    cfg = config if isinstance(config, PolicyTrainConfig) else PolicyTrainConfig.model_validate(config or {})
    if not (len(events) == len(labels) == len(embeddings)):
        raise ValueError(f"{len(events)} events, {len(labels)} label sets and {len(embeddings)} embedding sets")
    if not events:
        raise ValueError("no training events")
    t0 = time.perf_counter()
    if steps is None:
        steps = [make_steps(ev, size=step_size, signal_rule=verified_institution_rule) for ev in events]
    prepared: list[PolicyEvent] = [
        prepare_event(ev, st, lab, emb, encoder, context=inputs.context, decay=cfg.synopsis_decay, social_k=cfg.social_k)
        for ev, st, lab, emb in zip(events, steps, labels, embeddings)
    ]
    first = prepared[0]
    net_cfg = NeuralPolicyConfig(
        context_dim=first.context.shape[1],
        signal_dim=first.schedule.signals.shape[1],
        time_dim=first.schedule.time.shape[1],
        hidden=cfg.hidden,
        dropout=cfg.dropout,
        inputs=inputs,
    )
    lct_cfg = LCTConfig.model_validate({k: getattr(cfg, k) for k in LCTConfig.model_fields})
    policy, _ = train_policy(prepared, net_cfg, lct_cfg, transition, progress=progress)
    policy.pool = build_pool(events, labels, embeddings, steps, getattr(encoder, "name", ""),
                             cfg.pool_max_per_group, cfg.seed)
    policy.encoder = encoder
    policy.top_k = cfg.top_k
    policy.training.update({"config": cfg.model_dump(mode="json"), "encoder": getattr(encoder, "name", ""),
                            "seconds": time.perf_counter() - t0})
    return policy
