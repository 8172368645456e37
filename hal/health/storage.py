"""Disk use (statvfs) of the file systems that matter, and which of them are mounted read-only."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from hal.fs import Fs
from hal.health.common import Unavailable, os_reason

MOUNTS = "/proc/mounts"
#: File systems that are writable by nature: one of them mounted ``ro`` is worth a look.
WRITABLE_TYPES = frozenset({"ext2", "ext3", "ext4", "xfs", "btrfs", "f2fs", "vfat", "exfat", "jfs", "nilfs2"})

Statvfs = Callable[[str], os.statvfs_result]


@dataclass(frozen=True)
class Mount:
    """One line of /proc/mounts."""

    device: str
    point: str
    fstype: str
    options: tuple[str, ...]

    @property
    def read_only(self) -> bool:
        """True when mounted ``ro``."""
        return "ro" in self.options


@dataclass(frozen=True)
class DiskUse:
    """One file system: what it is for (``label``), where it is mounted, its size and use in MiB."""

    label: str
    path: str
    mount: str | None
    device: str | None
    fstype: str | None
    total_mb: int
    free_mb: int
    used_pct: float
    read_only: bool


def _unescape(field: str) -> str:
    """/proc/mounts writes space, tab, newline and backslash as octal escapes (``\\040``)."""
    for code, char in (("\\040", " "), ("\\011", "\t"), ("\\012", "\n"), ("\\134", "\\")):
        field = field.replace(code, char)
    return field


def parse_mounts(text: str) -> list[Mount]:
    """Every well-formed line of /proc/mounts, in order (later mounts shadow earlier ones)."""
    out = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 4:
            out.append(Mount(_unescape(parts[0]), _unescape(parts[1]), parts[2], tuple(parts[3].split(","))))
    return out


def mount_of(path: str, mounts: list[Mount]) -> Mount | None:
    """The mount a path lives on: the longest mount point that contains it, the last one mounted there."""
    best: Mount | None = None
    for m in mounts:
        point = m.point.rstrip("/") or "/"
        inside = path == point or path.startswith(point.rstrip("/") + "/")
        if inside and (best is None or len(point) >= len(best.point.rstrip("/") or "/")):
            best = m
    return best


def read_disks(
    proc: Fs, paths: Mapping[str, str], statvfs: Statvfs = os.statvfs
) -> tuple[list[DiskUse | Unavailable], list[Mount] | Unavailable]:
    """Use of each ``{label: path}`` and the mount table (or why it is unreadable)."""
    text = proc.read_text(MOUNTS)
    mounts: list[Mount] | Unavailable = parse_mounts(text) if text is not None else Unavailable(f"{MOUNTS} unreadable")
    out: list[DiskUse | Unavailable] = []
    for label, path in paths.items():
        try:
            real = os.path.realpath(path)
            st = statvfs(real)
        except OSError as exc:
            out.append(Unavailable(f"{label}: {os_reason(path, exc)}"))
            continue
        total = st.f_blocks * st.f_frsize
        free = st.f_bavail * st.f_frsize
        used = total - st.f_bfree * st.f_frsize
        m = mount_of(real, mounts) if isinstance(mounts, list) else None
        read_only = bool(st.f_flag & os.ST_RDONLY) or (m is not None and m.read_only)
        out.append(
            DiskUse(
                label=label,
                path=path,
                mount=m.point if m else None,
                device=m.device if m else None,
                fstype=m.fstype if m else None,
                total_mb=total // 2**20,
                free_mb=free // 2**20,
                # used / (used + available): what df shows; the root-reserved blocks count as not usable.
                used_pct=round(100.0 * used / max(1, used + free), 1),
                read_only=read_only,
            )
        )
    return out, mounts


def read_only_block_mounts(mounts: list[Mount]) -> list[Mount]:
    """Block-device file systems of a writable kind that are mounted ``ro`` (by design, or forced by errors)."""
    return [m for m in mounts if m.read_only and m.fstype in WRITABLE_TYPES and m.device.startswith("/dev/")]
