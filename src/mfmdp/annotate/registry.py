"""`get_annotator(spec)`: build an annotator from a short spec, importing heavy backends lazily.

Specs (`parse_annotator_spec` makes an `AnnotatorSpec` of one):
  offline                    the rule-based offline annotator (default; no network, no model files)
  offline:nosnownlp          the same without snownlp's tie-breaking (faster, slightly weaker)
  distilled:DIR              a classifier trained by `mfmdp annotate distill ... --out DIR`
  llm                        LLM over an OpenAI-compatible API from MFMDP_LLM_BASE_URL/_MODEL/_API_KEY
  llm:KEY=VALUE,KEY=VALUE    the same with LLMAnnotatorConfig overrides (e.g. backend=fake,items_per_call=5)
  truth                      no annotator: the labels stored with the events (synthetic ground truth)
Every annotator gets a `fingerprint` (name + rule/model version) used to key the label store, and a
`label_key` (the spec, with the model for llm) that names its label files, so two specs never share one.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Literal

from pydantic import Field

from mfmdp.annotate.base import Annotator
from mfmdp.core.spec import Spec

DEFAULT_ANNOTATOR = "offline"
SPECS_HELP = "offline | offline:nosnownlp | distilled:DIR | llm | llm:key=value,..."


class AnnotatorSpec(Spec):
    """Which annotator labels the responses: `path` is the distilled model's directory, `snownlp`
    the offline annotator's tie-break, `options` the llm annotator's LLMAnnotatorConfig overrides."""

    kind: Literal["offline", "distilled", "llm", "truth"]
    path: str | None = None
    snownlp: bool = True
    options: dict[str, int | float | str] = Field(default_factory=dict)

    def __str__(self) -> str:
        if self.kind == "offline" and not self.snownlp:
            return "offline:nosnownlp"
        if self.kind == "distilled":
            return f"distilled:{self.path}"
        if self.kind == "llm" and self.options:
            return "llm:" + ",".join(f"{k}={v}" for k, v in self.options.items())
        return self.kind


def parse_annotator_spec(spec: str) -> AnnotatorSpec:
    """`AnnotatorSpec` of a spec string, checked without building anything (no model, no data), so
    that a bad spec is refused before any work starts: a one-line ValueError naming what is allowed."""
    kind, _, arg = spec.partition(":")
    kind = kind.strip().lower()
    if kind == "offline":
        if arg not in ("", "nosnownlp"):
            raise ValueError(f"annotator spec {spec!r}: offline takes no option but 'nosnownlp'")
        return AnnotatorSpec(kind="offline", snownlp=not arg)
    if kind == "distilled":
        if not arg:
            raise ValueError(f"annotator spec {spec!r}: say which model, e.g. distilled:models/annotator")
        return AnnotatorSpec(kind="distilled", path=arg)
    if kind == "llm":
        options = _parse_options(spec, arg)
        _check_llm_options(spec, options)
        return AnnotatorSpec(kind="llm", options=options)
    if kind == "truth" and not arg:
        return AnnotatorSpec(kind="truth")
    raise ValueError(f"unknown annotator spec {spec!r}; use {SPECS_HELP} | truth")


def get_annotator(spec: str | AnnotatorSpec = DEFAULT_ANNOTATOR, cache_dir: str | None = None,
                  **llm_options) -> Annotator:
    """`llm_options` (e.g. a budget from the command line) override the spec's llm options; None values
    are ignored, and any other value is an error for annotators other than llm."""
    spec = parse_annotator_spec(spec) if isinstance(spec, str) else spec
    llm_options = {k: v for k, v in llm_options.items() if v is not None}
    if llm_options and spec.kind != "llm":
        raise ValueError(f"annotator spec {str(spec)!r}: {', '.join(llm_options)} only apply to llm annotators")
    if spec.kind == "offline":
        return _offline_annotator(spec)
    if spec.kind == "distilled":
        return _distilled_annotator(spec, cache_dir)
    if spec.kind == "llm":
        return _llm_annotator(spec, cache_dir, llm_options)
    raise ValueError("annotator 'truth' is the labels stored with the events, not an annotator to run; "
                     f"use {SPECS_HELP}")


def _offline_annotator(spec: AnnotatorSpec) -> Annotator:
    from mfmdp.annotate.offline import OfflineAnnotator

    annotator = OfflineAnnotator(use_snownlp=spec.snownlp)
    annotator.fingerprint = f"{annotator.version}{'' if spec.snownlp else '-nosnownlp'}"
    annotator.label_key = str(spec)
    return annotator


def _distilled_annotator(spec: AnnotatorSpec, cache_dir: str | None) -> Annotator:
    try:
        from mfmdp.annotate.distilled import DistilledAnnotator
    except ImportError as err:
        raise RuntimeError(f"the distilled annotator is unavailable: {err}") from err
    directory = Path(spec.path)
    annotator = DistilledAnnotator.load(directory, cache_dir=cache_dir)
    annotator.fingerprint = "distilled-" + _files_digest(directory)
    annotator.label_key = f"distilled:{directory.resolve()}"
    return annotator


def _llm_annotator(spec: AnnotatorSpec, cache_dir: str | None, llm_options: dict) -> Annotator:
    from mfmdp.annotate.llm import LLMAnnotator

    overrides = {**spec.options, **llm_options}
    if "backend" in overrides:
        if cache_dir and "cache_dir" not in overrides:
            overrides["cache_dir"] = cache_dir
        annotator = LLMAnnotator.from_config(overrides)
    else:
        annotator = LLMAnnotator.from_env(cache_dir=cache_dir, **overrides)
    # The LLM keeps its own persistent cache; the store key still separates models and prompts.
    annotator.fingerprint = f"{annotator.name}-{getattr(annotator.prompt, 'id', '')}"
    annotator.label_key = annotator.name  # llm:<backend model>: the spec's options do not change labels
    return annotator


def fingerprint(annotator: Annotator) -> str:
    """Identity of an annotator's labelling function, for cache keys (name when nothing better)."""
    return str(getattr(annotator, "fingerprint", None) or getattr(annotator, "version", None) or annotator.name)


def _parse_options(spec: str, arg: str) -> dict:
    out: dict = {}
    for part in filter(None, (p.strip() for p in arg.split(","))):
        key, sep, value = part.partition("=")
        if not sep or not key:
            raise ValueError(f"annotator spec {spec!r}: option {part!r} is not KEY=VALUE")
        out[key.strip()] = _coerce(value.strip())
    return out


def _coerce(value: str):
    for cast in (int, float):
        try:
            return cast(value)
        except ValueError:
            pass
    return value


def _files_digest(directory: Path) -> str:
    """Short digest of a model directory's files, so a retrained model never reuses stale labels."""
    h = hashlib.sha256()
    for p in sorted(directory.glob("*")):
        if p.is_file() and not p.name.endswith(".tmp"):
            h.update(p.name.encode())
            h.update(p.read_bytes())
    return h.hexdigest()[:16]


def _check_llm_options(spec: str, options: dict) -> None:
    from dataclasses import fields

    from pydantic import TypeAdapter, ValidationError

    try:
        from mfmdp.annotate.llm import LLMAnnotatorConfig
    except ImportError as err:
        raise ValueError(f"annotator spec {spec!r}: the LLM annotator needs its extra: pip install 'mfmdp[llm]' ({err})") from None
    known = sorted(f.name for f in fields(LLMAnnotatorConfig))
    for key in options:
        if key not in known:
            raise ValueError(f"annotator spec {spec!r}: unknown option {key!r}; allowed: {', '.join(known)}")
    if "backend" in options:
        _check_backend(spec, str(options["backend"]))
    try:
        TypeAdapter(LLMAnnotatorConfig).validate_python(options)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ValueError(f"annotator spec {spec!r}: option {where!r}: {first['msg']}") from None


def _check_backend(spec: str, backend: str) -> None:
    from mfmdp.llm.registry import BACKENDS, parse_llm_spec

    kind = backend.partition(":")[0]
    if kind not in BACKENDS:
        raise ValueError(f"annotator spec {spec!r}: unknown backend {kind!r}; use one of {', '.join(BACKENDS)}")
    try:
        parse_llm_spec(backend)
    except ValueError as err:
        raise ValueError(f"annotator spec {spec!r}: option 'backend': {err}") from None
