"""The port a Service needs from the process that hosts it, declared by the SDK so the SDK never names its host.

``flightos.host.service_host.ServiceHost`` satisfies it; a test may hand a ``Service`` any small fake that does.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from flightos.bus.envelope import Envelope
from flightos.sdk.severity import Severity
from flightos.sdk.store import Store

if TYPE_CHECKING:
    from flightos.sdk.devices import DeviceGrants


class HostPort(Protocol):
    """Exactly what ``Service`` uses of its host: its store, directories, options, throttle and bus verbs."""

    @property
    def store(self) -> Store:
        """The service's persistent key-value store."""

    @property
    def state_dir(self) -> Path:
        """The runtime's state directory; the service keeps its files in ``state_dir / <name>``."""

    @property
    def options(self) -> dict[str, Any]:
        """The service's table from the target file (``[services.<name>]``)."""

    @property
    def device_grants(self) -> DeviceGrants:
        """The payload devices the target grants the service (``[devices.<name>] services``)."""

    @property
    def throttle(self) -> int:
        """The kernel's current throttle level for this service (0 = none)."""

    def publish(self, topic: str, payload: Any) -> None:
        """Publish one message on ``topic``; raises PublishDenied when the target's ``[acl]`` forbids it."""

    def raise_event(self, message: str, severity: Severity, event_id: int, data: dict[str, Any]) -> None:
        """Publish an event on ``ev.<service>`` and log it."""

    async def call(self, service: str, command: str, args: dict[str, Any], *, timeout: float) -> Any:
        """Run another service's command and return its value, or raise its typed CommandError."""

    def add_subscription(self, prefix: str, handler: Callable[[Envelope], Awaitable[None]]) -> None:
        """Route every message whose topic starts with ``prefix`` to ``handler``."""
