"""The base of the typed spec objects (LLM backend, annotator, encoder, summariser).

A spec is a short string in configs and on the command line ("distilled:runs/annotator", "hash:64",
"llm:fake"); each owning package parses it into a frozen `Spec` whose `str()` is the canonical string
again, so configs are written back exactly as they were read and a dumped config reloads identically.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, model_serializer


class Spec(BaseModel):
    """Frozen, hashable, equal to another spec of its type when their canonical strings are, and
    serialised (model_dump, and so YAML and JSON of the models holding it) as that string."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    def __str__(self) -> str:
        raise NotImplementedError  # each spec spells its canonical string

    @model_serializer
    def _canonical_string(self) -> str:
        return str(self)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self)!r})"

    def __eq__(self, other: object) -> bool:
        if type(other) is type(self):
            return str(self) == str(other)
        return NotImplemented

    def __hash__(self) -> int:
        return hash(str(self))
