"""Kernel-log events a board operator must know about, read from ``/dev/kmsg`` without blocking.

Each ``/dev/kmsg`` read returns one record, ``prio,seq,usec,flags;message``, then optional
`` KEY=value`` lines; EAGAIN means no more for now, EPIPE that records were overwritten before
they were read (the reader moves on and counts it). A regular file of such lines reads the same way.
"""

from __future__ import annotations

import errno
import os
import re
from collections import deque
from dataclasses import dataclass

KMSG = "/dev/kmsg"
DMESG_RESTRICT = "/proc/sys/kernel/dmesg_restrict"
READ_SIZE = 16384
MAX_PER_POLL = 20000

#: Kinds of kernel-log lines, the first match wins (so an ext4 error on mmcblk0 is ``fs_error``).
PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (kind, re.compile(rx, re.IGNORECASE))
    for kind, rx in (
        ("panic", r"Kernel panic"),
        ("oom_cgroup", r"Memory cgroup out of memory: Kill"),
        ("oom", r"Out of memory: Kill"),
        ("oops", r"\bOops\b|Unable to handle kernel"),
        ("bug", r"\bBUG: |kernel BUG at"),
        ("edac_ue", r"\bEDAC\b.*\bUE\b"),
        ("edac_ce", r"\bEDAC\b.*\bCE\b"),
        ("under_voltage", r"under-?voltage detected"),
        ("fs_read_only", r"remounting filesystem read-only"),
        ("fs_error", r"\bEXT[234]-fs error|\bXFS\b.*corrupt|\bBTRFS error|\bF2FS-fs.*error"),
        ("mmc_error", r"\bmmc(?:blk)?\d+(?:p\d+)?\b.*\b(?:error|timeout|timed out)|I/O error, dev mmcblk"),
    )
)
KINDS = tuple(kind for kind, _ in PATTERNS)


@dataclass(frozen=True)
class KmsgRecord:
    """One kernel-log record: syslog level (0 emerg .. 7 debug), facility, sequence number, time since boot."""

    level: int
    facility: int
    seq: int
    usec: int
    message: str


@dataclass(frozen=True)
class KmsgEvent:
    """A record that matched one of the kinds, with its time since boot in seconds."""

    kind: str
    seq: int
    t_boot_s: float
    level: int
    message: str


@dataclass(frozen=True)
class KmsgSummary:
    """Counts per kind since the reader started (the kernel's ring buffer included), and the last events."""

    source: str
    counts: dict[str, int]
    last: list[KmsgEvent]
    records: int
    overruns: int
    missed: int
    available: bool = True
    reason: str = ""


def dmesg_restrict() -> str | None:
    """The live ``kernel.dmesg_restrict`` (``'0'`` or ``'1'``), or None where it cannot be read."""
    try:
        with open(DMESG_RESTRICT, encoding="ascii") as fh:
            return fh.read().strip()
    except OSError:
        return None


def _why_not_permitted(restrict: str | None) -> str:
    if restrict == "0":
        return "kernel.dmesg_restrict is 0, so a sandbox hides the log (systemd ProtectKernelLogs=yes, or a container)"
    return (
        "reading the kernel log needs CAP_SYSLOG while kernel.dmesg_restrict = 1 (the Debian, Ubuntu and "
        "Raspberry Pi OS default), and under systemd also ProtectKernelLogs=no"
    )


def parse_record(line: bytes | str) -> KmsgRecord | None:
    """``b'6,339,5140900,-;hwmon hwmon1: Undervoltage detected!'`` -> a record; None if not that format."""
    text = line.decode("utf-8", "replace") if isinstance(line, bytes) else line
    head, sep, message = text.partition(";")
    if not sep:
        return None
    fields = head.split(",")
    if len(fields) < 4:
        return None
    try:
        prio, seq, usec = int(fields[0]), int(fields[1]), int(fields[2])
    except ValueError:
        return None
    # The kernel escapes unprintable bytes as \xNN; the message ends at the newline.
    return KmsgRecord(prio & 7, prio >> 3, seq, usec, message.rstrip("\n"))


def classify(message: str) -> str | None:
    """The kind of a kernel-log message (``under_voltage``, ``oops`` ...), or None if it is none of them."""
    for kind, rx in PATTERNS:
        if rx.search(message):
            return kind
    return None


class KmsgReader:
    """Reads new kernel-log records on each ``poll()``, never blocking; keeps counts and the last ``keep`` events."""

    def __init__(self, path: str = KMSG, keep: int = 20) -> None:
        self.path = path
        self.counts: dict[str, int] = dict.fromkeys(KINDS, 0)
        self.last: deque[KmsgEvent] = deque(maxlen=keep)
        self.records = 0
        self.overruns = 0
        self.missed = 0
        self.reason = ""
        self._fd: int | None = None
        self._partial = b""
        self._last_seq: int | None = None
        self._new: list[KmsgEvent] = []

    @property
    def available(self) -> bool:
        """False once the log could not be opened or read; ``reason`` says why."""
        return not self.reason

    def poll(self) -> list[KmsgEvent]:
        """Read what is new (at most MAX_PER_POLL records) and return the events among it."""
        if self.reason:
            return []
        if self._fd is None and not self._open():
            return []
        assert self._fd is not None
        new: list[KmsgEvent] = []
        for _ in range(MAX_PER_POLL):
            try:
                chunk = os.read(self._fd, READ_SIZE)
            except BlockingIOError:
                break
            except BrokenPipeError:
                self.overruns += 1  # overwritten before we read it: the next read returns the oldest left
                continue
            except OSError as exc:
                self._fail(exc)
                break
            if not chunk:
                break  # a regular file at its end
            new += self._feed(chunk)
        return new

    def summary(self) -> KmsgSummary:
        """The counts and last events so far (or why there are none)."""
        return KmsgSummary(
            source=self.path,
            counts=dict(self.counts),
            last=list(self.last),
            records=self.records,
            overruns=self.overruns,
            missed=self.missed,
            available=self.available,
            reason=self.reason,
        )

    def close(self) -> None:
        """Close the log."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def _open(self) -> bool:
        try:
            self._fd = os.open(self.path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError as exc:
            self._fail(exc)
            return False
        return True

    def _fail(self, exc: OSError) -> None:
        if exc.errno in (errno.EPERM, errno.EACCES):
            self.reason = f"{self.path}: not permitted ({exc.strerror}): " + _why_not_permitted(dmesg_restrict())
        elif exc.errno == errno.ENOENT and self.path == KMSG:
            self.reason = f"{self.path}: no such device (a container, or a kernel without printk)"
        else:
            self.reason = f"{self.path}: {exc.strerror or exc}"
        self.close()

    def _feed(self, chunk: bytes) -> list[KmsgEvent]:
        data = self._partial + chunk
        lines = data.split(b"\n")
        self._partial = lines.pop()
        new: list[KmsgEvent] = []
        for line in lines:
            if not line or line[:1] == b" ":
                continue  # a continuation (KEY=value) line
            rec = parse_record(line)
            if rec is None:
                continue
            if self._last_seq is not None:
                if rec.seq <= self._last_seq:
                    continue  # read before (a file read again)
                self.missed += max(0, rec.seq - self._last_seq - 1)
            self._last_seq = rec.seq
            self.records += 1
            kind = classify(rec.message)
            if kind is None:
                continue
            event = KmsgEvent(kind, rec.seq, rec.usec / 1e6, rec.level, rec.message[:240])
            self.counts[kind] += 1
            self.last.append(event)
            new.append(event)
        return new
