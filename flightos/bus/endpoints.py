"""Where the bus lives: a private runtime directory (mode 0700) holding the ipc endpoints."""

from __future__ import annotations

import os
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
        """The ipc socket files, for cleanup."""
        return [self.runtime_dir / n for n in ("pub.sock", "sub.sock", "cmd.sock", "ctl.sock", "kev.sock")]


def prepare_runtime_dir(path: Path) -> None:
    """Create the runtime directory with mode 0700, or fix the mode of an existing one we own."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    st = path.stat()
    if st.st_uid != os.getuid():
        raise PermissionError(f"runtime directory {path} belongs to uid {st.st_uid}, not us")
    os.chmod(path, 0o700)
    if len(f"{path}/cmd.sock") > 100:
        raise ValueError(f"runtime directory path too long for ipc sockets (max ~90 chars): {path}")
