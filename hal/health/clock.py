"""Whether the system clock is synchronised (the kernel's NTP state via adjtimex) and the RTC's offset from it."""

from __future__ import annotations

import ctypes
import ctypes.util
import time
from collections.abc import Callable
from dataclasses import dataclass

from hal.fs import Fs

RTC = "/sys/class/rtc/rtc0"
TIME_ERROR = 5
"""adjtimex's return value while the clock is not synchronised (STA_UNSYNC set)."""
STA_UNSYNC = 0x0040

#: Reads the kernel's clock state: (adjtimex return value, status bits or None, max error in µs or None).
AdjTimex = Callable[[], tuple[int, int | None, int | None]]


class _Timex(ctypes.Structure):
    """``struct timex`` (linux/timex.h) up to ``esterror``/``status``, padded well past its real size."""

    _fields_ = [
        ("modes", ctypes.c_uint),
        ("offset", ctypes.c_long),
        ("freq", ctypes.c_long),
        ("maxerror", ctypes.c_long),
        ("esterror", ctypes.c_long),
        ("status", ctypes.c_int),
        ("_rest", ctypes.c_byte * 512),
    ]


def libc_adjtimex() -> tuple[int, int | None, int | None]:
    """adjtimex(2) with modes 0 (read only, no privilege needed); raises OSError where it is missing."""
    name = ctypes.util.find_library("c") or "libc.so.6"
    libc = ctypes.CDLL(name, use_errno=True)
    tx = _Timex()
    state = int(libc.adjtimex(ctypes.byref(tx)))
    if state < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"adjtimex failed (errno {err})")
    # The field layout is only sure where long is 64-bit; the return value is the same everywhere.
    if ctypes.sizeof(ctypes.c_long) == 8:
        return state, int(tx.status), int(tx.maxerror)
    return state, None, None


@dataclass(frozen=True)
class ClockState:
    """``synchronised`` is ``yes``, ``no`` or ``unknown`` (``sync_reason`` says how known); no RTC: None."""

    synchronised: str
    sync_reason: str
    max_error_ms: float | None
    rtc: str | None
    rtc_time: int | None
    rtc_offset_s: float | None
    rtc_reason: str


def read_clock(sys: Fs, adjtimex: AdjTimex = libc_adjtimex, now: Callable[[], float] = time.time) -> ClockState:
    """The clock's sync state and the RTC (rtc0 under ``sys``) against the system clock."""
    try:
        state, status, maxerror = adjtimex()
    except (OSError, AttributeError) as exc:
        synced, why, max_ms = "unknown", f"adjtimex unavailable: {exc}", None
    else:
        unsync = state == TIME_ERROR or (status is not None and bool(status & STA_UNSYNC))
        synced = "no" if unsync else "yes"
        why = "kernel clock state: " + ("STA_UNSYNC (no NTP/PTP discipline)" if unsync else f"synchronised ({state})")
        max_ms = round(maxerror / 1000.0, 1) if maxerror is not None and not unsync else None
    name = sys.read_text(f"{RTC}/name")
    if name is None:
        return ClockState(synced, why, max_ms, None, None, None, f"no {RTC} (no RTC, or its driver is not loaded)")
    since = sys.read_int(f"{RTC}/since_epoch")
    if since is None:
        return ClockState(synced, why, max_ms, name, None, None, f"{RTC}/since_epoch unreadable (RTC never set?)")
    # since_epoch counts whole seconds: compare the middle of that second, to the second (its resolution).
    return ClockState(synced, why, max_ms, name, since, float(round(since + 0.5 - now())), "")
