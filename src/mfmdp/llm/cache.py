"""A persistent key -> JSON cache in sqlite: reruns cost nothing, a crash loses nothing.

Each `put` commits at once (WAL journal), so work done before an interruption is kept. Safe to use
from several threads of one process.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
from pathlib import Path


def cache_key(*parts: str) -> str:
    """sha256 over the parts, separated by NUL so that ('ab','c') != ('a','bc')."""
    return hashlib.sha256("\0".join(parts).encode("utf-8")).hexdigest()


class SqliteCache:
    def __init__(self, path: str | Path, table: str = "entries") -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if not table.isidentifier():
            raise ValueError(f"bad cache table name {table!r}")
        self.table = table
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(self.path), check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(f"CREATE TABLE IF NOT EXISTS {table} (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        self._db.commit()

    def get_many(self, keys: list[str]) -> dict[str, object]:
        out: dict[str, object] = {}
        with self._lock:
            for i in range(0, len(keys), 500):
                chunk = keys[i:i + 500]
                q = f"SELECT key, value FROM {self.table} WHERE key IN ({','.join('?' * len(chunk))})"
                out.update((k, json.loads(v)) for k, v in self._db.execute(q, chunk))
        return out

    def put_many(self, items: dict[str, object]) -> None:
        with self._lock:
            self._db.executemany(
                f"INSERT OR REPLACE INTO {self.table} (key, value) VALUES (?, ?)",
                [(k, json.dumps(v, ensure_ascii=False)) for k, v in items.items()],
            )
            self._db.commit()

    def __len__(self) -> int:
        with self._lock:
            return self._db.execute(f"SELECT COUNT(*) FROM {self.table}").fetchone()[0]

    def close(self) -> None:
        with self._lock:
            self._db.close()
