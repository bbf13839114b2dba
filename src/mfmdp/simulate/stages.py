"""What each stage of `mfmdp run` depends on, so that a resumed results directory reuses only work
made with the same config.

Each stage writes, next to its output, a record of the config keys it depends on (`stage_record`);
before any work, a resume compares the records it would reuse with the current config and refuses
(`ResumeRefused`, naming the keys that changed) rather than mix stale models or simulations with a
config that claims otherwise.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any

import yaml

from mfmdp.core.atomic import atomic_write_bytes
from mfmdp.simulate.config import ConfigError

log = logging.getLogger(__name__)

# how and what to run or report, not what a result is: changing these never invalidates finished work
# (new methods and seeds are simulated on resume; evaluate_on picks other events, as --models-from
# uses; the report is recomputed by every run)
NOT_A_DEPENDENCY = ("name", "executor", "methods", "simulation.seeds", "data.evaluate_on", "data.evaluate_subset",
                    "evaluation.settings")
MODEL_INPUTS = ("seed", "data", "annotator", "encoder")  # the labelled, encoded training events
TRANSITION_DEPENDS_ON = (*MODEL_INPUTS, "transition")
EVERYTHING = ("",)


class ResumeRefused(ConfigError):
    """The results directory holds work made with another config."""


def policy_depends_on(uses_transition: bool) -> tuple[str, ...]:
    return (*MODEL_INPUTS, "policy", *(("transition",) if uses_transition else ()))


def flat(tree: dict, prefix: str = "") -> dict[str, Any]:
    """{"a.b": value} for every leaf of a nested mapping (lists are leaves)."""
    out: dict[str, Any] = {}
    for k, v in tree.items():
        key = f"{prefix}{k}"
        out.update(flat(v, key + ".") if isinstance(v, dict) else {key: v})
    return out


def _under(key: str, prefixes: tuple[str, ...]) -> bool:
    return any(p == "" or key == p or key.startswith(p + ".") for p in prefixes)


def stage_config(cfg, depends_on: tuple[str, ...]) -> dict[str, Any]:
    """The dotted keys (non-default values only, so a new option does not orphan old work) that a
    stage depending on `depends_on` reads."""
    return _read_by(flat(cfg.model_dump(mode="json", exclude_defaults=True)), depends_on)


def stage_values(cfg, depends_on: tuple[str, ...]) -> dict[str, Any]:
    """Every dotted key a stage reads with its value, defaults included: a default that changes
    between versions (as the simulation coupling did in issue 13) is then seen as drift too."""
    return _read_by(flat(cfg.model_dump(mode="json")), depends_on)


def _read_by(values: dict[str, Any], depends_on: tuple[str, ...]) -> dict[str, Any]:
    return {k: v for k, v in sorted(values.items()) if _under(k, depends_on) and not _under(k, NOT_A_DEPENDENCY)}


def stage_record(cfg, depends_on: tuple[str, ...]) -> dict:
    config = stage_config(cfg, depends_on)
    digest = hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:16]
    return {"config_hash": digest, "depends_on": list(depends_on), "config": config,
            "values": stage_values(cfg, depends_on)}


def drift(marker: Path, cfg) -> list[str] | None:
    """The config keys that changed since the stage that wrote `marker` ran ([] = none), or None
    when the marker holds no record (written by an mfmdp before these records). Records with every
    value are compared key by key over today's keys (an option added since counts as its default);
    older records hold the non-default values only, so a changed default cannot be seen in them."""
    recorded = json.loads(marker.read_text(encoding="utf-8")).get("stage")
    if recorded is None:
        return None
    then = recorded.get("values")
    if then is not None:
        defaults = flat(type(cfg)().model_dump(mode="json"))
        now_values = stage_values(cfg, tuple(recorded["depends_on"]))
        return [f"{k}: {then.get(k, defaults.get(k))!r} -> {v!r}"
                for k, v in now_values.items() if then.get(k, defaults.get(k)) != v]
    now = stage_record(cfg, tuple(recorded["depends_on"]))
    if now["config_hash"] == recorded["config_hash"]:
        return []
    before, after = recorded["config"], now["config"]
    defaults = flat(type(cfg)().model_dump(mode="json"))
    current = flat(cfg.model_dump(mode="json"))
    return [f"{k}: {before.get(k, defaults.get(k))!r} -> {current.get(k)!r}"
            for k in sorted(set(before) | set(after)) if before.get(k) != after.get(k)]


def check_marker(marker: Path, cfg, what: str) -> None:
    """Refuse when the finished work behind `marker` was made with another config."""
    if not marker.exists():
        return
    changed = drift(marker, cfg)
    if changed is None:
        log.warning("%s has no config record (made by an older mfmdp): reused as it is", what)
    elif changed:
        raise ResumeRefused(
            f"{what} was made with another config ({'; '.join(changed)}): rerun with the config it was "
            "made with, or use another --out (`mfmdp run --models-from` reuses the models that still match)")


def record_config(cfg, out: Path) -> None:
    """RUN_DIR/config.yaml := `cfg`. Called when results made with `cfg` are written (and when a run
    starts in a new directory), never before: a run that fails or is refused leaves it as it was."""
    text = yaml.safe_dump(cfg.model_dump(mode="json"), allow_unicode=True, sort_keys=False).encode("utf-8")
    path = Path(out) / "config.yaml"
    if not path.exists() or path.read_bytes() != text:
        atomic_write_bytes(path, text)
