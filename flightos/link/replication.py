"""Replication of a service's data directory: consistent snapshots sent to peers and kept for failover.

A service's persistent state is its whole data directory: the SDK's store and whatever else it
keeps there (the ground service's keys, anti-replay counters and downlink queue). SQLite files are
copied with SQLite's online backup API, so a snapshot is consistent even while the service writes
(WAL mode); other files are copied as they are. Only a directory that changed is sent again.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import sqlite3
import tempfile
import time
from pathlib import Path, PurePosixPath

import msgspec
import structlog

from flightos.bus.envelope import FrameError
from flightos.kernel.events import EventId
from flightos.kernel.records import State
from flightos.link import protocol
from flightos.link.protocol import PeerView
from flightos.link.state import LinkState
from flightos.sdk.severity import Severity

log = structlog.get_logger("flightos.link")

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


class Replicator:
    """Sends peers snapshots of the failover services' data directories, and keeps the peers' replicas here."""

    def __init__(self, state: LinkState) -> None:
        self.s = state
        self.host = state.host
        self._replicated: dict[tuple[str, str], Signature] = {}
        self._too_big: set[str] = set()

    def forget(self, board: str) -> None:
        """A peer came (back) up: send it every replica again."""
        for key in [k for k in self._replicated if k[0] == board]:
            del self._replicated[key]

    async def loop(self) -> None:
        """Replicate every ``replicate_s``; a failure is logged and never stops the kernel."""
        while True:
            await asyncio.sleep(self.s.cfg.replicate_s)
            try:
                await self.replicate()
            except Exception as exc:  # replication must never stop the kernel
                log.warning("link.replication_failed", error=f"{type(exc).__name__}: {exc}")

    async def replicate(self) -> None:
        """Send each up peer a snapshot of every failover service's data directory that changed since."""
        up = [b for b, p in self.s.peers.items() if p.up]
        if not up:
            return
        for rec in list(self.host.records.values()):
            if not rec.cfg.failover or rec.state in (State.REMOTE, State.DISABLED):
                continue
            sig = signature(self.host.state_dir, rec.name)
            targets = [b for b in up if sig is not None and self._replicated.get((b, rec.name)) != sig]
            if not targets or sig is None:
                continue
            if size(sig) > self.s.cfg.replicate_max_mb * 1e6:
                if rec.name not in self._too_big:
                    self._too_big.add(rec.name)
                    self.host.emit(
                        EventId.REPLICATION_FAILED,
                        Severity.MEDIUM,
                        f"{rec.name}'s data directory is over {self.s.cfg.replicate_max_mb:g} MB; not replicated",
                        service=rec.name,
                        bytes=size(sig),
                    )
                continue
            try:
                data = await asyncio.to_thread(snapshot, self.host.state_dir, rec.name)
            except (sqlite3.Error, OSError) as exc:
                self.host.emit(
                    EventId.REPLICATION_FAILED,
                    Severity.LOW,
                    f"cannot snapshot {rec.name}'s data: {exc}",
                    service=rec.name,
                    error=str(exc),
                )
                continue
            body = protocol.encode(
                protocol.Replica(
                    v=protocol.VERSION,
                    board=self.s.board,
                    service=rec.name,
                    epoch=self.s.epoch,
                    version=time.time_ns(),
                    data=data,
                )
            )
            for b in targets:
                if self.s.send(b, [protocol.REPLICA, body]):
                    self._replicated[(b, rec.name)] = sig
                    self.s.stats["replicas_out"] += 1

    def keep_replica(self, peer: PeerView, r: protocol.Replica) -> None:
        """A peer's replica of a service it runs: written here (in the background) for a later take-over."""
        if r.board != peer.board or not peer.hosts(r.service):
            self.s.stats["spoofed"] += 1
            self.s.rejects.reject(
                FrameError("spoofed", f"board {peer.board} sent a replica of {r.service}, a service it does not run")
            )
            return
        self.s.tasks.append(asyncio.get_running_loop().create_task(self._write_replica(r)))
        self.s.tasks = [t for t in self.s.tasks if not t.done()]

    async def _write_replica(self, r: protocol.Replica) -> None:
        """Write a replica on a thread (fsyncs must not stall the loop), one at a time per service."""
        lock = self.s.replica_locks.setdefault(r.service, asyncio.Lock())
        async with lock:
            try:
                await asyncio.to_thread(keep, self.host.state_dir, r.service, r.data)
            except (ValueError, OSError) as exc:
                self.s.rejects.reject(FrameError("bad_replica", str(exc)))
                return
        self.s.stats["replicas_in"] += 1
