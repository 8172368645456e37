"""What the link needs from the kernel that hosts it: narrow ports, so the link never names ``Kernel``.

``Kernel`` satisfies :class:`LinkHost` structurally (mypy checks it where the kernel builds its ``Link``).
Members are read-only properties so that the kernel's concrete types (``CommandRouter``, ``Supervisor``…)
satisfy them covariantly.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

import zmq

from flightos.bus import envelope as wire
from flightos.bus.endpoints import Endpoints
from flightos.config.target import Target
from flightos.kernel.events import EventId
from flightos.kernel.records import PendingCommand, ServiceRecord
from flightos.kernel.routing.router import LinkRequester
from flightos.sdk.severity import Severity


class LinkRouter(Protocol):
    """The command router's side that takes commands and results from the link."""

    @property
    def pending(self) -> dict[str, PendingCommand]: ...

    def accept_remote(self, requester: LinkRequester, env: wire.Envelope, frame: bytes, caller: str) -> None: ...

    def route_local(self, rec: ServiceRecord, cmd: PendingCommand) -> None: ...

    def finish_remote(self, cmd: PendingCommand, frame: bytes) -> None: ...

    def complete(self, cmd: PendingCommand, payload: dict[str, Any], *, remember: bool = True) -> None: ...


class Mirror(Protocol):
    """The kernel's publisher: re-publishes a peer's vouched frame on this board's vouched endpoint."""

    def mirror_frame(self, frame: bytes) -> None: ...


class Starter(Protocol):
    """The supervisor's side that starts and stops a service taken over from, or yielded to, a peer."""

    async def spawn(self, rec: ServiceRecord) -> None: ...

    async def stop_service(self, rec: ServiceRecord, grace_s: float, reason: str = ...) -> None: ...


class Placement(Protocol):
    """Where the health monitor would place a service (None: nowhere preferred)."""

    def placement_for(self, rec: ServiceRecord) -> list[int] | None: ...


class Cores(Protocol):
    """The board's cores, the fallback placement of a service taken over."""

    def core_ids(self) -> list[int]: ...


class LinkHost(Protocol):
    """Exactly the kernel members the link uses."""

    @property
    def ctx(self) -> zmq.Context[zmq.Socket[bytes]]: ...

    @property
    def target(self) -> Target: ...

    @property
    def endpoints(self) -> Endpoints: ...

    @property
    def state_dir(self) -> Path: ...

    @property
    def records(self) -> dict[str, ServiceRecord]: ...

    @property
    def router(self) -> LinkRouter: ...

    @property
    def publisher(self) -> Mirror: ...

    @property
    def supervisor(self) -> Starter: ...

    @property
    def monitor(self) -> Placement: ...

    @property
    def board(self) -> Cores: ...

    def emit(self, event_id: EventId, severity: Severity, message: str, **data: Any) -> None: ...

    def publish_denied(self, publisher: str, topic: str, board: str, how: str) -> None: ...

    def set_cores(self, rec: ServiceRecord, cores: list[int]) -> None: ...
