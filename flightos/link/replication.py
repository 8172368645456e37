"""Replication of a service's data directory: consistent snapshots sent to peers and kept for failover.

A service's persistent state is its whole data directory: the SDK's store and whatever else it
keeps there (the ground service's keys, anti-replay counters and downlink queue). SQLite files are
copied with SQLite's online backup API, so a snapshot is consistent even while the service writes
(WAL mode); other files are copied as they are. Only a directory that changed is sent again.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import tempfile
from pathlib import Path, PurePosixPath

import msgspec

STORE_FILE = "store.sqlite"
REPLICAS = "replicas"
SQLITE_MAGIC = b"SQLite format 3\x00"
_SKIP_SUFFIXES = ("-wal", "-shm", "-journal")
"""SQLite side files: the backup of the main file already holds what they carry."""

Signature = tuple[tuple[str, int, int], ...]


def data_dir(state_dir: Path, service: str) -> Path:
    """A service's data directory on this board (``Service.data_dir``; its store lives there)."""
    return state_dir / service


def store_path(state_dir: Path, service: str) -> Path:
    """Where a service's store lives on this board (the SDK's Store opens the same file)."""
    return data_dir(state_dir, service) / STORE_FILE


def _files(root: Path) -> list[Path]:
    if not root.is_dir():
        return []
    return sorted(p for p in root.rglob("*") if p.is_file() and not p.name.startswith("."))


def signature(state_dir: Path, service: str) -> Signature | None:
    """Every file's path, size and modification time: changes when the service's state does."""
    root = data_dir(state_dir, service)
    out = []
    for p in _files(root):
        with contextlib.suppress(FileNotFoundError):
            st = p.stat()
            out.append((str(p.relative_to(root)), st.st_size, st.st_mtime_ns))
    return tuple(out) or None


def size(sig: Signature) -> int:
    """Bytes a signature's files hold."""
    return sum(s for _, s, _ in sig)


def snapshot(state_dir: Path, service: str) -> bytes:
    """A consistent copy of a service's data directory, as MessagePack {relative path: bytes}."""
    root = data_dir(state_dir, service)
    files: dict[str, bytes] = {}
    for p in _files(root):
        rel = str(p.relative_to(root))
        if rel.endswith(_SKIP_SUFFIXES):
            continue
        with open(p, "rb") as f:
            head = f.read(len(SQLITE_MAGIC))
        files[rel] = _sqlite_copy(p, state_dir) if head == SQLITE_MAGIC else p.read_bytes()
    return msgspec.msgpack.encode(files)


def _sqlite_copy(db: Path, scratch: Path) -> bytes:
    try:
        src = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=2.0)
        src.execute("SELECT 1 FROM sqlite_master LIMIT 1")
    except sqlite3.OperationalError:  # a WAL database without its -shm opens read-only only if we may create it
        src = sqlite3.connect(db, timeout=2.0)
    fd, tmp = tempfile.mkstemp(prefix=".snapshot-", dir=scratch)
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


def replica_dir(state_dir: Path, service: str) -> Path:
    """Where the latest replica of a peer-run service is kept on this board."""
    return state_dir / REPLICAS / service


def _decode(service: str, data: bytes) -> dict[str, bytes]:
    try:
        files = msgspec.msgpack.decode(data, type=dict[str, bytes])
    except msgspec.DecodeError as exc:
        raise ValueError(f"replica of {service}: not a snapshot ({exc})") from None
    for rel in files:
        parts = PurePosixPath(rel).parts
        if not parts or PurePosixPath(rel).is_absolute() or ".." in parts:
            raise ValueError(f"replica of {service}: unsafe path {rel!r}")
    return files


def keep(state_dir: Path, service: str, data: bytes) -> Path:
    """Write a received replica durably (a new directory, fsynced, then swapped in); check it first."""
    files = _decode(service, data)
    dest = replica_dir(state_dir, service)
    dest.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = Path(tempfile.mkdtemp(prefix=f".{service}-", dir=dest.parent))
    for rel, content in files.items():
        path = tmp / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "wb") as f:
            f.write(content)
            f.flush()
            os.fsync(f.fileno())
    old = dest.with_name(f".{service}.old")
    if dest.exists():
        os.replace(dest, old)
    os.replace(tmp, dest)
    shutil.rmtree(old, ignore_errors=True)
    return dest


def restore(state_dir: Path, service: str) -> bool:
    """Make the kept replica the service's data directory before it starts here; False when there is none."""
    src = replica_dir(state_dir, service)
    if not src.is_dir():
        return False
    root = data_dir(state_dir, service)
    staging = root.with_name(f".{service}.restoring")
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(src, staging)
    if root.exists():
        old = root.with_name(f".{service}.replaced")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(root, old)
        shutil.rmtree(old, ignore_errors=True)
    os.replace(staging, root)
    return True
