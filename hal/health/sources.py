"""Where a board's health is read from: the live host, a recorded tree, or a simulated board's tree."""

from __future__ import annotations

import os

from hal.board import Board
from hal.health.watch import HealthSources


def sources_for(board: Board, state_dir: str | None = None) -> HealthSources:
    """The sources for ``board``; ``state_dir`` adds the state directory's file system to the disks.

    A simulated board shows the host's RAM and disks (they are real) and its own tree's eMMC, RTC
    and kernel log; a recorded tree (a root other than ``/``) has no live file systems to measure.
    """
    from hal.backends.linux.board import LinuxBoard
    from hal.backends.sim.board import SimBoard

    disks: dict[str, str] = {"root": "/"}
    bootstatus = _bootstatus(board)
    if state_dir:
        disks["state"] = state_dir
    if isinstance(board, SimBoard):
        tree = board.identity.details.get("tree", "/")
        return HealthSources(sys_root=tree, proc_root="/", disks=disks)
    if isinstance(board, LinuxBoard):
        root = str(board.fs.root)
        device = str(board.settings.get("watchdog_device") or "/dev/watchdog0")
        name = os.path.basename(device)
        watchdog = name if name.startswith("watchdog") and name != "watchdog" else "watchdog0"
        live = root in ("/", "")
        return HealthSources(
            sys_root=root or "/",
            proc_root=root or "/",
            disks=disks if live else {},
            watchdog=watchdog,
            bootstatus=bootstatus,
        )
    return HealthSources(disks=disks, bootstatus=bootstatus)


def _bootstatus(board: Board) -> int | None:
    """The configured watchdog's ``bootstatus`` as the board reads it (``Board.watchdog_info``), if any."""
    try:
        info = board.watchdog_info()
    except Exception:  # a board's sysfs read must not keep health from being read
        return None
    return info.bootstatus if info is not None else None
