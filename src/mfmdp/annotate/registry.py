"""`get_annotator(spec)`: build an annotator from a short spec, importing heavy backends lazily.

Specs:
  offline                    the rule-based offline annotator (default; no network, no model files)
  offline:nosnownlp          the same without snownlp's tie-breaking (faster, slightly weaker)
  distilled:DIR              a classifier trained by `mfmdp annotate distill ... --out DIR`
  llm                        LLM over an OpenAI-compatible API from MFMDP_LLM_BASE_URL/_MODEL/_API_KEY
  llm:KEY=VALUE,KEY=VALUE    the same with LLMAnnotatorConfig overrides (e.g. backend=fake,items_per_call=5)
Every annotator gets a `fingerprint` (name + rule/model version) used to key the label store, and a
`label_key` (the spec, with the model for llm) that names its label files, so two specs never share one.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from mfmdp.annotate.base import Annotator

SPECS_HELP = "offline | offline:nosnownlp | distilled:DIR | llm | llm:key=value,..."


def get_annotator(spec: str = "offline", cache_dir: str | None = None, **llm_options) -> Annotator:
    """`llm_options` (e.g. a budget from the command line) override the spec's llm options; None values
    are ignored, and any other value is an error for annotators other than llm."""
    check_annotator_spec(spec)  # a bad option is a ValueError naming it, not a TypeError deep inside
    kind, _, arg = (spec or "offline").partition(":")
    kind = kind.strip().lower()
    llm_options = {k: v for k, v in llm_options.items() if v is not None}
    if llm_options and kind != "llm":
        raise ValueError(f"annotator spec {spec!r}: {', '.join(llm_options)} only apply to llm annotators")
    if kind == "offline":
        from mfmdp.annotate.offline import OfflineAnnotator

        annotator = OfflineAnnotator(use_snownlp=arg != "nosnownlp")
        annotator.fingerprint = f"{annotator.version}{'-nosnownlp' if arg else ''}"
        annotator.label_key = f"offline:{arg}" if arg else "offline"
        return annotator
    if kind == "distilled":
        try:
            from mfmdp.annotate.distilled import DistilledAnnotator
        except ImportError as err:
            raise RuntimeError(f"the distilled annotator is unavailable: {err}") from err
        directory = Path(arg)
        annotator = DistilledAnnotator.load(directory, cache_dir=cache_dir)
        annotator.fingerprint = "distilled-" + _files_digest(directory)
        annotator.label_key = f"distilled:{directory.resolve()}"
        return annotator
    # kind == "llm": check_annotator_spec accepts no other kind (its options and extra are checked too)
    from mfmdp.annotate.llm import LLMAnnotator

    overrides = {**_parse_options(spec, arg), **llm_options}
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


def check_annotator_spec(spec: str) -> None:
    """ValueError naming what is wrong with `spec`, without building the annotator (no model, no data),
    so that `mfmdp run` rejects a bad spec before any work starts."""
    kind, _, arg = (spec or "offline").partition(":")
    kind = kind.strip().lower()
    if kind == "offline":
        if arg not in ("", "nosnownlp"):
            raise ValueError(f"annotator spec {spec!r}: offline takes no option but 'nosnownlp'")
    elif kind == "distilled":
        if not arg:
            raise ValueError(f"annotator spec {spec!r}: say which model, e.g. distilled:models/annotator")
    elif kind == "llm":
        _check_llm_options(spec, _parse_options(spec, arg))
    else:
        raise ValueError(f"unknown annotator spec {spec!r}; use {SPECS_HELP}")


def _check_llm_options(spec: str, options: dict) -> None:
    from dataclasses import fields

    from pydantic import TypeAdapter, ValidationError

    from mfmdp.llm.registry import BACKENDS

    try:
        from mfmdp.annotate.llm import LLMAnnotatorConfig
    except ImportError as err:
        raise ValueError(f"annotator spec {spec!r}: the LLM annotator needs its extra: pip install 'mfmdp[llm]' ({err})") from None
    known = sorted(f.name for f in fields(LLMAnnotatorConfig))
    for key in options:
        if key not in known:
            raise ValueError(f"annotator spec {spec!r}: unknown option {key!r}; allowed: {', '.join(known)}")
    backend = str(options.get("backend", "openai")).partition(":")[0]
    if backend not in BACKENDS:
        raise ValueError(f"annotator spec {spec!r}: unknown backend {backend!r}; use one of {', '.join(BACKENDS)}")
    try:
        TypeAdapter(LLMAnnotatorConfig).validate_python(options)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ValueError(f"annotator spec {spec!r}: option {where!r}: {first['msg']}") from None

