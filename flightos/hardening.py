"""Process hardening shared by the kernel, the fork server and services (Linux; a no-op elsewhere)."""

from __future__ import annotations

import ctypes

_PR_SET_DUMPABLE = 4
_PR_GET_DUMPABLE = 3


def forbid_ptrace() -> bool:
    """Make this process non-dumpable: other processes of the same user can no longer ptrace it or read
    its memory (``/proc/<pid>/mem``, ``environ``, ``fd/``), and it writes no core dump. Returns success.

    Without it, any process of the runtime's user (a compromised service) could attach to the kernel or
    to another service and act as it; only root (CAP_SYS_PTRACE) still can.
    """
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return int(libc.prctl(_PR_SET_DUMPABLE, 0, 0, 0, 0)) == 0
    except (OSError, AttributeError):  # pragma: no cover - not Linux
        return False


def dumpable() -> bool:
    """Whether this process may still be ptraced by its own user (True where the call is unavailable)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return int(libc.prctl(_PR_GET_DUMPABLE, 0, 0, 0, 0)) != 0
    except (OSError, AttributeError):  # pragma: no cover - not Linux
        return True
