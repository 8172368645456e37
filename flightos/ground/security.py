"""Authenticated telecommands: a MAC and an anti-replay counter in a trailer, keys provisioned per key id.

Trailer at the end of the application data: key id (u16), counter (u64), MAC (16 bytes) — the MAC
is HMAC-SHA256, truncated, over the whole packet up to the MAC (header, secondary header, data,
key id, counter). The CRC, computed by spacepackets, covers everything including the MAC. The
highest accepted counter per key is committed to disk *before* the command runs, so a reboot cannot
re-open old counters.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import hmac
import json
import os
import secrets
import sqlite3
import struct
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from spacepackets.ecss import PusTc

from flightos.ground.codes import Failure

MAC_LEN = 16
TRAILER = struct.Struct(">HQ")
TRAILER_LEN = TRAILER.size + MAC_LEN
CRC_LEN = 2
KEY_LEN = 32


class AuthError(Exception):
    """A telecommand failed authentication; ``code`` is its ST[01] failure code."""

    def __init__(self, code: Failure, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def mac(key: bytes, covered: bytes) -> bytes:
    """The truncated HMAC-SHA256 of the covered bytes."""
    return hmac.new(key, covered, hashlib.sha256).digest()[:MAC_LEN]


def secure_tc(
    service: int,
    subtype: int,
    payload: bytes,
    *,
    key_id: int,
    key: bytes,
    counter: int,
    apid: int,
    seq_count: int,
    source_id: int = 0,
    ack_flags: int = 0b1111,
) -> bytes:
    """Build an authenticated telecommand (what a ground tool sends)."""

    def build(m: bytes) -> bytes:
        data = payload + TRAILER.pack(key_id, counter) + m
        return bytes(
            PusTc(
                service=service,
                message_subtype=subtype,
                apid=apid,
                seq_count=seq_count & 0x3FFF,
                app_data=data,
                source_id=source_id,
                ack_flags=ack_flags,
            ).pack()
        )

    raw = build(b"\x00" * MAC_LEN)
    return build(mac(key, raw[: -(MAC_LEN + CRC_LEN)]))


@dataclass(frozen=True)
class Sealed:
    """What a verified trailer carried."""

    payload: bytes
    key_id: int
    counter: int


def open_tc(raw: bytes, app_data: bytes, keys: KeyStore) -> Sealed:
    """Check the trailer of a CRC-valid telecommand; return the payload or raise AuthError (no counter check)."""
    if len(app_data) < TRAILER_LEN:
        raise AuthError(Failure.AUTH_MISSING, "no authentication trailer (key id, counter, MAC)")
    key_id, counter = TRAILER.unpack_from(app_data, len(app_data) - TRAILER_LEN)
    key = keys.get(key_id)
    if key is None:
        raise AuthError(Failure.AUTH_UNKNOWN_KEY, f"unknown key id {key_id}")
    expected = mac(key, raw[: -(MAC_LEN + CRC_LEN)])
    if not hmac.compare_digest(expected, raw[-(MAC_LEN + CRC_LEN) : -CRC_LEN]):
        raise AuthError(Failure.AUTH_BAD_MAC, f"MAC does not verify under key {key_id}")
    return Sealed(app_data[:-TRAILER_LEN], key_id, counter)


class KeyStore:
    """Key id -> 32-byte key, in a JSON file readable only by its owner (mode 0600).

    Each key also carries whether the board has ever accepted a counter under it ("started"): a key
    that started and has no counter in the anti-replay database means that database was lost, not
    that the key is new (docs/ground.md, "Replay protection"). Every change re-reads the file under a
    lock, so the CLI and a running ground service never overwrite each other's changes.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._keys: dict[int, bytes] = {}
        self._started: dict[int, float | None] = {}
        """When counters started under each key (None: never; 0: a key file from before this was recorded)."""
        self.reload()

    def reload(self) -> None:
        """Read the file again (a missing file is an empty store)."""
        try:
            raw = json.loads(self.path.read_text())
        except FileNotFoundError:
            self._keys, self._started = {}, {}
            return
        except (OSError, ValueError) as exc:
            raise ValueError(f"{self.path}: unreadable key file: {exc}") from None
        keys: dict[int, bytes] = {}
        started: dict[int, float | None] = {}
        for k, v in raw.get("keys", {}).items():
            try:
                key = bytes.fromhex(v["key"])
            except (KeyError, TypeError, ValueError):
                raise ValueError(f"{self.path}: key {k}: expected a hex 'key'") from None
            if len(key) != KEY_LEN:
                raise ValueError(f"{self.path}: key {k}: expected {KEY_LEN} bytes, got {len(key)}")
            keys[int(k)] = key
            # a key written before "started" existed may have been used: it counts as started (fail secure)
            mark = v.get("started", 0.0)
            started[int(k)] = None if mark is None else float(mark) if isinstance(mark, (int, float)) else 0.0
        self._keys, self._started = keys, started

    def get(self, key_id: int) -> bytes | None:
        """The key, or None."""
        return self._keys.get(key_id)

    def ids(self) -> list[int]:
        """Provisioned key ids."""
        return sorted(self._keys)

    def started(self, key_id: int) -> bool:
        """Whether a counter was ever accepted under this key (so its counters must exist on board)."""
        return self._started.get(key_id) is not None

    def add(self, key_id: int | None = None, key: bytes | None = None) -> tuple[int, bytes]:
        """Provision a key (random unless given) under a new or given id; return (id, key)."""
        with self._locked():
            self.reload()
            kid = key_id if key_id is not None else (max(self._keys, default=0) + 1)
            if not 0 < kid < 65536:
                raise ValueError(f"key id must be 1..65535, got {kid}")
            if kid in self._keys and key_id is not None and key is None:
                raise ValueError(f"key id {kid} exists; remove it first")
            k = key if key is not None else secrets.token_bytes(KEY_LEN)
            if len(k) != KEY_LEN:
                raise ValueError(f"a key has {KEY_LEN} bytes, got {len(k)}")
            if self._keys.get(kid) != k:
                self._started[kid] = None  # new key material: no counter was ever accepted under it
            self._keys[kid] = k
            self._save()
        return kid, k

    def remove(self, key_id: int) -> bool:
        """Revoke a key."""
        with self._locked():
            self.reload()
            found = self._keys.pop(key_id, None) is not None
            self._started.pop(key_id, None)
            self._save()
        return found

    def mark_started(self, key_id: int, key: bytes) -> None:
        """Record durably that counters started under this key (only if the file still holds the same key)."""
        with self._locked():
            self.reload()
            if self._keys.get(key_id) == key and self._started.get(key_id) is None:
                self._started[key_id] = time.time()
                self._save()
        if self._started.get(key_id) is None:
            self._started[key_id] = time.time()  # in memory at least, even if the file changed under us

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """An exclusive lock on the key file (a dot-file beside it: replication skips it)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path.with_name(f".{self.path.name}.lock"), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def _save(self) -> None:
        tmp = self.path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        now = time.time()
        with os.fdopen(fd, "w") as f:
            json.dump(
                {
                    "keys": {str(k): {"key": v.hex(), "started": self._started.get(k)} for k, v in self._keys.items()},
                    "updated": now,
                },
                f,
                indent=1,
            )
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)
        fsync_dir(self.path.parent)


def fsync_dir(path: Path) -> None:
    """Make a directory's entries (a created or renamed file) durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fingerprint(key: bytes) -> str:
    """A short, non-secret name for key material (which key a stored counter belongs to)."""
    return hashlib.sha256(b"flightos-key-fingerprint" + key).hexdigest()[:16]


class Keys(Protocol):
    """What the replay guard needs of the key store."""

    def get(self, key_id: int) -> bytes | None: ...
    def ids(self) -> list[int]: ...
    def started(self, key_id: int) -> bool: ...
    def mark_started(self, key_id: int, key: bytes) -> None: ...


WAL_PAGES = 8
"""Pages in the anti-replay WAL before a checkpoint (then it is rewritten from its start)."""
NONCE_LEN = 16
RESYNC_SERVICE = 129
"""flightos private service: TC[129,1] asks for a nonce (TM[129,2]), TC[129,3] resyncs counters (TM[129,4])."""
RESYNC_PADDING = 16
"""Bytes of padding a nonce request carries, so that its answer is never larger than it (no reflector)."""
COUNTER_FREE = frozenset({(RESYNC_SERVICE, 1), (RESYNC_SERVICE, 3)})
"""Telecommands that need a valid MAC but no fresh counter: their freshness comes from the on-board nonce."""
MAX_FLOOR = (1 << 62) - 1
"""SQLite integers are signed 64-bit; a floor stays well inside them, a counter above it is out of any window."""


SQLITE_MAGIC = b"SQLite format 3\x00"


def _header(path: Path) -> bytes:
    with open(path, "rb") as f:
        return f.read(len(SQLITE_MAGIC))


class _Corrupt(sqlite3.DatabaseError):
    """The anti-replay database is damaged (not merely unavailable): it is kept aside and replaced."""


class ReplayGuard:
    """The highest accepted counter per key, committed durably before a command may run.

    Lost state is never mistaken for new keys: a key that started (KeyStore) and has no counter here
    is locked — every TC under it is refused with AUTH_RESYNC_REQUIRED — until ground resyncs over a
    fresh on-board nonce (``nonce`` then ``resync``). A corrupt database is kept, renamed, and replaced.
    """

    def __init__(self, path: Path, window: int, keys: Keys | None = None, nonce_s: float = 60.0) -> None:
        self.path = path
        self.window = window
        self.keys = keys
        self.nonce_s = nonce_s
        self._nonce: tuple[bytes, float] | None = None
        self.loss: str | None = None
        """Why counters were found missing or unusable at open (None if the database was intact or new)."""
        self.quarantined: Path | None = None
        self.unavailable: str | None = None
        """Why the database cannot be opened now (a full disk, an I/O error): every counter TC is refused."""
        self._db: sqlite3.Connection | None = None
        self._retry_at = 0.0
        self._attach()

    def _attach(self) -> None:
        """Open (or create) the database and find what was lost; on an error that is not corruption, stay detached."""
        path = self.path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            existed = path.exists()
            empty = existed and path.stat().st_size == 0
            try:
                if not empty and existed and _header(path) != SQLITE_MAGIC:  # before SQLite touches its WAL
                    raise _Corrupt("not a SQLite database (damaged header)")
                db = self._open(path)
            except _Corrupt as exc:
                self.quarantined = self._quarantine(path)
                db = self._open(path)
                self.loss = f"corrupt ({exc}); kept as {self.quarantined.name}"
            had_table = self._init_schema(db)
        except (sqlite3.Error, OSError) as exc:
            self.unavailable = f"{type(exc).__name__}: {exc}"
            self.loss = f"unavailable ({self.unavailable})"
            self._retry_at = time.monotonic() + 1.0
            return
        self._db, self.unavailable = db, None
        if not existed or self.quarantined is not None:
            fsync_dir(path.parent)  # the new file's directory entry survives a power cut too
        if self.loss is None or self.loss.startswith("unavailable"):
            self.loss = (
                "missing"
                if not existed
                else "empty (0 bytes)"
                if empty
                else "empty (no counters table)"
                if not had_table
                else None
            )
        for kid in self.keys.ids() if self.keys is not None else []:
            key = self.keys.get(kid) if self.keys is not None else None
            if (
                key is not None
                and self._row(kid, key) is not None
                and self.keys is not None
                and not self.keys.started(kid)
            ):
                with contextlib.suppress(OSError, ValueError):  # else the first TC under it tries again (or refuses)
                    self.keys.mark_started(kid, key)  # counters that exist here mean the key started
        locked = self.locked_ids()
        if locked and self.loss is None:
            self.loss = "no counters for key(s) " + ", ".join(map(str, locked))
        if not locked and self.quarantined is None:
            self.loss = None  # nothing was lost: new keys, a new board

    @staticmethod
    def _open(path: Path) -> sqlite3.Connection:
        db = sqlite3.connect(str(path), isolation_level=None)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            db.execute(f"PRAGMA wal_autocheckpoint={WAL_PAGES}")  # a small WAL, rewritten in place
            check = db.execute("PRAGMA quick_check").fetchone()
            if check is None or check[0] != "ok":
                raise _Corrupt(f"quick_check: {check[0] if check else 'no answer'}")
        except sqlite3.DatabaseError as exc:
            db.close()
            text = str(exc).lower()
            if isinstance(exc, _Corrupt) or "not a database" in text or "malformed" in text:
                raise _Corrupt(str(exc)) from None
            raise
        return db

    @staticmethod
    def _init_schema(db: sqlite3.Connection) -> bool:
        """Create what is missing; grow the WAL to its working size now. Return whether counters existed."""
        had_table = (
            db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'counters'").fetchone() is not None
        )
        db.execute(
            "CREATE TABLE IF NOT EXISTS counters (key_id INTEGER PRIMARY KEY, highest INTEGER NOT NULL, "
            "fingerprint TEXT NOT NULL DEFAULT '')"
        )
        columns = [r[1] for r in db.execute("PRAGMA table_info(counters)")]
        if "fingerprint" not in columns:  # a database of an earlier flightos: its rows belong to today's keys
            db.execute("ALTER TABLE counters ADD COLUMN fingerprint TEXT NOT NULL DEFAULT ''")
        db.execute("CREATE TABLE IF NOT EXISTS opens (id INTEGER PRIMARY KEY CHECK (id = 1), n INTEGER NOT NULL)")
        for _ in range(WAL_PAGES + 4):  # the WAL is reused from its start after each checkpoint: once it has
            db.execute("INSERT INTO opens VALUES (1, 1) ON CONFLICT(id) DO UPDATE SET n = n + 1")  # its size,
        return had_table  # accepting a counter needs no new disk space (a full disk still takes TCs)

    def _live(self) -> sqlite3.Connection:
        """The open database, reopened (at most once a second) after it was unavailable; else AuthError."""
        if self._db is None and time.monotonic() >= self._retry_at:
            self._attach()
        if self._db is None:
            raise AuthError(
                Failure.INTERNAL,
                f"anti-replay state {self.path} unavailable ({self.unavailable}): refused, nothing ran",
            )
        return self._db

    @staticmethod
    def _quarantine(path: Path) -> Path:
        """Keep a corrupt database (and its WAL) under a new name; never silently recreate it."""
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        kept = path.with_name(f"{path.name}.corrupt-{stamp}")
        for suffix in ("", "-wal", "-shm"):
            side = Path(f"{path}{suffix}")
            if side.exists():
                os.replace(side, Path(f"{kept}{suffix}"))
        fsync_dir(path.parent)
        return kept

    def _row(self, key_id: int, key: bytes | None) -> int | None:
        """The highest counter stored for this key material, or None (no row, or a row of other material)."""
        row = self._live().execute("SELECT highest, fingerprint FROM counters WHERE key_id = ?", (key_id,)).fetchone()
        if row is None:
            return None
        if key is not None and row[1] not in ("", fingerprint(key)):
            return None
        return int(row[0])

    def locked_ids(self) -> list[int]:
        """Keys whose counters started but are not here: every TC under them is refused until a resync."""
        if self.keys is None:
            return []
        if self._db is None:  # unavailable: nothing can be checked
            return [kid for kid in self.keys.ids() if self.keys.started(kid)]
        return [kid for kid in self.keys.ids() if self.keys.started(kid) and self._row(kid, self.keys.get(kid)) is None]

    def highest(self, key_id: int) -> int:
        """The highest counter accepted so far under a key (0 if none)."""
        key = self.keys.get(key_id) if self.keys is not None else None
        return self._row(key_id, key) or 0

    def accept(self, key_id: int, counter: int) -> None:
        """Accept and persist ``counter``, or raise AuthError (replay, beyond the window, or the key is locked)."""
        key = self.keys.get(key_id) if self.keys is not None else None
        stored = self._row(key_id, key)
        if stored is None and self.keys is not None and self.keys.started(key_id):
            raise AuthError(
                Failure.AUTH_RESYNC_REQUIRED,
                f"key {key_id} is locked: its anti-replay counter in {self.path} was lost "
                f"({self.loss or 'no counter'}); ground must resync (flightos ground resync)",
            )
        last = stored or 0
        if counter <= last:
            raise AuthError(Failure.AUTH_REPLAY, f"counter {counter} under key {key_id} is not above {last}: replay")
        if counter > last + self.window or counter > MAX_FLOOR:
            raise AuthError(
                Failure.AUTH_OUT_OF_WINDOW,
                f"counter {counter} under key {key_id} is more than {self.window} past {last}",
            )
        self._store(key_id, key, counter)

    def _store(self, key_id: int, key: bytes | None, counter: int) -> None:
        """Commit a counter (synchronous=FULL), then mark the key started; both before any command runs."""
        try:
            self._live().execute(
                "INSERT INTO counters(key_id, highest, fingerprint) VALUES (?, ?, ?) "
                "ON CONFLICT(key_id) DO UPDATE SET highest = excluded.highest, "
                "fingerprint = excluded.fingerprint",
                (key_id, counter, fingerprint(key) if key is not None else ""),
            )
            if key is not None and self.keys is not None and not self.keys.started(key_id):
                self.keys.mark_started(key_id, key)
        except (sqlite3.Error, OSError, ValueError) as exc:
            raise AuthError(
                Failure.INTERNAL, f"anti-replay state {self.path} cannot be written ({exc}): refused, nothing ran"
            ) from None

    # ---- challenge-response resync ------------------------------------------------------------------
    def nonce(self, now: float | None = None) -> tuple[bytes, float]:
        """The current on-board nonce and the seconds it stays valid (a new one if none is outstanding)."""
        t = time.monotonic() if now is None else now
        if self._nonce is None or self._nonce[1] <= t:
            self._nonce = (secrets.token_bytes(NONCE_LEN), t + self.nonce_s)
        return self._nonce[0], self._nonce[1] - t

    def resync(self, nonce: bytes, floor: int, now: float | None = None) -> dict[int, int]:
        """Spend the current nonce; raise every key's counter floor to at least ``floor``; unlock every key.

        Returns each key's floor now (never lowered: a key already past ``floor`` keeps its counter).
        """
        t = time.monotonic() if now is None else now
        current = self._nonce
        if current is None or current[1] <= t:
            self._nonce = None
            raise AuthError(Failure.AUTH_BAD_NONCE, "no nonce (expired?)")  # short: answers a replay
        if not hmac.compare_digest(current[0], nonce):
            raise AuthError(Failure.AUTH_BAD_NONCE, "stale nonce")
        self._nonce = None  # single use, spent before anything changes
        if not 0 < floor <= MAX_FLOOR:
            raise AuthError(Failure.BAD_APP_DATA, f"counter floor {floor} is outside 1..{MAX_FLOOR}")
        floors: dict[int, int] = {}
        for kid in self.keys.ids() if self.keys is not None else []:
            key = self.keys.get(kid) if self.keys is not None else None
            value = max(self._row(kid, key) or 0, floor)
            self._store(kid, key, value)
            floors[kid] = value
        self.loss = None if not self.locked_ids() else self.loss
        return floors

    def close(self) -> None:
        """Close the database."""
        if self._db is not None:
            self._db.close()
