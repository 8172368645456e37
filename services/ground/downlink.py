"""Store-and-forward of telemetry: a bounded, prioritised SQLite queue and a byte-rate token bucket.

Packets wait here while there is no ground contact (or the downlink budget is spent) and are drained
highest priority first. Delivery is at-least-once: a packet that was sent stays, marked sent, until the
ground acknowledges its identity (TC[15,130]); what is not acknowledged goes out again.
"""

from __future__ import annotations

import contextlib
import math
import sqlite3
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flightos.ground.pus import tm_identity
from services.ground.durable import (
    Corrupt,
    DurableFile,
    is_corruption,
    mark_has_data,
    open_durable,
    open_store,
    quarantine,
)

PRIORITIES = range(8)
"""Valid priorities: 0 (least important, evicted first) .. 7 (most important, sent first)."""

_SCHEMA_VERSION = 2  # 2: identity and sent time of each packet
_CHUNK = 500  # ids per IN (...) clause, below SQLite's historical 999-variable limit


class DownlinkStoreError(Exception):
    """The store's database cannot be opened or used; the message names the file."""


class DownlinkStore(DurableFile):
    """Telemetry packets waiting for a contact or an acknowledgement: SQLite (WAL, synchronous=FULL), bounded.

    A packet is *pending* until sent, then *unacknowledged* (sent, kept) until ground acknowledges it.
    """

    def __init__(self, path: Path, max_bytes: int = 64 * 2**20, max_packets: int = 200_000) -> None:
        if max_bytes < 1 or max_packets < 1:
            raise ValueError(f"max_bytes and max_packets must be >= 1 (got {max_bytes}, {max_packets})")
        self.path = Path(path)
        self.max_bytes = max_bytes
        self.max_packets = max_packets
        self._lock = threading.Lock()
        self._marked = False
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

    def put(self, packet: bytes, priority: int, sent_at: float | None = None) -> int | None:
        """Store one packet durably (committed on return); its row id, or None if refused for lack of room.

        ``sent_at`` stores it as already sent at that time (unacknowledged) instead of pending.
        """
        return self.put_many([(packet, priority, sent_at)])[0]

    def put_many(self, items: Iterable[tuple[bytes, int] | tuple[bytes, int, float | None]]) -> list[int | None]:
        """Store several packets in one transaction (one fsync); per packet as ``put`` would, in order."""
        batch = [
            (_check_packet(item[0], self.max_bytes), _check_priority(item[1]), item[2] if len(item) > 2 else None)
            for item in items
        ]
        if not batch:
            return []
        with self._lock, self._transaction():
            out = [self._put_one(packet, priority, sent_at) for packet, priority, sent_at in batch]
        if not self._marked and any(i is not None for i in out):
            mark_has_data(self.path)  # from now on, losing the file's contents is an incident
            self._marked = True
        return out

    def peek(self, budget_bytes: int, limit: int = 1000, resend_before: float | None = None) -> list[tuple[int, bytes]]:
        """The next packets to send: highest priority first, FIFO within one, whole packets within the budget.

        Pending packets, and (with ``resend_before``) unacknowledged ones sent at or before that time.
        Order is strict: the scan stops at the first packet that does not fit, so a large important
        packet is never overtaken by smaller, less important ones. Nothing is removed or marked (see
        ``mark_sent`` and ``acknowledge``). Packets failing their checksum are dropped and counted as ``corrupt``.
        """
        if limit < 1 or budget_bytes < 1:
            return []
        out: list[tuple[int, bytes]] = []
        corrupt: list[int] = []
        total = 0
        with self._lock:
            rows = self._db.execute(
                "SELECT id, size, crc, data FROM packets WHERE sent_at IS NULL OR sent_at <= ? "
                "ORDER BY priority DESC, id LIMIT ?",
                (-math.inf if resend_before is None else resend_before, limit),
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

    def ack(self, ids: Iterable[int]) -> int:
        """Delete packets by row id as delivered; how many. Unknown or already-deleted ids are ignored."""
        unique = sorted({int(i) for i in ids})
        if not unique:
            return 0
        with self._lock, self._transaction():
            count, _ = self._delete(unique)
            self._counters["delivered"] += count
            self._save_counters("delivered")
        return count

    def mark_sent(self, ids: Iterable[int], now: float) -> None:
        """Record that these packets were sent at ``now``: they stay, unacknowledged, until acknowledged."""
        unique = sorted({int(i) for i in ids})
        if not unique:
            return
        with self._lock, self._transaction():
            for start in range(0, len(unique), _CHUNK):
                chunk = unique[start : start + _CHUNK]
                marks = ",".join("?" * len(chunk))
                (fresh,) = self._db.execute(
                    f"SELECT COUNT(*) FROM packets WHERE sent_at IS NULL AND id IN ({marks})", chunk
                ).fetchone()
                self._db.execute(
                    f"UPDATE packets SET sent_at = ?, sends = sends + 1 WHERE id IN ({marks})", [now, *chunk]
                )
                self._unacked += int(fresh)

    def acknowledge(self, identities: Iterable[bytes]) -> int:
        """Delete the packets whose identity ground acknowledged (TC[15,130]); how many. Unknown ones are ignored."""
        unique = sorted({bytes(i) for i in identities})
        if not unique:
            return 0
        with self._lock, self._transaction():
            ids: list[int] = []
            for start in range(0, len(unique), _CHUNK):
                chunk = unique[start : start + _CHUNK]
                marks = ",".join("?" * len(chunk))
                ids += [r[0] for r in self._db.execute(f"SELECT id FROM packets WHERE ident IN ({marks})", chunk)]
            count, _ = self._delete(ids)
            if count:
                self._counters["delivered"] += count
                self._save_counters("delivered")
        return count

    def requeue(self) -> int:
        """Every unacknowledged packet becomes pending again (a new contact resends them); how many."""
        with self._lock, self._transaction():
            n = int(self._db.execute("UPDATE packets SET sent_at = NULL WHERE sent_at IS NOT NULL").rowcount)
            self._unacked = 0
        return n

    def identities(self) -> list[bytes]:
        """The identities of every stored packet (for tests and ground tools)."""
        with self._lock:
            return [bytes(r[0]) for r in self._db.execute("SELECT ident FROM packets WHERE ident IS NOT NULL")]

    def stats(self) -> dict[str, Any]:
        """Counts for housekeeping: stored packets and bytes, pending and unacknowledged, evictions, deliveries."""
        with self._lock:
            by_priority = [self._counters[f"evicted.{p}"] for p in PRIORITIES]
            return {
                "stored": self._count,
                "pending": self._count - self._unacked,
                "unacked": self._unacked,
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
        if version not in (0, 1, _SCHEMA_VERSION):
            raise DownlinkStoreError(
                f"downlink store {self.path}: schema version {version}, expected {_SCHEMA_VERSION}"
            ) from Corrupt(f"schema version {version}")
        if version == _SCHEMA_VERSION:
            return  # nothing to write: a store on a full disk still opens (and is read)
        with self._transaction():
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS packets (id INTEGER PRIMARY KEY AUTOINCREMENT, "
                "priority INTEGER NOT NULL, size INTEGER NOT NULL, crc INTEGER NOT NULL, data BLOB NOT NULL, "
                "ident BLOB, sent_at REAL, sends INTEGER NOT NULL DEFAULT 0)"
            )
            if version == 1:  # add what version 2 keeps per packet; every stored packet is pending
                for column in ("ident BLOB", "sent_at REAL", "sends INTEGER NOT NULL DEFAULT 0"):
                    self._db.execute(f"ALTER TABLE packets ADD COLUMN {column}")
                rows = self._db.execute("SELECT id, data FROM packets").fetchall()
                self._db.executemany(
                    "UPDATE packets SET ident = ? WHERE id = ?",
                    [(tm_identity(bytes(data)), row_id) for row_id, data in rows],
                )
            self._db.execute("CREATE INDEX IF NOT EXISTS packets_by_priority ON packets (priority, id)")
            self._db.execute("CREATE INDEX IF NOT EXISTS packets_by_ident ON packets (ident)")
            self._db.execute("CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL)")
            self._db.execute(f"PRAGMA user_version = {_SCHEMA_VERSION}")

    def _load_state(self) -> None:
        """Read the totals and counters from the database (at open, and after a failed transaction)."""
        count, size, unacked = self._db.execute(
            "SELECT COUNT(*), COALESCE(SUM(size), 0), COALESCE(SUM(sent_at IS NOT NULL), 0) FROM packets"
        ).fetchone()
        self._count = int(count)
        self._bytes = int(size)
        self._unacked = int(unacked)
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
            if self._db.in_transaction:  # SQLITE_FULL and I/O errors may have rolled it back already
                self._db.execute("ROLLBACK")
            self._load_state()
            raise
        self._db.execute("COMMIT")

    def _put_one(self, packet: bytes, priority: int, sent_at: float | None) -> int | None:
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
            "INSERT INTO packets (priority, size, crc, data, ident, sent_at, sends) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (priority, size, zlib.crc32(packet), packet, tm_identity(packet), sent_at, int(sent_at is not None)),
        )
        self._count += 1
        self._bytes += size
        self._unacked += sent_at is not None
        row_id = cur.lastrowid
        assert row_id is not None
        return row_id

    def _delete(self, ids: list[int]) -> tuple[int, int]:
        """Delete rows by id (inside a transaction); the (count, bytes) actually removed."""
        count = size = sent = 0
        for start in range(0, len(ids), _CHUNK):
            chunk = ids[start : start + _CHUNK]
            marks = ",".join("?" * len(chunk))
            n, b, s = self._db.execute(
                f"SELECT COUNT(*), COALESCE(SUM(size), 0), COALESCE(SUM(sent_at IS NOT NULL), 0) FROM packets "
                f"WHERE id IN ({marks})",
                chunk,
            ).fetchone()
            self._db.execute(f"DELETE FROM packets WHERE id IN ({marks})", chunk)
            count += int(n)
            size += int(b)
            sent += int(s)
        self._count -= count
        self._bytes -= size
        self._unacked -= sent
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


# ---------------------------------------------------------------------- retention with degradation


@dataclass
class Notice:
    """Something the ground should hear about its store: ``kind`` (one event id each), a message, a count."""

    kind: str
    message: str
    count: int = 1
    fields: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Held:
    """A packet held in memory while the store is unusable."""

    id: int
    packet: bytes
    priority: int
    ident: bytes | None
    sent_at: float | None


class Retention:
    """Where downlinked telemetry waits until acknowledged: the durable store while it works, memory while not.

    Never raises for a store that fails: a damaged file is quarantined and replaced by a fresh one; a
    store that cannot be written (disk full, I/O error) is closed and retried every ``retry_s``, while
    packets wait in a bounded memory queue (lowest priority dropped first). What happens is told in
    ``notices`` for the service to raise as events.
    """

    def __init__(
        self,
        path: Path,
        max_bytes: int,
        memory_bytes: int = 1 << 20,
        retry_s: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.path = Path(path)
        self.max_bytes = max_bytes
        self.memory_bytes = memory_bytes
        self.retry_s = retry_s
        self._clock = clock
        self.notices: list[Notice] = []
        self.store: DownlinkStore | None = None
        self.cause = ""
        self._memory: list[_Held] = []
        self._memory_size = 0
        self._next_id = -1
        self._next_retry = 0.0
        self._acked_meanwhile: set[bytes] = set()
        self._dropped = [0] * len(PRIORITIES)
        self._closed = False
        self._last_stats: dict[str, Any] = {
            "stored": 0,
            "pending": 0,
            "unacked": 0,
            "bytes": 0,
            "evicted": 0,
            "evicted_by_priority": [0] * 8,
            "delivered": 0,
            "corrupt": 0,
            "max_packets": 0,
            "max_bytes": max_bytes,
        }
        self._open()

    # ------------------------------------------------------------------ opening and failing

    def _open(self) -> bool:
        """Open (or quarantine and recreate) the store; False if it is unusable for now."""
        opened = open_store(self.path, "downlink store", lambda: DownlinkStore(self.path, max_bytes=self.max_bytes))
        if opened.incident:
            self.notices.append(Notice("quarantined", opened.incident, fields={"file": str(self.path)}))
        if opened.store is None:
            self._unusable(opened.unusable)
            return False
        self.store = opened.store
        self._last_stats = self.store.stats()
        return True

    def _unusable(self, cause: str) -> None:
        first = self.cause == ""
        self.cause = cause or "unknown error"
        self._next_retry = self._clock() + self.retry_s
        if first:
            self.notices.append(
                Notice(
                    "unusable",
                    f"downlink store {self.path} cannot be written ({self.cause}): "
                    "telemetry waits in memory, lowest priority dropped first, until it can",
                    fields={"file": str(self.path), "cause": self.cause},
                )
            )

    def _failed(self, exc: BaseException) -> None:
        """A store operation failed: quarantine a damaged file and start afresh, else retry later."""
        store, self.store = self.store, None
        if store is not None:
            self._last_stats = self._safe_stats(store)
            with contextlib.suppress(Exception):
                store.close()
        if is_corruption(exc):
            try:
                kept = quarantine(self.path)
            except OSError as err:
                self._unusable(f"{exc}; cannot be set aside: {err}")
                return
            self.notices.append(
                Notice(
                    "quarantined",
                    f"downlink store {self.path} cannot be used ({exc})"
                    + (f"; kept as {kept.name}" if kept else "")
                    + "; starting afresh",
                    fields={"file": str(self.path)},
                )
            )
            if self._open():
                self._flush()
            return
        self._unusable(f"{type(exc).__name__}: {exc}")

    def _safe_stats(self, store: DownlinkStore) -> dict[str, Any]:
        try:
            return store.stats()
        except Exception:
            return self._last_stats

    def retry(self) -> None:
        """While the store is unusable, try again every ``retry_s``; on success move what memory held into it."""
        if self.store is not None or self._closed or self._clock() < self._next_retry:
            return
        self._next_retry = self._clock() + self.retry_s
        if self._open():
            self._flush()

    def _flush(self) -> None:
        """Move packets held in memory into the (re)opened store, apply acknowledgements heard meanwhile."""
        assert self.store is not None
        held = len(self._memory)
        try:
            if self._acked_meanwhile:
                self.store.acknowledge(self._acked_meanwhile)
            if self._memory:
                before = self.store.stats()["evicted_by_priority"]
                self.store.put_many([(h.packet, h.priority, h.sent_at) for h in self._memory])
                self._note_evictions(before)
        except Exception as exc:
            self._failed(exc)
            return
        self._acked_meanwhile.clear()
        self._memory.clear()
        self._memory_size = 0
        if self.cause:
            self.notices.append(
                Notice(
                    "recovered",
                    f"downlink store {self.path} usable again: {held} packet(s) moved from memory",
                    fields={"file": str(self.path), "moved": held, "was": self.cause},
                )
            )
        self.cause = ""

    # ------------------------------------------------------------------ what the service does

    def put(self, packet: bytes, priority: int, sent_at: float | None = None) -> bool:
        """Keep a packet until acknowledged (pending, or sent at ``sent_at``); False if it was dropped for room."""
        if self.store is not None:
            try:
                before = self.store.stats()["evicted_by_priority"]
                row = self.store.put(packet, priority, sent_at)
            except (sqlite3.Error, DownlinkStoreError) as exc:
                self._failed(exc)
            else:
                self._note_evictions(before)
                return row is not None
        return self._hold(_check_packet(packet, self.max_bytes), _check_priority(priority), sent_at)

    def pending(self) -> int:
        """Packets waiting for their first send (or a resend after a new contact)."""
        if self.store is not None:
            return int(self.store.stats()["pending"])
        return sum(1 for h in self._memory if h.sent_at is None)

    def peek(self, budget_bytes: int, limit: int = 1000, resend_before: float | None = None) -> list[tuple[int, bytes]]:
        """The next packets to send, as ``DownlinkStore.peek``; from memory while the store is unusable."""
        if self.store is not None:
            try:
                corrupt = self.store.stats()["corrupt"]
                stored = self.store.peek(budget_bytes, limit, resend_before)
                lost = self.store.stats()["corrupt"] - corrupt
                if lost:
                    self.notices.append(
                        Notice(
                            "dropped",
                            f"telemetry dropped, {lost} packet(s) in the downlink store failed their checksum",
                            lost,
                            {"where": "checksum"},
                        )
                    )
                return stored
            except (sqlite3.Error, DownlinkStoreError) as exc:
                self._failed(exc)
        floor = -math.inf if resend_before is None else resend_before
        out: list[tuple[int, bytes]] = []
        total = 0
        for h in sorted(self._memory, key=lambda h: (-h.priority, -h.id)):
            if h.sent_at is not None and h.sent_at > floor:
                continue
            if len(out) >= limit or total + len(h.packet) > budget_bytes:
                break
            total += len(h.packet)
            out.append((h.id, h.packet))
        return out

    def mark_sent(self, ids: list[int], now: float) -> None:
        """Record a send (store rows have ids >= 0, packets held in memory < 0)."""
        held = {i for i in ids if i < 0}
        for h in self._memory:
            if h.id in held:
                h.sent_at = now
        rows = [i for i in ids if i >= 0]
        if rows and self.store is not None:
            try:
                self.store.mark_sent(rows, now)
            except (sqlite3.Error, DownlinkStoreError) as exc:
                self._failed(exc)  # not marked: they are sent again, which is safe

    def acknowledge(self, identities: list[bytes]) -> int:
        """Ground has these packets: they leave memory and the store; how many were found."""
        wanted = set(identities)
        kept = [h for h in self._memory if h.ident not in wanted]
        count = len(self._memory) - len(kept)
        if count:
            self._memory = kept
            self._memory_size = sum(len(h.packet) for h in kept)
        if self.store is not None:
            try:
                return count + self.store.acknowledge(wanted)
            except (sqlite3.Error, DownlinkStoreError) as exc:
                self._failed(exc)
        if len(self._acked_meanwhile) < 200_000:  # applied when the store is back (else resent: still safe)
            self._acked_meanwhile.update(wanted)
        return count

    def requeue(self) -> None:
        """A new contact: everything sent but not acknowledged goes out again."""
        for h in self._memory:
            h.sent_at = None
        if self.store is not None:
            try:
                self.store.requeue()
            except (sqlite3.Error, DownlinkStoreError) as exc:
                self._failed(exc)

    def take_notices(self) -> list[Notice]:
        """What happened since the last call (for events)."""
        out, self.notices = self.notices, []
        return out

    def stats(self) -> dict[str, Any]:
        """The store's counts (the last known while it is unusable), and the state of the memory queue."""
        if self.store is not None:
            try:
                self._last_stats = self.store.stats()
            except Exception as exc:
                self._failed(exc)
        held_pending = sum(1 for h in self._memory if h.sent_at is None)
        return {
            **self._last_stats,
            "usable": self.store is not None,
            "cause": self.cause,
            "memory": {
                "packets": len(self._memory),
                "bytes": self._memory_size,
                "pending": held_pending,
                "unacked": len(self._memory) - held_pending,
                "max_bytes": self.memory_bytes,
                "dropped": sum(self._dropped),
                "dropped_by_priority": list(self._dropped),
            },
        }

    def close(self) -> None:
        """Close the store for good (what memory holds is lost: it could not be written).

        Calls after this (a status or a packet racing the service's stop) see the last known counts and
        the memory queue; they never touch the closed file, so a shutdown is never taken for damage.
        """
        self._closed = True
        store, self.store = self.store, None
        if store is not None:
            self._last_stats = self._safe_stats(store)
            with contextlib.suppress(Exception):
                store.close()

    # ------------------------------------------------------------------ internals

    def _hold(self, packet: bytes, priority: int, sent_at: float | None) -> bool:
        """Keep a packet in memory, evicting strictly lower priorities (oldest first); False if refused."""
        size = len(packet)
        if size > self.memory_bytes:
            return self._drop({priority: 1}, "memory queue")
        excess = self._memory_size + size - self.memory_bytes
        victims: list[_Held] = []
        if excess > 0:
            for h in sorted(self._memory, key=lambda h: (h.priority, -h.id)):
                if excess <= 0 or h.priority >= priority:
                    break
                victims.append(h)
                excess -= len(h.packet)
            if excess > 0:
                return self._drop({priority: 1}, "memory queue")
            gone = {id(v) for v in victims}
            self._memory = [h for h in self._memory if id(h) not in gone]
            self._memory_size -= sum(len(v.packet) for v in victims)
            counts: dict[int, int] = {}
            for v in victims:
                counts[v.priority] = counts.get(v.priority, 0) + 1
            self._drop(counts, "memory queue")
        self._memory.append(_Held(self._next_id, packet, priority, tm_identity(packet), sent_at))
        self._next_id -= 1
        self._memory_size += size
        return True

    def _drop(self, by_priority: dict[int, int], where: str) -> bool:
        """Count dropped packets and tell (one notice; the service rate-limits the events)."""
        for p, n in by_priority.items():
            self._dropped[p] += n
        n = sum(by_priority.values())
        detail = ", ".join(f"{c} of priority {p}" for p, c in sorted(by_priority.items()))
        self.notices.append(
            Notice(
                "dropped",
                f"telemetry dropped, {where} full: {detail}",
                n,
                {"where": where, "by_priority": {str(p): c for p, c in by_priority.items()}},
            )
        )
        return False

    def _note_evictions(self, before: list[int]) -> None:
        """Turn evictions the store made (or a packet it refused) into a 'dropped' notice."""
        assert self.store is not None
        after = self.store.stats()["evicted_by_priority"]
        delta = {p: after[p] - before[p] for p in PRIORITIES if after[p] > before[p]}
        if delta:
            self._drop(delta, "downlink store")


class RateLimit:
    """At most one event per kind per ``interval_s``: the first at once, later ones summed into the next."""

    def __init__(self, interval_s: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval_s = interval_s
        self._clock = clock
        self._last: dict[str, float] = {}
        self._held: dict[str, Notice] = {}

    def offer(self, notice: Notice) -> Notice | None:
        """The notice to raise now (with counts held since the last one), or None while the kind is quiet."""
        held = self._held.pop(notice.kind, None)
        if held is not None:
            notice = Notice(notice.kind, notice.message, held.count + notice.count, notice.fields)
        last = self._last.get(notice.kind)
        now = self._clock()
        if last is None or now - last >= self.interval_s:
            self._last[notice.kind] = now
            return notice
        self._held[notice.kind] = notice
        return None

    def due(self) -> list[Notice]:
        """Held notices whose kind has been quiet for the interval."""
        now = self._clock()
        out = []
        for kind in [k for k in self._held if now - self._last.get(k, -math.inf) >= self.interval_s]:
            self._last[kind] = now
            out.append(self._held.pop(kind))
        return out
