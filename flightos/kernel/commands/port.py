"""What the kernel's command handlers need from the kernel, as narrow protocols (no import of the kernel)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from flightos.config.schema import RuntimeConfig
from flightos.kernel.health.modes import Mode
from flightos.kernel.records import ServiceRecord


class SupervisorPort(Protocol):
    """Starting and stopping service processes."""

    async def spawn(self, rec: ServiceRecord) -> None: ...

    async def stop_service(self, rec: ServiceRecord, grace_s: float, reason: str = ...) -> None: ...


class MonitorPort(Protocol):
    """Core health and the system mode, with the ground's holds on them."""

    @property
    def health(self) -> Mapping[int, Any]: ...

    @property
    def mode(self) -> Mode: ...

    def force_core(self, core: int, enable: bool) -> str: ...

    def force_mode(self, mode: Mode | None) -> None: ...

    async def tick(self) -> None: ...


class EffectsPort(Protocol):
    """The board's fault-injection capability (a simulator has it) and the cores' states as the board sees them."""

    @property
    def injects_faults(self) -> bool: ...

    @property
    def states(self) -> Mapping[int, str]: ...

    def inject(self, fault: str, args: dict[str, Any]) -> str: ...


class LinkPort(Protocol):
    """The links to other boards."""

    def status(self) -> dict[str, Any]: ...


class RouterPort(Protocol):
    """The command router's limits."""

    @property
    def max_frame_bytes(self) -> int: ...


class TargetPort(Protocol):
    """The running target's name and runtime settings."""

    @property
    def name(self) -> str: ...

    @property
    def runtime(self) -> RuntimeConfig: ...


class KernelPort(Protocol):
    """Everything a kernel command may touch: the records view, supervisor, monitor, board effects, link."""

    @property
    def records(self) -> Mapping[str, ServiceRecord]: ...

    @property
    def supervisor(self) -> SupervisorPort: ...

    @property
    def monitor(self) -> MonitorPort: ...

    @property
    def effects(self) -> EffectsPort: ...

    @property
    def link(self) -> LinkPort | None: ...

    @property
    def router(self) -> RouterPort: ...

    @property
    def target(self) -> TargetPort: ...

    def status(self) -> dict[str, Any]: ...

    def request_stop(self) -> None: ...
