"""Where the bus lives: a private runtime directory (mode 0700) holding the ipc endpoints."""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path

ENV_RUNTIME_DIR = "FLIGHTOS_RUNTIME_DIR"


def default_runtime_dir() -> Path:
    """``$FLIGHTOS_RUNTIME_DIR``, else ``$XDG_RUNTIME_DIR/flightos``, else ``/tmp/flightos-<uid>``."""
    env = os.environ.get(ENV_RUNTIME_DIR)
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    if xdg and os.path.isdir(xdg):
        return Path(xdg) / "flightos"
    return Path(tempfile.gettempdir()) / f"flightos-{os.getuid()}"


@dataclass(frozen=True)
class Endpoints:
    """The bus endpoints of one runtime, all under its runtime directory."""

    runtime_dir: Path

    @property
    def publish(self) -> str:
        """XSUB side of the kernel proxy: publishers connect here."""
        return f"ipc://{self.runtime_dir}/pub.sock"

    @property
    def subscribe(self) -> str:
        """XPUB side of the kernel proxy: subscribers connect here."""
        return f"ipc://{self.runtime_dir}/sub.sock"

    @property
    def command(self) -> str:
        """Kernel ROUTER for commands and their results."""
        return f"ipc://{self.runtime_dir}/cmd.sock"

    @property
    def control(self) -> str:
        """Kernel ROUTER for heartbeats and control (lossless, unlike pub/sub)."""
        return f"ipc://{self.runtime_dir}/ctl.sock"

    @property
    def kernel_events(self) -> str:
        """The kernel's own PUB for ``ev.kernel``, ``tm.kernel.*`` and ``tm.hal.*``: only the kernel binds it."""
        return f"ipc://{self.runtime_dir}/kev.sock"

    @property
    def pidfile(self) -> Path:
        """Holds the running kernel's pid; locked while it runs."""
        return self.runtime_dir / "kernel.pid"

    def socket_files(self) -> list[Path]:
        """The ipc socket files, for cleanup: the kernel's and each service's direct one (``direct-<name>.sock``)."""
        fixed = [self.runtime_dir / n for n in ("pub.sock", "sub.sock", "cmd.sock", "ctl.sock", "kev.sock")]
        try:
            direct = sorted(p for p in self.runtime_dir.glob("direct-*.sock") if p.is_socket())
        except OSError:
            direct = []
        return fixed + direct


CREATED_MARKER = ".created-by-flightos"
"""Left in a runtime directory flightos created: only such a directory is ever removed (with its contents)."""


class RuntimeDirError(ValueError):
    """The runtime directory cannot be used safely; the message names it, why, and what to do."""


def prepare_runtime_dir(path: Path) -> bool:
    """Create a private (0700) runtime directory, or check an existing one; True when this call created it.

    An existing directory is never chmodded: one that another user owns, that others may write to (a
    shared directory such as /tmp) or that others may read is refused, since the bus sockets live there and
    the directory's privacy is what keeps other users off the bus.
    """
    if len(f"{path}/cmd.sock") > 100:
        raise RuntimeDirError(f"runtime directory path too long for ipc sockets (max ~90 chars): {path}")
    created = False
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        os.mkdir(path, 0o700)
        created = True
    except FileExistsError:
        pass
    except OSError as exc:
        raise RuntimeDirError(f"runtime directory {path}: cannot create it: {exc.strerror or exc}") from None
    if created:
        os.chmod(path, 0o700)  # ours: whatever the umask did
        (path / CREATED_MARKER).write_text(f"{os.getpid()}\n")
        return True
    lst = os.lstat(path)
    if stat.S_ISLNK(lst.st_mode) and lst.st_uid != os.getuid():
        raise RuntimeDirError(
            f"runtime directory {path} is a symbolic link owned by uid {lst.st_uid}, not by "
            f"this user (uid {os.getuid()}); name a directory of your own"
        )
    try:
        st = os.stat(path)
    except OSError as exc:
        raise RuntimeDirError(f"runtime directory {path}: {exc.strerror or exc}") from None
    if not stat.S_ISDIR(st.st_mode):
        raise RuntimeDirError(f"runtime directory {path} exists and is not a directory")
    if st.st_uid != os.getuid():
        raise RuntimeDirError(
            f"runtime directory {path} belongs to uid {st.st_uid}, not to this user "
            f"(uid {os.getuid()}); name a directory of your own, or one that does not exist yet"
        )
    mode = stat.S_IMODE(st.st_mode)
    if mode & (stat.S_IWGRP | stat.S_IWOTH | stat.S_ISVTX):
        raise RuntimeDirError(
            f"runtime directory {path} is shared (mode {mode:04o}: others may write to it); "
            "flightos will not take it over: name a directory that does not exist yet "
            f"(flightos creates it, mode 0700), e.g. {path / 'flightos'}"
        )
    if mode & 0o077:
        raise RuntimeDirError(
            f"runtime directory {path} is open to other users (mode {mode:04o}); the bus "
            f"sockets live there: `chmod 700 {path}`, or name a directory that does not exist yet"
        )
    return False


def release_runtime_dir(path: Path, own_files: list[Path]) -> None:
    """Remove what a stopping kernel leaves: ``own_files`` first (the pid file among them, so no client takes
    the kernel for alive while the rest goes), then the whole directory if flightos created it."""
    for f in own_files:
        with contextlib.suppress(FileNotFoundError):
            f.unlink()
    if (path / CREATED_MARKER).is_file():
        shutil.rmtree(path, ignore_errors=True)
