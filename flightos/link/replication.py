"""Store replication: consistent snapshots of a service's SQLite store, sent to peers and kept for failover.

A snapshot is taken with SQLite's online backup API, so it is consistent even while the service
writes (WAL mode). Only a store that changed since the last snapshot is sent again.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import tempfile
from pathlib import Path

STORE_FILE = "store.sqlite"
REPLICAS = "replicas"


def store_path(state_dir: Path, service: str) -> Path:
    """Where a service's store lives on this board (the SDK's Store opens the same file)."""
    return state_dir / service / STORE_FILE


def signature(state_dir: Path, service: str) -> tuple[int, int, int, int] | None:
    """Sizes and modification times of the store and its WAL: changes when the store does."""
    db = store_path(state_dir, service)
    try:
        st = db.stat()
    except FileNotFoundError:
        return None
    wal = db.with_name(STORE_FILE + "-wal")
    try:
        ws = wal.stat()
        return st.st_size, st.st_mtime_ns, ws.st_size, ws.st_mtime_ns
    except FileNotFoundError:
        return st.st_size, st.st_mtime_ns, 0, 0


def snapshot(state_dir: Path, service: str) -> bytes:
    """A consistent copy of a service's store as bytes (raises sqlite3.Error or OSError)."""
    src = sqlite3.connect(f"file:{store_path(state_dir, service)}?mode=ro", uri=True, timeout=2.0)
    fd, tmp = tempfile.mkstemp(prefix=".snapshot-", dir=state_dir)
    os.close(fd)
    try:
        dst = sqlite3.connect(tmp)
        try:
            src.backup(dst)
            dst.execute("PRAGMA journal_mode=DELETE")
        finally:
            dst.close()
        return Path(tmp).read_bytes()
    finally:
        src.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def replica_path(state_dir: Path, service: str) -> Path:
    """Where the latest replica of a peer-run service is kept on this board."""
    return state_dir / REPLICAS / f"{service}.sqlite"


def keep(state_dir: Path, service: str, data: bytes) -> Path:
    """Write a received replica durably (temp file, fsync, rename); check it is an SQLite database first."""
    if not data.startswith(b"SQLite format 3\x00"):
        raise ValueError(f"replica of {service}: not an SQLite database")
    dest = replica_path(state_dir, service)
    dest.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = dest.with_suffix(".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, dest)
    return dest


def restore(state_dir: Path, service: str) -> bool:
    """Make the kept replica a service's store before it starts here; False when there is none."""
    src = replica_path(state_dir, service)
    if not src.is_file():
        return False
    db = store_path(state_dir, service)
    db.parent.mkdir(parents=True, exist_ok=True)
    for suffix in ("-wal", "-shm"):
        with contextlib.suppress(FileNotFoundError):
            db.with_name(STORE_FILE + suffix).unlink()
    tmp = db.with_suffix(".restoring")
    tmp.write_bytes(src.read_bytes())
    os.replace(tmp, db)
    return True
