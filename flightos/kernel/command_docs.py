"""A light view of the kernel's command table (docs and argument types), so ground tools read it without the kernel.

Generated at import from ``flightos.kernel.commands``, which imports neither the kernel nor ZeroMQ.
"""

from __future__ import annotations

from flightos.kernel.commands import TABLE
from flightos.sdk.validation import Argument

KERNEL_COMMANDS: dict[str, str] = {name: c.spec.doc for name, c in TABLE.items()}
"""Command name -> one-line doc; the mission database exporter reads it."""

KERNEL_ARGUMENTS: dict[str, list[Argument]] = {name: list(c.arguments) for name, c in TABLE.items()}
"""Command name -> its declared arguments (name, type, required, default), as ``describe`` gives them."""
