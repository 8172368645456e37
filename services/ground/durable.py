"""What the ground's SQLite files share: durable opening (WAL, synchronous=FULL), closing, quarantine of damage.

A store that cannot be opened (corrupt header, not a database, unknown schema) or that lost the data it
once held (deleted, truncated to 0 bytes: a ``.has-data`` marker beside it says it held some) is never
silently replaced: it is kept as ``<name>.corrupt-<UTC time>`` and a fresh one is opened. A store that
is merely unusable for now (disk full, I/O error) is not quarantined: the caller retries later.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Generic, TypeVar

_SIDECARS = ("-wal", "-shm")
T = TypeVar("T")


def open_durable(path: Path, what: str, error: type[Exception]) -> sqlite3.Connection:
    """Open ``path`` in WAL mode with synchronous=FULL (a commit survives power loss); ``error`` names ``what``."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
    except (OSError, sqlite3.Error) as exc:
        raise error(f"{what} {path}: cannot open: {exc}") from exc
    try:
        mode = db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise error(f"{what} {path}: cannot use WAL mode (got {mode!r})")
        db.execute("PRAGMA synchronous=FULL")
    except sqlite3.Error as exc:
        db.close()
        raise error(f"{what} {path}: cannot open: {exc}") from exc
    except error:
        db.close()
        raise
    return db


class DurableFile:
    """A SQLite file guarded by a lock: ``close()`` and ``with`` for every store of the ground link."""

    path: Path
    _db: sqlite3.Connection
    _lock: threading.Lock

    def close(self) -> None:
        """Close the database (idempotent); everything committed is already on disk."""
        with self._lock:
            self._db.close()

    def __enter__(self) -> DurableFile:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class Corrupt(Exception):
    """A store's file holds something this code cannot use (unknown schema version, failed integrity check)."""


def is_corruption(exc: BaseException) -> bool:
    """Whether ``exc`` (or what caused it) says the file is damaged, not merely unusable for now (full, I/O)."""
    seen: set[int] = set()
    node: BaseException | None = exc
    while node is not None and id(node) not in seen:
        seen.add(id(node))
        if isinstance(node, Corrupt):
            return True
        if type(node) is sqlite3.DatabaseError:
            # "file is not a database", "database disk image is malformed". Its subclasses are not damage:
            # OperationalError (full, locked, I/O), ProgrammingError (a closed connection, at shutdown),
            # IntegrityError (a constraint): quarantining the file for those would lose good data.
            return True
        node = node.__cause__ or node.__context__
    return False


def marker(path: Path) -> Path:
    """The sidecar that says ``path`` once held data (so losing its contents is noticed)."""
    return path.with_name(path.name + ".has-data")


def mark_has_data(path: Path) -> None:
    """Record that ``path`` holds data (best effort: on a full disk the marker comes with the next write)."""
    with contextlib.suppress(OSError):
        marker(path).touch()


def lost_data(path: Path) -> str:
    """Why ``path`` no longer holds the data it once had ("" when all is well or it never held any)."""
    if not marker(path).exists():
        return ""
    if not path.exists():
        return "is missing although it held data (deleted?)"
    if path.stat().st_size == 0:
        return "was truncated to 0 bytes although it held data"
    return ""


def quarantine(path: Path) -> Path | None:
    """Rename ``path`` (and its WAL files) to ``<name>.corrupt-<UTC time>``; the new name, None if it was absent."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    kept = path.with_name(f"{path.name}.corrupt-{stamp}")
    n = 1
    while kept.exists():  # two incidents in one second keep both files
        kept = path.with_name(f"{path.name}.corrupt-{stamp}-{n}")
        n += 1
    moved = path.exists()
    if moved:
        os.replace(path, kept)
    for suffix in _SIDECARS:
        side = path.with_name(path.name + suffix)
        if side.exists():
            os.replace(side, kept.with_name(kept.name + suffix))
    with contextlib.suppress(FileNotFoundError):
        marker(path).unlink()
    return kept if moved else None


@dataclass
class Opened(Generic[T]):
    """The result of ``open_store``: the store (None while unusable), what was quarantined, why it is unusable."""

    store: T | None
    incident: str = ""
    """A quarantine (file, cause, where it was kept), for a HIGH event; "" if none."""
    unusable: str = ""
    """Why no store could be opened now (disk full, I/O error); "" if ``store`` is set."""


def open_store(path: Path, what: str, factory: Callable[[], T]) -> Opened[T]:
    """Open a store with ``factory``: quarantine a damaged or emptied file and start afresh; never raise.

    A file that is unusable for a reason that may pass (disk full, permissions, I/O) is left alone and
    reported in ``unusable``, so the caller keeps running and retries.
    """
    incident = ""
    lost = lost_data(path)
    if lost:
        try:
            kept = quarantine(path)
        except OSError as exc:
            return Opened(None, "", f"{what} {path} {lost}, and cannot be set aside: {exc}")
        incident = f"{what} {path} {lost}" + (f"; kept as {kept.name}" if kept else "") + "; starting afresh"
    try:
        return Opened(factory(), incident)
    except Exception as exc:
        if not is_corruption(exc):
            return Opened(None, incident, str(exc))
        try:
            kept = quarantine(path)
        except OSError as err:
            return Opened(None, incident, f"{exc}; and it cannot be set aside: {err}")
        incident = (
            f"{what} {path} cannot be used ({exc})" + (f"; kept as {kept.name}" if kept else "") + "; starting afresh"
        )
    try:
        return Opened(factory(), incident)
    except Exception as exc:
        return Opened(None, incident, str(exc))
