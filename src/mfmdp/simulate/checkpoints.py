"""`mfmdp train transition|policy`: one trained part as a standalone checkpoint, from the same prepare
stage and the same trainers as `mfmdp run` (so a config trains on the same events either way).

The training side of the config's split is trained on; the validation side early-stops f_psi and is
reported. Each writes OUT/train_report.json beside the checkpoint.
"""

from __future__ import annotations

import json
import tempfile
import time
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Iterator

import numpy as np

from mfmdp.core.atomic import atomic_write_text
from mfmdp.simulate.methods import MethodSpec
from mfmdp.simulate.models import fit_policy, fit_transition
from mfmdp.simulate.prepare import Prepared, prepare

REPORT = "train_report.json"


@contextmanager
def cache_folder(cache: str | None) -> Iterator[Path]:
    """`cache`, or a temporary folder removed when the command ends (labels and embeddings are then
    computed again next time)."""
    if cache is not None:
        yield Path(cache)
        return
    with tempfile.TemporaryDirectory(prefix="mfmdp-train-") as tmp:
        yield Path(tmp)


def prepared_sides(cfg, cache: Path, progress: bool) -> Prepared:
    """The train and validation sides, labelled and embedded."""
    return prepare(cfg, cache, sides=("train", "validation"), progress=progress)


def train_transition_checkpoint(cfg, out: str | Path, cache: str | None = None, progress: bool = True) -> dict:
    """Train f_psi (L_seq + alpha L_roll; alpha from cfg.transition) into `out`; returns the report."""
    with cache_folder(cache) as folder:
        return _train_transition(cfg, Path(out), folder, progress)


def _train_transition(cfg, out: Path, cache: Path, progress: bool) -> dict:
    t0 = time.perf_counter()
    prep = prepared_sides(cfg, cache, progress)
    train, val = prep.sides["train"], prep.sides["validation"]
    if not train:
        raise ValueError(f"{cfg.data.path}: no training events (split {cfg.data.split or 'seeded'}, at least "
                         f"{cfg.data.min_responses} responses)")
    extra = {"data": str(cfg.data.path), "annotator": str(cfg.annotator), "step_size": cfg.data.step_size,
             "signal_rule": cfg.data.signal_rule}
    prep_seconds = time.perf_counter() - t0
    model, result = fit_transition(cfg, train, val, prep.encoder, True, Path(out), progress=progress, extra=extra)
    report = {
        "data": str(cfg.data.path), "annotator": str(cfg.annotator), "encoder": prep.encoder.name, "out": str(out),
        "train_events": len(train), "val_events": len(val),
        "train_steps": int(sum(len(p.steps) for p in train)), "prepare_seconds": round(prep_seconds, 2),
        "train_seconds": round(result.seconds, 2), "best_epoch": result.best_epoch,
        "validation": result.validation, "history": result.history, "config": result.config,
        "train_event_ids": result.train_events, "val_event_ids": result.val_events,
    }
    atomic_write_text(Path(out) / REPORT, json.dumps(report, indent=2, ensure_ascii=False, default=_json_default))
    return report


def train_policy_checkpoint(cfg, spec: MethodSpec, transition, out: str | Path, cache: str | None = None,
                            backend: str = "neural", hf_overrides: dict | None = None, progress: bool = True) -> dict:
    """Train the method's policy (neural, or a LoRA adapter for `backend` hf) into `out`; returns the
    report, with held-out NLL / state-F1 on the validation side for a neural policy."""
    with cache_folder(cache) as folder:
        return _train_policy(cfg, spec, transition, Path(out), folder, backend, hf_overrides, progress)


def _train_policy(cfg, spec: MethodSpec, transition, out: Path, cache: Path, backend: str, hf_overrides: dict | None,
                  progress: bool) -> dict:
    t0 = time.perf_counter()
    prep = prepared_sides(cfg, cache, progress)
    train = prep.sides["train"]
    if not train:
        raise ValueError(f"{cfg.data.path}: no training events (split {cfg.data.split or 'seeded'}, at least "
                         f"{cfg.data.min_responses} responses)")
    if backend == "hf":
        from mfmdp.policy.hf_training import fit_hf_policy

        policy, history = fit_hf_policy([p.event for p in train], [p.steps for p in train], [p.labels for p in train],
                                        [p.embeddings for p in train], prep.encoder, transition, spec.inputs,
                                        hf_overrides, lct=spec.lct_policy, decay=cfg.policy.synopsis_decay,
                                        progress=progress)
        policy.save(out)
        report = {"backend": "hf", "method": spec.name, "lct": spec.lct_policy, "events": len(train),
                  "seconds": time.perf_counter() - t0, "history": history}
    else:
        policy = fit_policy(cfg, spec, train, prep.encoder, transition, Path(out), progress=progress)
        report = {"method": spec.name, "lct": spec.lct_policy, "events": len(train), "pool_rows": len(policy.pool),
                  "seconds": time.perf_counter() - t0, "history": policy.training.get("history", [])}
        if prep.sides["validation"]:
            report["validation"] = validation_report(cfg, spec, prep, policy, transition)
    atomic_write_text(Path(out) / REPORT, json.dumps(report, indent=2, ensure_ascii=False, default=_json_default))
    return report


def validation_report(cfg, spec: MethodSpec, prep: Prepared, policy, transition) -> dict:
    from mfmdp.policy.dataset import add_forecasts, prepare_event
    from mfmdp.policy.lct import evaluate_policy

    val = [prepare_event(p.event, p.steps, p.labels, p.embeddings, prep.encoder, spec.context,
                         cfg.policy.synopsis_decay, cfg.policy.social_k) for p in prep.sides["validation"]]
    if spec.use_prior:
        for ev in val:
            add_forecasts(ev, transition)
    return evaluate_policy(policy.net, val) | {"events": len(val)}


def without_lct(spec: MethodSpec) -> MethodSpec:
    """The method's policy trained with L_text only (the w/o LCT-Policy ablation)."""
    return replace(spec, lct_policy=False)


def _json_default(o):
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    return o.__dict__ if hasattr(o, "__dataclass_fields__") else str(o)
