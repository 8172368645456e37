"""The kernel's own commands, declared like a service's: one typed, documented handler each, in one table.

``table`` holds the declarations and the dispatch (the SDK's ``CommandSpec``, ``signature_of`` and
``validate``); ``handlers`` the commands, bound to the narrow ``port.KernelPort`` rather than the kernel.
Importing this package fills the table; it imports neither the kernel nor ZeroMQ, so ground tools may read it.
"""

from __future__ import annotations

from flightos.kernel.commands import handlers as _handlers  # noqa: F401 - registers the commands
from flightos.kernel.commands.port import KernelPort
from flightos.kernel.commands.table import TABLE, KernelCommand, describe, dispatch

__all__ = ["TABLE", "KernelCommand", "KernelPort", "describe", "dispatch"]
