"""PUS ST[11] time-based schedule: time-tagged telecommands kept in SQLite and released at their time.

Release is at-most-once: ``due`` removes what it returns in the same transaction, so a reboot after
release never runs a command twice (running a command twice is worse than missing it).
"""

from __future__ import annotations

import math
import sqlite3
import struct
import threading
import zlib
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from services.ground.durable import Corrupt, DurableFile, mark_has_data, open_durable

_SCHEMA_VERSION = 1
_CHUNK = 500  # ids per IN (...) clause, below SQLite's historical 999-variable limit
_HEAD = struct.Struct("<dqd")


class ScheduleError(Exception):
    """The schedule's database cannot be opened or used; the message names the file."""


@dataclass(frozen=True)
class Activity:
    """One scheduled telecommand: released at ``release_utc``; ``request_id`` identifies it to ground."""

    id: int
    release_utc: float
    tc: bytes
    request_id: int
    source: str
    inserted_utc: float


def _crc(release_utc: float, tc: bytes, request_id: int, source: str, inserted_utc: float) -> int:
    """Checksum over every field of an activity, so a flipped release time is caught like a flipped TC."""
    head = _HEAD.pack(release_utc, request_id, inserted_utc)
    return zlib.crc32(source.encode(), zlib.crc32(tc, zlib.crc32(head)))


class Schedule(DurableFile):
    """Time-tagged telecommands released at their time; survives reboots (SQLite)."""

    def __init__(self, path: Path, max_activities: int = 10_000) -> None:
        if max_activities < 1:
            raise ValueError(f"max_activities must be >= 1, got {max_activities}")
        self.path = Path(path)
        self.max_activities = max_activities
        self._lock = threading.Lock()
        self._db = open_durable(self.path, "schedule", ScheduleError)
        try:
            self._init_schema()
            self._enabled = bool(self._meta("enabled"))
        except ScheduleError:
            self._db.close()
            raise
        except sqlite3.Error as exc:
            self._db.close()
            raise ScheduleError(f"schedule {self.path}: cannot open: {exc}") from exc

    # ------------------------------------------------------------------ public API

    @property
    def enabled(self) -> bool:
        """Whether due activities are released (ST[11] enable/disable release); persisted."""
        return self._enabled

    @enabled.setter
    def enabled(self, on: bool) -> None:
        self.set_enabled(on)

    def set_enabled(self, on: bool) -> None:
        """Enable or disable release, durably; a disabled schedule keeps its activities."""
        with self._lock:
            with self._transaction():
                self._set_meta("enabled", int(bool(on)))
            self._enabled = bool(on)

    @property
    def corrupt(self) -> int:
        """Activities dropped because they failed their checksum (persisted)."""
        with self._lock:
            return self._meta("corrupt")

    def insert(self, release_utc: float, tc: bytes, request_id: int, source: str, now_utc: float) -> int:
        """Schedule ``tc`` for ``release_utc``; its activity id. ValueError if in the past or the schedule is full."""
        if not isinstance(tc, (bytes, bytearray, memoryview)):
            raise TypeError(f"tc must be bytes, not {type(tc).__name__}")
        if not (_is_time(release_utc) and _is_time(now_utc)):
            raise ValueError(f"release and current times must be finite numbers, got {release_utc!r}, {now_utc!r}")
        if release_utc < now_utc:
            raise ValueError(f"release time {release_utc} is in the past (now {now_utc})")
        if isinstance(request_id, bool) or not isinstance(request_id, int) or not -(2**63) <= request_id < 2**63:
            raise ValueError(f"request_id must be a 64-bit integer, got {request_id!r}")
        if not isinstance(source, str):
            raise TypeError(f"source must be a str, not {type(source).__name__}")
        tc = bytes(tc)
        release, inserted = float(release_utc), float(now_utc)
        with self._lock, self._transaction():
            (count,) = self._db.execute("SELECT COUNT(*) FROM activities").fetchone()
            if count >= self.max_activities:
                raise ValueError(f"schedule is full ({count} of {self.max_activities} activities)")
            cur = self._db.execute(
                "INSERT INTO activities (release_utc, tc, request_id, source, inserted_utc, crc) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (release, tc, request_id, source, inserted, _crc(release, tc, request_id, source, inserted)),
            )
        row_id = cur.lastrowid
        assert row_id is not None
        mark_has_data(self.path)  # from now on, losing the file's contents is an incident
        return row_id

    def delete(self, request_ids: Iterable[int]) -> int:
        """Delete every activity carrying one of ``request_ids``; how many were deleted."""
        unique = sorted({int(r) for r in request_ids})
        deleted = 0
        with self._lock, self._transaction():
            for start in range(0, len(unique), _CHUNK):
                chunk = unique[start : start + _CHUNK]
                marks = ",".join("?" * len(chunk))
                deleted += self._db.execute(f"DELETE FROM activities WHERE request_id IN ({marks})", chunk).rowcount
        return deleted

    def reset(self) -> int:
        """Delete every activity; how many were deleted. The enabled flag is left as it is."""
        with self._lock, self._transaction():
            return int(self._db.execute("DELETE FROM activities").rowcount)

    def time_shift(self, delta_s: float, now_utc: float) -> int:
        """Move every release time by ``delta_s``; how many moved. ValueError (nothing moved) if any would be past."""
        if not (_is_time(delta_s) and _is_time(now_utc)):
            raise ValueError(f"time shift and current time must be finite numbers, got {delta_s!r}, {now_utc!r}")
        with self._lock, self._transaction():
            rows = self._db.execute(
                "SELECT id, release_utc, tc, request_id, source, inserted_utc, crc FROM activities "
                "ORDER BY release_utc, id"
            ).fetchall()
            activities = self._verified(rows, count=False)  # a corrupt row is not re-signed: due drops it
            if activities and activities[0].release_utc + delta_s < now_utc:
                first = activities[0]
                raise ValueError(
                    f"time shift of {delta_s} s would move activity {first.id} to {first.release_utc + delta_s}, "
                    f"in the past (now {now_utc})"
                )
            updates = []
            for activity in activities:
                shifted = activity.release_utc + delta_s
                crc = _crc(shifted, activity.tc, activity.request_id, activity.source, activity.inserted_utc)
                updates.append((shifted, crc, activity.id))
            self._db.executemany("UPDATE activities SET release_utc = ?, crc = ? WHERE id = ?", updates)
        return len(updates)

    def due(self, now_utc: float) -> list[Activity]:
        """If enabled, remove and return every activity with release <= now, in release order, atomically."""
        if not self._enabled:
            return []
        with self._lock, self._transaction():
            rows = self._db.execute(
                "SELECT id, release_utc, tc, request_id, source, inserted_utc, crc FROM activities "
                "WHERE release_utc <= ? ORDER BY release_utc, id",
                (now_utc,),
            ).fetchall()
            if not rows:
                return []
            self._delete_ids([r[0] for r in rows])
            return self._verified(rows)

    def summary(self) -> list[Activity]:
        """Every activity, in release order (ST[11] summary / detail report)."""
        with self._lock, self._transaction():
            rows = self._db.execute(
                "SELECT id, release_utc, tc, request_id, source, inserted_utc, crc FROM activities "
                "ORDER BY release_utc, id"
            ).fetchall()
            return self._verified(rows, drop=True)

    def next_release(self) -> float | None:
        """The earliest release time, or None if the schedule is empty."""
        with self._lock:
            (value,) = self._db.execute("SELECT MIN(release_utc) FROM activities").fetchone()
        return None if value is None else float(value)

    # ------------------------------------------------------------------ internals

    def _init_schema(self) -> None:
        """Create the tables on first use (enabled by default); refuse an unknown schema version."""
        version = int(self._db.execute("PRAGMA user_version").fetchone()[0])
        if version not in (0, _SCHEMA_VERSION):
            raise ScheduleError(
                f"schedule {self.path}: schema version {version}, expected {_SCHEMA_VERSION}"
            ) from Corrupt(f"schema version {version}")
        if version == _SCHEMA_VERSION:
            return  # nothing to write: a schedule on a full disk still opens (and is read)
        with self._transaction():
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS activities (id INTEGER PRIMARY KEY AUTOINCREMENT, "
                "release_utc REAL NOT NULL, tc BLOB NOT NULL, request_id INTEGER NOT NULL, source TEXT NOT NULL, "
                "inserted_utc REAL NOT NULL, crc INTEGER NOT NULL)"
            )
            self._db.execute("CREATE INDEX IF NOT EXISTS activities_by_release ON activities (release_utc, id)")
            self._db.execute("CREATE INDEX IF NOT EXISTS activities_by_request ON activities (request_id)")
            self._db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL)")
            self._db.execute("INSERT OR IGNORE INTO meta (key, value) VALUES ('enabled', 1), ('corrupt', 0)")
            self._db.execute(f"PRAGMA user_version = {_SCHEMA_VERSION}")

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        """BEGIN IMMEDIATE .. COMMIT, rolled back on any exception."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            if self._db.in_transaction:  # SQLITE_FULL and I/O errors may have rolled it back already
                self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def _meta(self, key: str) -> int:
        """An integer from the meta table (0 if absent)."""
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return 0 if row is None else int(row[0])

    def _set_meta(self, key: str, value: int) -> None:
        """Write an integer to the meta table (inside a transaction)."""
        self._db.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

    def _delete_ids(self, ids: list[int]) -> None:
        """Delete activities by id (inside a transaction)."""
        for start in range(0, len(ids), _CHUNK):
            chunk = ids[start : start + _CHUNK]
            self._db.execute(f"DELETE FROM activities WHERE id IN ({','.join('?' * len(chunk))})", chunk)

    def _verified(self, rows: list[Any], drop: bool = False, count: bool = True) -> list[Activity]:
        """Rows as Activities, leaving out those failing their checksum: ``count`` them, ``drop`` deletes them."""
        good: list[Activity] = []
        bad: list[int] = []
        for row_id, release, tc, request_id, source, inserted, crc in rows:
            try:
                blob = bytes(tc)
                ok = isinstance(source, str) and _crc(release, blob, request_id, source, inserted) == crc
            except (TypeError, ValueError, struct.error):  # a flipped bit may also change a column's type
                ok = False
            if not ok:
                bad.append(row_id)
                continue
            good.append(Activity(row_id, float(release), blob, int(request_id), source, float(inserted)))
        if bad and count:
            if drop:
                self._delete_ids(bad)
            self._set_meta("corrupt", self._meta("corrupt") + len(bad))
        return good


def _is_time(value: float) -> bool:
    """A finite int or float (bools and NaN are not times)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
