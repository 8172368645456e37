"""What the health monitor needs from the rest of the kernel, as narrow protocols (no import of the kernel).

The composition root (``flightos.system``) hands the monitor objects that satisfy these; mypy checks it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from flightos.kernel.records import ServiceRecord

Emit = Callable[..., None]
"""Raise a kernel event: ``emit(EventId, Severity, message, **data)``."""


class ServiceMoves(Protocol):
    """Acting on services: move them between cores, shed and restore them, tell them their throttle level."""

    def set_cores(self, rec: ServiceRecord, cores: list[int]) -> None: ...

    def move_service(self, rec: ServiceRecord, cores: list[int], *, restart: bool, reason: str) -> None: ...

    async def shed_service(self, rec: ServiceRecord, why: str) -> None: ...

    async def restore_service(self, rec: ServiceRecord) -> None: ...

    def send_control(self, rec: ServiceRecord, payload: dict[str, Any]) -> bool: ...


class Lateness(Protocol):
    """How late the kernel's own loop ran: a busy host is evidence against blaming a core or a service."""

    def note(self, now: float, late_s: float) -> None: ...

    def since(self, t0: float) -> float: ...


class Sampler(Protocol):
    """Measures what each service uses (its CPU % feeds a simulated core's load)."""

    def sample(self, rec: ServiceRecord) -> None: ...
