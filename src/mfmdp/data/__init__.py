"""Event data: loaders for every supported source, stepping, caches and splits.

`mfmdp.data.load(path)` auto-detects the format of a file or folder (see mfmdp.data.loading). The
records themselves (Event, Response, Profile, Signal) live in mfmdp.core.records.
"""

from __future__ import annotations

from mfmdp.data.errors import DataFormatError
from mfmdp.data.generic import load_generic, write_events
from mfmdp.data.loading import LoadReport, load
from mfmdp.data.scenario import load_scenario
from mfmdp.data.split import load_split

__all__ = ["DataFormatError", "LoadReport", "load", "load_generic", "write_events", "load_split", "load_scenario"]
