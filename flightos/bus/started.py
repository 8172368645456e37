"""The started ledger: which commands a service process took off its socket, readable after it died.

A service host writes a 16-byte digest of each command id into a file in the runtime directory (one
``pwrite``, about a microsecond) just before the command's handler starts. The write is in the page cache when the
call returns, so it survives a SIGKILL a microsecond later; the kernel reads the file only after it has
reaped the process. An id that is not there was never started: the kernel can say so (``started: false``)
and let a retry run it. The file is a ring of ``SLOTS`` entries; the kernel treats a command delivered
more than ``SLOTS`` deliveries before the death as started, since its entry may have been overwritten.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from pathlib import Path

SLOT = 16
"""Bytes per entry: a blake2b digest of the command id."""
SLOTS = 65_536
"""Entries in the ring (a 1 MiB file per service incarnation)."""
PREFIX = "started-"


def ledger_path(runtime_dir: Path, name: str, incarnation: int) -> Path:
    """The ledger file of one incarnation of a service."""
    return runtime_dir / f"{PREFIX}{name}-{incarnation}"


def digest(cid: str) -> bytes:
    """The entry for one command id."""
    return hashlib.blake2b(cid.encode(errors="surrogateescape"), digest_size=SLOT).digest()


class StartedWriter:
    """The service's side: records each command id before its handler runs."""

    def __init__(self, path: Path) -> None:
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
        self.pos = 0

    def record(self, cid: str) -> None:
        """Write one id; when this returns, the entry survives the process dying."""
        os.pwrite(self.fd, digest(cid), (self.pos % SLOTS) * SLOT)
        self.pos += 1

    def close(self) -> None:
        """Close the file (the kernel deletes it when it has handled the process's exit)."""
        with contextlib.suppress(OSError):
            os.close(self.fd)


class Ledger:
    """A dead incarnation's ledger: ``digest(cid) in ledger`` says whether that command had started."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self._lookups = 0
        self._set: set[bytes] | None = None

    def __contains__(self, entry: object) -> bool:
        if not isinstance(entry, bytes) or len(entry) != SLOT or entry == bytes(SLOT):
            return False
        self._lookups += 1
        if self._set is None and self._lookups > 64:  # many commands in flight: index the ring once
            d = self.data
            self._set = {d[i : i + SLOT] for i in range(0, len(d) - SLOT + 1, SLOT)}
        if self._set is not None:
            return entry in self._set
        i = self.data.find(entry)  # a few commands in flight: a scan is cheaper than an index
        while i != -1 and i % SLOT:
            i = self.data.find(entry, i + 1)
        return i != -1


class Unreadable(Ledger):
    """A dead incarnation whose ledger could not be read: any command may have started (never run one twice)."""

    def __init__(self) -> None:
        super().__init__(b"")

    def __contains__(self, entry: object) -> bool:
        return isinstance(entry, bytes) and len(entry) == SLOT


def read_started(path: Path) -> Ledger | None:
    """A dead incarnation's ledger; None if it never had one, ``Unreadable`` if it had one that cannot be read.

    An incarnation without a ledger served no direct callers (the host opens its direct socket only with a
    ledger), so only what the kernel delivered could have run there, and all of that counts as started.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
    except FileNotFoundError:
        return None
    except OSError:
        return Unreadable()
    try:
        return Ledger(os.read(fd, SLOT * SLOTS))
    except OSError:
        return Unreadable()
    finally:
        os.close(fd)


def remove(path: Path) -> None:
    """Delete a ledger that has been read (or is no longer needed)."""
    with contextlib.suppress(OSError):
        path.unlink()


def remove_stale(runtime_dir: Path) -> None:
    """Delete ledgers left by a kernel that was killed (its services are gone)."""
    with contextlib.suppress(OSError):
        for p in runtime_dir.glob(PREFIX + "*"):
            remove(p)
