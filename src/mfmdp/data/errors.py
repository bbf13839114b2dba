"""The one exception every loader raises for bad input: it names the file, the record and the field."""

from __future__ import annotations


class DataFormatError(ValueError):
    """Bad input data. `path`, `record` (index or id) and `field` say where; `reason` says what."""

    def __init__(self, path: object, reason: str, record: object = None, field: str | None = None):
        self.path = str(path) if path is not None else None
        self.record = record
        self.field = field
        self.reason = reason
        where = ([f"file {self.path}"] if self.path else []) + self._inside()
        super().__init__(f"{', '.join(where)}: {reason}" if where else reason)

    def _inside(self) -> list[str]:
        return ([f"record {self.record}"] if self.record is not None else []) + (
            [f"field {self.field!r}"] if self.field is not None else [])

    def without_path(self) -> str:
        """The message without 'file PATH' (for lists that name the file already)."""
        return f"{', '.join(self._inside())}: {self.reason}" if self._inside() else self.reason
