"""A service's persistent key-value store: SQLite in WAL mode, checksummed records.

A store that cannot be opened (a corrupt header, not a database) or that lost its data (truncated to
zero bytes, deleted) is never silently replaced: the damaged file is kept beside it under a
``.corrupt-<UTC time>`` name, the service starts with a fresh store, and ``incidents`` says what happened
so the host raises a HIGH event naming the file and the cause.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec

_enc = msgspec.msgpack.Encoder()
_dec = msgspec.msgpack.Decoder()
_SIDECARS = ("-wal", "-shm")


class StoreError(Exception):
    """A record failed its checksum or could not be decoded; the message names the key."""


class Store:
    """Keys to MessagePack values, surviving restarts and migration of the service."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.incidents: list[str] = []
        """What was wrong at open and what was done about it (one line each), for a HIGH event."""
        self._marker = path.with_name(path.name + ".has-data")
        self._has_data = self._marker.exists()
        lost = self._lost_data()
        if lost:
            self._quarantine(lost)
        try:
            self._db = self._open()
        except sqlite3.DatabaseError as exc:
            self._quarantine(f"cannot be opened: {exc}")
            self._db = self._open()

    def _lost_data(self) -> str:
        """Why the file no longer holds the data it once had ("" when all is well)."""
        if not self._has_data:
            return ""
        if not self.path.exists():
            return "is missing although it held data (deleted?)"
        if self.path.stat().st_size == 0:
            return "was truncated to 0 bytes although it held data"
        return ""

    def _open(self) -> sqlite3.Connection:
        db = sqlite3.connect(str(self.path), isolation_level=None, check_same_thread=False)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute(
                "CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value BLOB NOT NULL, crc INTEGER NOT NULL)"
            )
            check = db.execute("PRAGMA quick_check").fetchone()
            if check is None or check[0] != "ok":
                raise sqlite3.DatabaseError(f"integrity check failed: {check[0] if check else 'no answer'}")
        except sqlite3.DatabaseError:
            db.close()
            raise
        return db

    def _quarantine(self, cause: str) -> None:
        """Keep the damaged file under a new name and start afresh; remember the incident."""
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        kept = self.path.with_name(f"{self.path.name}.corrupt-{stamp}")
        n = 1
        while kept.exists():  # two incidents in one second keep both files
            kept = self.path.with_name(f"{self.path.name}.corrupt-{stamp}-{n}")
            n += 1
        moved = False
        if self.path.exists():
            os.replace(self.path, kept)
            moved = True
        for suffix in _SIDECARS:
            side = self.path.with_name(self.path.name + suffix)
            if side.exists():
                os.replace(side, kept.with_name(kept.name + suffix))
        with contextlib.suppress(FileNotFoundError):
            self._marker.unlink()
        self._has_data = False
        self.incidents.append(
            f"store {self.path} {cause}; "
            + (f"kept as {kept.name}, " if moved else "")
            + "starting with an empty store"
        )

    def set(self, key: str, value: Any) -> None:
        """Store ``value`` (anything MessagePack can hold) under ``key``, durably."""
        blob = _enc.encode(value)
        self._db.execute(
            "INSERT INTO kv(key, value, crc) VALUES (?, ?, ?) "
            "ON CONFLICT(key) DO UPDATE SET value=excluded.value, crc=excluded.crc",
            (key, blob, zlib.crc32(blob)),
        )
        if not self._has_data:  # once it holds data, losing the file is an incident, not a fresh start
            self._has_data = True
            with contextlib.suppress(OSError):
                self._marker.touch()

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
