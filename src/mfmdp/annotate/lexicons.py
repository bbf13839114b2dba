"""Cue lexicons for the offline annotator: plain-text files shipped as package data.

Each file in mfmdp/data/lexicons/ is one cue family (happy, anger, debunk, ...): one cue per line,
optionally followed by a TAB and a weight (1.0 when absent); lines starting with "# " are comments.
Cues are matched as substrings of normalised text (NFKC, lower case), longest cue first, so
"真的假的" wins over "假的" at the same position and the two are not both counted.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path

# Families the offline annotator reads; a missing file is an install error, not a silent zero.
FAMILIES: tuple[str, ...] = (
    "bare",
    "happy",
    "hope",
    "anger",
    "sad",
    "fear",
    "surprise",
    "debunk",
    "doubt",
    "disagree",
    "question",
    "rhetoric",
    "sarcasm",
    "news",
    "promotion",
    "negation",
)

_ZERO_WIDTH = re.compile(r"[\u200b\u200c\u200d\u2060\ufeff\u00a0]")


def normalise(text: str) -> str:
    """The one text normalisation shared by cues and texts: NFKC, lower case, no zero-width chars."""
    return _ZERO_WIDTH.sub("", unicodedata.normalize("NFKC", text)).lower()


@dataclass(frozen=True)
class Match:
    start: int
    end: int
    cue: str
    weight: float


class Lexicon:
    """One cue family: cue -> weight, with a compiled longest-first alternation for matching."""

    def __init__(self, name: str, cues: dict[str, float]):
        if not cues:
            raise ValueError(f"lexicon {name!r} has no cues")
        self.name = name
        self.cues = cues
        alternatives = sorted(cues, key=len, reverse=True)
        self._pattern = re.compile("|".join(re.escape(c) for c in alternatives))

    def __contains__(self, text: str) -> bool:
        return text in self.cues

    def __len__(self) -> int:
        return len(self.cues)

    def matches(self, text: str) -> list[Match]:
        return [Match(m.start(), m.end(), m.group(), self.cues[m.group()]) for m in self._pattern.finditer(text)]

    def score(self, text: str) -> float:
        return sum(self.cues[m.group()] for m in self._pattern.finditer(text))

    def search(self, text: str) -> bool:
        return self._pattern.search(text) is not None

    @classmethod
    def parse(cls, name: str, content: str, origin: str) -> "Lexicon":
        cues: dict[str, float] = {}
        for lineno, raw in enumerate(content.splitlines(), start=1):
            line = raw.rstrip("\n")
            # "# comment"; a lone "#" cue would be written "#" followed by a TAB and a weight.
            if not line.strip() or line.startswith("# ") or line.strip() == "#":
                continue
            cue, _, weight = line.partition("\t")
            cue = normalise(cue.strip()) if cue.strip() else cue
            if not cue:
                continue
            try:
                cues[cue] = float(weight) if weight.strip() else 1.0
            except ValueError:
                raise ValueError(f"{origin}:{lineno}: weight {weight!r} of cue {cue!r} is not a number") from None
        return cls(name, cues)


def load_lexicon(name: str, directory: str | Path | None = None) -> Lexicon:
    """Load family `name` from `directory` (default: the package's bundled lexicons)."""
    if directory is None:
        path = resources.files("mfmdp.data").joinpath("lexicons", f"{name}.txt")
    else:
        path = Path(directory) / f"{name}.txt"
    if not path.is_file():
        raise FileNotFoundError(f"lexicon file {path} is missing (family {name!r})")
    return Lexicon.parse(name, path.read_text(encoding="utf-8"), str(path))


@lru_cache(maxsize=4)
def load_lexicons(directory: str | None = None) -> dict[str, Lexicon]:
    """Every family in FAMILIES, cached per directory."""
    return {name: load_lexicon(name, directory) for name in FAMILIES}
