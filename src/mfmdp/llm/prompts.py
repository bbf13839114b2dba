"""Versioned prompt templates stored as files in mfmdp/prompts/*.txt (one source of truth).

A file starts with `# key: value` header lines (at least `version`), then the template body, which
uses `$name` placeholders (string.Template) so that literal JSON braces need no escaping.
"""

from __future__ import annotations

import string
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path


@dataclass(frozen=True)
class PromptTemplate:
    name: str
    version: str
    body: str
    path: str
    meta: tuple[tuple[str, str], ...] = ()  # all `# key: value` header lines, in order

    def header(self, key: str) -> str:
        for k, v in self.meta:
            if k == key:
                return v
        raise KeyError(f"prompt file {self.path} lacks a '# {key}: ...' header line")

    def render(self, **fields) -> str:
        try:
            return string.Template(self.body).substitute(**fields)
        except KeyError as e:
            raise KeyError(f"prompt {self.path} needs field {e.args[0]!r}") from None

    @property
    def id(self) -> str:
        """name@version: what caches and manifests record."""
        return f"{self.name}@{self.version}"


def parse_prompt(text: str, name: str, path: str) -> PromptTemplate:
    lines = text.splitlines(keepends=True)
    meta: dict[str, str] = {}
    i = 0
    while i < len(lines) and lines[i].startswith("#"):
        key, sep, value = lines[i][1:].partition(":")
        if sep:
            meta[key.strip()] = value.strip()
        i += 1
    if "version" not in meta:
        raise ValueError(f"prompt file {path} lacks a '# version: ...' header line")
    return PromptTemplate(name, meta["version"], "".join(lines[i:]).strip("\n"), path, tuple(meta.items()))


@lru_cache(maxsize=None)
def load_prompt(name: str, path: str | None = None) -> PromptTemplate:
    """The packaged prompt `name` (e.g. "annotate"), or the file at `path` (a user's override)."""
    if path is not None:
        p = Path(path)
        return parse_prompt(p.read_text(encoding="utf-8"), name, str(p))
    res = resources.files("mfmdp.prompts").joinpath(f"{name}.txt")
    if not res.is_file():
        raise FileNotFoundError(f"no packaged prompt {name!r} (mfmdp/prompts/{name}.txt)")
    return parse_prompt(res.read_text(encoding="utf-8"), name, f"mfmdp/prompts/{name}.txt")
