"""Event data: typed records, loaders for every supported source, stepping, caches and splits.

`mfmdp.data.load(path)` auto-detects the format of a file or folder (see mfmdp.data.loading).
Exports are resolved lazily: mfmdp.annotate.schema imports mfmdp.data.records, and the loaders
import the schema back, so importing them eagerly here would be circular.
"""

from __future__ import annotations

__all__ = ["DataFormatError", "LoadReport", "load", "load_generic", "write_events", "load_split", "load_scenario"]

_EXPORTS = {
    "DataFormatError": "mfmdp.data.errors",
    "LoadReport": "mfmdp.data.loading",
    "load": "mfmdp.data.loading",
    "load_generic": "mfmdp.data.generic",
    "write_events": "mfmdp.data.generic",
    "load_split": "mfmdp.data.split",
    "load_scenario": "mfmdp.data.scenario",
}


def __getattr__(name: str):
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'mfmdp.data' has no attribute {name!r}")
