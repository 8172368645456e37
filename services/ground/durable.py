"""What the ground's SQLite files share: durable opening (WAL, synchronous=FULL), closing, a context manager."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path
from types import TracebackType


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

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
