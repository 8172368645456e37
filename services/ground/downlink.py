"""Store-and-forward of telemetry: a bounded, prioritised SQLite queue and a byte-rate token bucket.

Packets wait here while there is no ground contact (or the downlink budget is spent) and are drained
highest priority first. Delivery is at-least-once: a packet leaves the store only when acknowledged.
"""

from __future__ import annotations

import math
import sqlite3
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from services.ground.durable import DurableFile, open_durable

PRIORITIES = range(8)
"""Valid priorities: 0 (least important, evicted first) .. 7 (most important, sent first)."""

_SCHEMA_VERSION = 1
_CHUNK = 500  # ids per IN (...) clause, below SQLite's historical 999-variable limit


class DownlinkStoreError(Exception):
    """The store's database cannot be opened or used; the message names the file."""


class DownlinkStore(DurableFile):
    """Telemetry packets waiting for a contact: SQLite (WAL, synchronous=FULL), by priority, bounded."""

    def __init__(self, path: Path, max_bytes: int = 64 * 2**20, max_packets: int = 200_000) -> None:
        if max_bytes < 1 or max_packets < 1:
            raise ValueError(f"max_bytes and max_packets must be >= 1 (got {max_bytes}, {max_packets})")
        self.path = Path(path)
        self.max_bytes = max_bytes
        self.max_packets = max_packets
        self._lock = threading.Lock()
        self._db = open_durable(self.path, "downlink store", DownlinkStoreError)
        try:
            self._init_schema()
            self._load_state()
        except DownlinkStoreError:
            self._db.close()
            raise
        except sqlite3.Error as exc:
            self._db.close()
            raise DownlinkStoreError(f"downlink store {self.path}: cannot open: {exc}") from exc

    # ------------------------------------------------------------------ public API

    def put(self, packet: bytes, priority: int) -> int | None:
        """Store one packet durably (committed on return); its row id, or None if refused for lack of room."""
        return self.put_many([(packet, priority)])[0]

    def put_many(self, items: Iterable[tuple[bytes, int]]) -> list[int | None]:
        """Store several packets in one transaction (one fsync); per packet as ``put`` would, in order."""
        batch = [(_check_packet(packet, self.max_bytes), _check_priority(priority)) for packet, priority in items]
        if not batch:
            return []
        with self._lock, self._transaction():
            return [self._put_one(packet, priority) for packet, priority in batch]

    def peek(self, budget_bytes: int, limit: int = 1000) -> list[tuple[int, bytes]]:
        """The next packets to send: highest priority first, FIFO within one, whole packets within the budget.

        Order is strict: the scan stops at the first packet that does not fit, so a large important
        packet is never overtaken by smaller, less important ones. Nothing is removed (see ``ack``).
        Packets failing their checksum are dropped and counted as ``corrupt``.
        """
        if limit < 1 or budget_bytes < 1:
            return []
        out: list[tuple[int, bytes]] = []
        corrupt: list[int] = []
        total = 0
        with self._lock:
            rows = self._db.execute(
                "SELECT id, size, crc, data FROM packets ORDER BY priority DESC, id LIMIT ?", (limit,)
            )
            for row_id, size, crc, data in rows:
                if zlib.crc32(data) != crc or len(data) != size:
                    corrupt.append(row_id)
                    continue
                if total + size > budget_bytes:
                    break
                total += size
                out.append((row_id, bytes(data)))
            rows.close()
            if corrupt:
                with self._transaction():
                    count, _ = self._delete(corrupt)
                    self._counters["corrupt"] += count
                    self._save_counters("corrupt")
        return out

    def ack(self, ids: Iterable[int]) -> None:
        """Delete packets that were sent; unknown or already-acknowledged ids are ignored."""
        unique = sorted({int(i) for i in ids})
        if not unique:
            return
        with self._lock, self._transaction():
            count, _ = self._delete(unique)
            self._counters["delivered"] += count
            self._save_counters("delivered")

    def stats(self) -> dict[str, Any]:
        """Counts for housekeeping: stored packets and bytes, evictions (total and per priority), deliveries."""
        with self._lock:
            by_priority = [self._counters[f"evicted.{p}"] for p in PRIORITIES]
            return {
                "stored": self._count,
                "bytes": self._bytes,
                "evicted": sum(by_priority),
                "evicted_by_priority": by_priority,
                "delivered": self._counters["delivered"],
                "corrupt": self._counters["corrupt"],
                "max_packets": self.max_packets,
                "max_bytes": self.max_bytes,
            }

    # ------------------------------------------------------------------ internals

    def _init_schema(self) -> None:
        """Create the tables on first use; refuse a file written by an unknown schema version."""
        version = int(self._db.execute("PRAGMA user_version").fetchone()[0])
        if version not in (0, _SCHEMA_VERSION):
            raise DownlinkStoreError(
                f"downlink store {self.path}: schema version {version}, expected {_SCHEMA_VERSION}"
            )
        with self._transaction():
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS packets (id INTEGER PRIMARY KEY AUTOINCREMENT, "
                "priority INTEGER NOT NULL, size INTEGER NOT NULL, crc INTEGER NOT NULL, data BLOB NOT NULL)"
            )
            self._db.execute("CREATE INDEX IF NOT EXISTS packets_by_priority ON packets (priority, id)")
            self._db.execute("CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL)")
            self._db.execute(f"PRAGMA user_version = {_SCHEMA_VERSION}")

    def _load_state(self) -> None:
        """Read the totals and counters from the database (at open, and after a failed transaction)."""
        count, size = self._db.execute("SELECT COUNT(*), COALESCE(SUM(size), 0) FROM packets").fetchone()
        self._count = int(count)
        self._bytes = int(size)
        self._counters = dict.fromkeys(_COUNTER_NAMES, 0)
        for name, value in self._db.execute("SELECT name, value FROM counters"):
            if name in self._counters:
                self._counters[name] = int(value)

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        """BEGIN IMMEDIATE .. COMMIT; on failure roll back and re-read the in-memory totals."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            self._load_state()
            raise
        self._db.execute("COMMIT")

    def _put_one(self, packet: bytes, priority: int) -> int | None:
        """Make room (evicting strictly lower priorities, oldest first) and insert; None if no room can be made."""
        size = len(packet)
        excess_count = self._count + 1 - self.max_packets
        excess_bytes = self._bytes + size - self.max_bytes
        if excess_count > 0 or excess_bytes > 0:
            victims: list[int] = []
            victim_priorities: list[int] = []
            rows = self._db.execute(
                "SELECT id, priority, size FROM packets WHERE priority < ? ORDER BY priority, id", (priority,)
            )
            for row_id, victim_priority, victim_size in rows:
                if excess_count <= 0 and excess_bytes <= 0:
                    break
                victims.append(row_id)
                victim_priorities.append(victim_priority)
                excess_count -= 1
                excess_bytes -= victim_size
            rows.close()
            if excess_count > 0 or excess_bytes > 0:
                self._counters[f"evicted.{priority}"] += 1
                self._save_counters(f"evicted.{priority}")
                return None
            self._delete(victims)
            for p in set(victim_priorities):
                self._counters[f"evicted.{p}"] += victim_priorities.count(p)
                self._save_counters(f"evicted.{p}")
        cur = self._db.execute(
            "INSERT INTO packets (priority, size, crc, data) VALUES (?, ?, ?, ?)",
            (priority, size, zlib.crc32(packet), packet),
        )
        self._count += 1
        self._bytes += size
        row_id = cur.lastrowid
        assert row_id is not None
        return row_id

    def _delete(self, ids: list[int]) -> tuple[int, int]:
        """Delete rows by id (inside a transaction); the (count, bytes) actually removed."""
        count = size = 0
        for start in range(0, len(ids), _CHUNK):
            chunk = ids[start : start + _CHUNK]
            marks = ",".join("?" * len(chunk))
            n, b = self._db.execute(
                f"SELECT COUNT(*), COALESCE(SUM(size), 0) FROM packets WHERE id IN ({marks})", chunk
            ).fetchone()
            self._db.execute(f"DELETE FROM packets WHERE id IN ({marks})", chunk)
            count += int(n)
            size += int(b)
        self._count -= count
        self._bytes -= size
        return count, size

    def _save_counters(self, *names: str) -> None:
        """Write counters into the counters table (inside the current transaction)."""
        self._db.executemany(
            "INSERT INTO counters (name, value) VALUES (?, ?) ON CONFLICT(name) DO UPDATE SET value = excluded.value",
            [(name, self._counters[name]) for name in names],
        )


_COUNTER_NAMES = ("delivered", "corrupt", *(f"evicted.{p}" for p in PRIORITIES))


def _check_packet(packet: bytes, max_bytes: int) -> bytes:
    """A non-empty bytes packet no larger than the whole store."""
    if not isinstance(packet, (bytes, bytearray, memoryview)):
        raise TypeError(f"packet must be bytes, not {type(packet).__name__}")
    data = bytes(packet)
    if not data:
        raise ValueError("packet is empty")
    if len(data) > max_bytes:
        raise ValueError(f"packet of {len(data)} bytes can never fit a store of {max_bytes} bytes")
    return data


def _check_priority(priority: int) -> int:
    """An integer priority in 0..7."""
    if isinstance(priority, bool) or not isinstance(priority, int) or priority not in PRIORITIES:
        raise ValueError(f"priority must be an integer 0..7, got {priority!r}")
    return priority


class TokenBucket:
    """A downlink budget in bytes per second, with a burst allowance; time comes from an injected clock."""

    def __init__(self, rate_bytes_s: float, burst_bytes: float, clock: Callable[[], float] = time.monotonic) -> None:
        if not (math.isfinite(rate_bytes_s) and rate_bytes_s >= 0):
            raise ValueError(f"rate_bytes_s must be a finite number >= 0, got {rate_bytes_s!r}")
        if not (math.isfinite(burst_bytes) and burst_bytes > 0):
            raise ValueError(f"burst_bytes must be a finite number > 0, got {burst_bytes!r}")
        self.rate = float(rate_bytes_s)
        self.burst = float(burst_bytes)
        self._clock = clock
        self._tokens = self.burst  # starts full: a new contact may send a burst at once
        self._last = clock()

    def available(self) -> float:
        """Bytes that may be sent now (refilled at ``rate`` since the last call, capped at ``burst``)."""
        now = self._clock()
        elapsed = max(0.0, now - self._last)  # a clock going backwards refills nothing
        self._last = now
        self._tokens = min(self.burst, self._tokens + elapsed * self.rate)
        return self._tokens

    def take(self, n: int) -> bool:
        """Deduct ``n`` bytes and return True if they fit now; otherwise change nothing and return False."""
        if n < 0:
            raise ValueError(f"cannot take a negative number of bytes ({n})")
        if n > self.available():
            return False
        self._tokens -= n
        return True

    def time_until(self, n: int) -> float:
        """Seconds until ``n`` bytes fit (0 if they fit now; inf if they never can: n > burst or rate 0)."""
        missing = n - self.available()
        if missing <= 0:
            return 0.0
        if n > self.burst or self.rate == 0:
            return math.inf
        return missing / self.rate
