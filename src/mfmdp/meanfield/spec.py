"""Which summariser makes the synopsis r_t: "embedding" (the offline EmbeddingSynopsis, default),
"llm" (LLMSynopsis over the default backend, openai) or "llm:BACKEND" (an LLM backend spec, e.g.
llm:fake). `parse_summariser_spec` makes a `SummariserSpec` of one."""

from __future__ import annotations

from typing import Literal

from mfmdp.core.spec import Spec
from mfmdp.llm.registry import BACKENDS, LLMSpec, parse_llm_spec

DEFAULT_SUMMARISER = "embedding"


class SummariserSpec(Spec):
    """`backend` is the LLM of an llm summariser (None: the registry's default backend)."""

    kind: Literal["embedding", "llm"]
    backend: LLMSpec | None = None

    def __str__(self) -> str:
        return self.kind if self.backend is None else f"{self.kind}:{self.backend}"


def parse_summariser_spec(spec: str) -> SummariserSpec:
    """`SummariserSpec` of a spec string: a one-line ValueError naming what is allowed."""
    kind, sep, backend = spec.partition(":")
    if spec == "embedding":
        return SummariserSpec(kind="embedding")
    if kind == "llm" and not sep:
        return SummariserSpec(kind="llm")
    if kind == "llm" and backend.partition(":")[0] in BACKENDS:
        try:
            return SummariserSpec(kind="llm", backend=parse_llm_spec(backend))
        except ValueError as err:
            raise ValueError(f"summariser {spec!r}: {err}") from None
    raise ValueError(f"use 'embedding', 'llm' or 'llm:BACKEND' with BACKEND one of {', '.join(BACKENDS)}")
