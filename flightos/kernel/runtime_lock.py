"""The kernel's claim on its two directories: the runtime directory (``kernel.pid``) and the state directory
(``kernel.lock``), so two kernels never share sockets, keys, stores or kernel state."""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from pathlib import Path

from flightos.bus.endpoints import Endpoints, RuntimeDirError, prepare_runtime_dir, release_runtime_dir


class RuntimeBusy(Exception):
    """Another kernel already runs in this runtime directory (or holds this state directory)."""


class RuntimeLock:
    """Holds both directories for one kernel from ``acquire`` to ``release``."""

    def __init__(self, endpoints: Endpoints, state_dir: Path) -> None:
        self.endpoints = endpoints
        self.state_dir = state_dir
        self._lock_fd: int | None = None
        self._state_lock_fd: int | None = None

    def acquire(self) -> None:
        """Take the runtime directory (its pid file) and the state directory (its ``kernel.lock``), or raise
        RuntimeBusy naming the kernel that holds either."""
        prepare_runtime_dir(self.endpoints.runtime_dir)
        fd = os.open(self.endpoints.pidfile, os.O_RDWR | os.O_CREAT, 0o600)
        for attempt in range(50):  # a client checking liveness holds a shared lock for microseconds
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if attempt == 49 or os.pread(fd, 32, 0).strip():  # a pid written: a live kernel holds it
                    other = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
                    os.close(fd)
                    raise RuntimeBusy(
                        f"a runtime is already running in {self.endpoints.runtime_dir} (kernel pid {other})"
                    ) from None
                time.sleep(0.01)
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._lock_fd = fd
        try:
            self._state_lock_fd = self._lock_state_dir()
        except BaseException:
            self.release()
            raise
        for f in self.endpoints.socket_files():  # left by a kernel that was killed: adopt nothing
            with contextlib.suppress(FileNotFoundError):
                f.unlink()

    def _lock_state_dir(self) -> int:
        """flock ``<state_dir>/kernel.lock``: one kernel per state directory (its keys, stores, kernel state)."""
        path = self.state_dir / "kernel.lock"
        try:
            self.state_dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise RuntimeDirError(f"state directory {self.state_dir}: cannot lock it: {exc.strerror or exc}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if not isinstance(exc, BlockingIOError):
                os.close(fd)
                raise RuntimeDirError(
                    f"state directory {self.state_dir}: cannot lock {path}: {exc.strerror or exc}"
                ) from None
            holder = os.pread(fd, 4096, 0).decode(errors="replace").split("\n")
            os.close(fd)
            pid = holder[0].strip() or "?"
            where = holder[1].strip() if len(holder) > 1 and holder[1].strip() else "?"
            raise RuntimeBusy(
                f"state directory {self.state_dir} is in use by kernel pid {pid} (runtime directory "
                f"{where}); two kernels would share keys, stores and kernel state: give this one "
                "a state directory of its own (runtime.state_dir or $FLIGHTOS_STATE_DIR)"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n{self.endpoints.runtime_dir}\n".encode())
        return fd

    def release(self) -> None:
        """Give both directories back: a runtime directory flightos created goes, with everything in it."""
        if self._state_lock_fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(self._state_lock_fd, 0)  # nobody holds it now
            os.close(self._state_lock_fd)
            self._state_lock_fd = None
        release_runtime_dir(self.endpoints.runtime_dir, [self.endpoints.pidfile, *self.endpoints.socket_files()])
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None
