"""Authenticated telecommands: a MAC and an anti-replay counter in a trailer, keys provisioned per key id.

Trailer at the end of the application data: key id (u16), counter (u64), MAC (16 bytes) — the MAC
is HMAC-SHA256, truncated, over the whole packet up to the MAC (header, secondary header, data,
key id, counter). The CRC, computed by spacepackets, covers everything including the MAC. The
highest accepted counter per key is committed to disk *before* the command runs, so a reboot cannot
re-open old counters.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import sqlite3
import struct
import time
from dataclasses import dataclass
from pathlib import Path

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


def secure_tc(service: int, subtype: int, payload: bytes, *, key_id: int, key: bytes, counter: int,
              apid: int, seq_count: int, source_id: int = 0, ack_flags: int = 0b1111) -> bytes:
    """Build an authenticated telecommand (what a ground tool sends)."""
    def build(m: bytes) -> bytes:
        data = payload + TRAILER.pack(key_id, counter) + m
        return bytes(PusTc(service=service, message_subtype=subtype, apid=apid, seq_count=seq_count & 0x3FFF,
                           app_data=data, source_id=source_id, ack_flags=ack_flags).pack())

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
    if not hmac.compare_digest(expected, raw[-(MAC_LEN + CRC_LEN):-CRC_LEN]):
        raise AuthError(Failure.AUTH_BAD_MAC, f"MAC does not verify under key {key_id}")
    return Sealed(app_data[:-TRAILER_LEN], key_id, counter)


class KeyStore:
    """Key id -> 32-byte key, in a JSON file readable only by its owner (mode 0600)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._keys: dict[int, bytes] = {}
        self.reload()

    def reload(self) -> None:
        """Read the file again (a missing file is an empty store)."""
        try:
            raw = json.loads(self.path.read_text())
        except FileNotFoundError:
            self._keys = {}
            return
        except (OSError, ValueError) as exc:
            raise ValueError(f"{self.path}: unreadable key file: {exc}") from None
        keys: dict[int, bytes] = {}
        for k, v in raw.get("keys", {}).items():
            try:
                key = bytes.fromhex(v["key"])
            except (KeyError, TypeError, ValueError):
                raise ValueError(f"{self.path}: key {k}: expected a hex 'key'") from None
            if len(key) != KEY_LEN:
                raise ValueError(f"{self.path}: key {k}: expected {KEY_LEN} bytes, got {len(key)}")
            keys[int(k)] = key
        self._keys = keys

    def get(self, key_id: int) -> bytes | None:
        """The key, or None."""
        return self._keys.get(key_id)

    def ids(self) -> list[int]:
        """Provisioned key ids."""
        return sorted(self._keys)

    def add(self, key_id: int | None = None, key: bytes | None = None) -> tuple[int, bytes]:
        """Provision a key (random unless given) under a new or given id; return (id, key)."""
        kid = key_id if key_id is not None else (max(self._keys, default=0) + 1)
        if not 0 < kid < 65536:
            raise ValueError(f"key id must be 1..65535, got {kid}")
        if kid in self._keys and key_id is not None and key is None:
            raise ValueError(f"key id {kid} exists; remove it first")
        k = key if key is not None else secrets.token_bytes(KEY_LEN)
        if len(k) != KEY_LEN:
            raise ValueError(f"a key has {KEY_LEN} bytes, got {len(k)}")
        self._keys[kid] = k
        self._save()
        return kid, k

    def remove(self, key_id: int) -> bool:
        """Revoke a key."""
        found = self._keys.pop(key_id, None) is not None
        self._save()
        return found

    def _save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump({"keys": {str(k): {"key": v.hex()} for k, v in self._keys.items()},
                       "updated": time.time()}, f, indent=1)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)


class ReplayGuard:
    """The highest accepted counter per key, committed durably before a command may run."""

    def __init__(self, path: Path, window: int) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.window = window
        self._db = sqlite3.connect(str(path), isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("CREATE TABLE IF NOT EXISTS counters (key_id INTEGER PRIMARY KEY, highest INTEGER NOT NULL)")

    def highest(self, key_id: int) -> int:
        """The highest counter accepted so far under a key (0 if none)."""
        row = self._db.execute("SELECT highest FROM counters WHERE key_id = ?", (key_id,)).fetchone()
        return int(row[0]) if row else 0

    def accept(self, key_id: int, counter: int) -> None:
        """Accept and persist ``counter``, or raise AuthError (replay, or beyond the window)."""
        last = self.highest(key_id)
        if counter <= last:
            raise AuthError(Failure.AUTH_REPLAY, f"counter {counter} under key {key_id} is not above {last}: replay")
        if counter > last + self.window:
            raise AuthError(Failure.AUTH_OUT_OF_WINDOW,
                            f"counter {counter} under key {key_id} is more than {self.window} past {last}")
        self._db.execute("INSERT INTO counters(key_id, highest) VALUES (?, ?) "
                         "ON CONFLICT(key_id) DO UPDATE SET highest = excluded.highest", (key_id, counter))

    def close(self) -> None:
        """Close the database."""
        self._db.close()
