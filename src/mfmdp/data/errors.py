"""The one exception every loader raises for bad input: it names the file, the record and the field."""

from __future__ import annotations


class DataFormatError(ValueError):
    """Bad input data. `path`, `record` (index or id) and `field` say where; `reason` says what."""

    def __init__(self, path: object, reason: str, record: object = None, field: str | None = None):
        self.path = str(path) if path is not None else None
        self.record = record
        self.field = field
        self.reason = reason
        where = [f"file {self.path}"] if self.path else []
        if record is not None:
            where.append(f"record {record}")
        if field is not None:
            where.append(f"field {field!r}")
        super().__init__(f"{', '.join(where)}: {reason}" if where else reason)
