"""A service's persistent key-value store: SQLite in WAL mode, checksummed records."""

from __future__ import annotations

import sqlite3
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec

_enc = msgspec.msgpack.Encoder()
_dec = msgspec.msgpack.Decoder()


class StoreError(Exception):
    """A record failed its checksum or could not be decoded; the message names the key."""


class Store:
    """Keys to MessagePack values, surviving restarts and migration of the service."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value BLOB NOT NULL, crc INTEGER NOT NULL)"
        )

    def set(self, key: str, value: Any) -> None:
        """Store ``value`` (anything MessagePack can hold) under ``key``, durably."""
        blob = _enc.encode(value)
        self._db.execute(
            "INSERT INTO kv(key, value, crc) VALUES (?, ?, ?) "
            "ON CONFLICT(key) DO UPDATE SET value=excluded.value, crc=excluded.crc",
            (key, blob, zlib.crc32(blob)),
        )

    def get(self, key: str, default: Any = None) -> Any:
        """The value under ``key``, or ``default``; raise StoreError if the record is corrupt."""
        row = self._db.execute("SELECT value, crc FROM kv WHERE key = ?", (key,)).fetchone()
        if row is None:
            return default
        blob, crc = row
        if zlib.crc32(blob) != crc:
            raise StoreError(f"store {self.path.name}: record {key!r} failed its checksum")
        try:
            return _dec.decode(blob)
        except ValueError as exc:  # msgspec.DecodeError, or invalid UTF-8 inside
            raise StoreError(f"store {self.path.name}: record {key!r} is undecodable: {exc}") from None

    def delete(self, key: str) -> bool:
        """Remove ``key``; True if it was there."""
        cur = self._db.execute("DELETE FROM kv WHERE key = ?", (key,))
        return cur.rowcount > 0

    def keys(self, prefix: str = "") -> list[str]:
        """Every key starting with ``prefix``, sorted."""
        rows = self._db.execute(
            "SELECT key FROM kv WHERE substr(key, 1, ?) = ? ORDER BY key", (len(prefix), prefix)
        ).fetchall()
        return [r[0] for r in rows]

    def items(self, prefix: str = "") -> Iterator[tuple[str, Any]]:
        """(key, value) pairs under ``prefix``."""
        for k in self.keys(prefix):
            yield k, self.get(k)

    def increment(self, key: str, by: int = 1) -> int:
        """Atomically add ``by`` to an integer counter and return the new value."""
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            value = int(self.get(key, 0)) + by
            self.set(key, value)
        return value

    def close(self) -> None:
        """Close the database."""
        self._db.close()
