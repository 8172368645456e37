"""What the supervisor needs from the command router, as a narrow protocol (no import of the router)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from flightos.kernel.records import ServiceRecord

Emit = Callable[..., None]
"""Raise a kernel event: ``emit(EventId, Severity, message, **data)``."""


class CommandFlow(Protocol):
    """The router's side that follows a service's life: deliver what waited, answer what can no longer run."""

    def flush(self, rec: ServiceRecord) -> None:
        """Deliver the commands queued for a service that just became ready."""

    def service_lost(self, rec: ServiceRecord, reason: str) -> None:
        """Answer the commands in flight to an incarnation that ended (``service_failed``)."""

    def service_unavailable(self, rec: ServiceRecord) -> None:
        """Answer the queued commands of a service that will not come back soon (``service_unavailable``)."""
