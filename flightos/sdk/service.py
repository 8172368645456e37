"""The ``Service`` base class a mission-service author subclasses."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import structlog

from flightos.bus.envelope import Envelope
from flightos.sdk.decorators import CommandSpec, PeriodicSpec, SubscribeSpec
from flightos.sdk.options import Options, load_options
from flightos.sdk.parameters import Parameter
from flightos.sdk.severity import Severity
from flightos.sdk.validation import Argument, signature_of

if TYPE_CHECKING:
    from flightos.sdk.devices import Devices
    from flightos.sdk.port import HostPort
    from flightos.sdk.store import Store

Message = Envelope
"""What a subscriber receives: ``.topic``, ``.source``, ``.seq``, ``.utc_ns``, ``.payload``."""


@dataclass(frozen=True)
class BoundCommand:
    """A command as the host dispatches it: its name, handler name and declared arguments."""

    spec: CommandSpec
    attr: str
    arguments: list[Argument]


@dataclass
class ServiceShape:
    """Everything the decorators declared on a Service subclass, collected once."""

    commands: dict[str, BoundCommand] = field(default_factory=dict)
    periodics: dict[str, PeriodicSpec] = field(default_factory=dict)
    subscriptions: dict[str, SubscribeSpec] = field(default_factory=dict)
    parameters: dict[str, Parameter[Any]] = field(default_factory=dict)

    @classmethod
    def of(cls, service_cls: type[Service]) -> ServiceShape:
        """Inspect a Service subclass (base classes first, so overrides win)."""
        shape = cls()
        for klass in reversed(service_cls.__mro__):
            for attr, value in vars(klass).items():
                if isinstance(value, Parameter):
                    shape.parameters[attr] = value
                fn = value
                cspec = getattr(fn, "__flightos_command__", None)
                if isinstance(cspec, CommandSpec):
                    shape.commands[cspec.name] = BoundCommand(cspec, attr, signature_of(fn))
                pspec = getattr(fn, "__flightos_periodic__", None)
                if isinstance(pspec, PeriodicSpec):
                    shape.periodics[attr] = pspec
                sspec = getattr(fn, "__flightos_subscribe__", None)
                if isinstance(sspec, SubscribeSpec):
                    shape.subscriptions[attr] = sspec
        return shape


class Service:
    """A mission service: one isolated process, supervised by the kernel, on the bus.

    Subclass it, set ``name``, decorate ``async def`` methods with ``@command``, ``@periodic``
    and ``@subscribe``, declare ``Parameter`` attributes, and register the class under the
    ``flightos.services`` entry-point group.
    """

    name: ClassVar[str] = ""
    """The service's bus name; its telemetry topics are ``tm.<name>.*``, its events ``ev.<name>``."""

    options_schema: ClassVar[type[Options] | None] = None
    """The typed schema of ``[services.<name>.options]`` (an :class:`Options` subclass); the kernel checks
    the table against it when the target loads, and ``self.config`` is the checked instance."""

    _host: HostPort
    """The hosting process, set by it before ``on_start`` (any object with :class:`HostPort`'s members)."""
    _config: Options | None = None
    _devices: Devices | None = None
    log: Any
    """A structlog logger bound to this service (``self.log.info("event", key=value)``)."""

    def __init__(self) -> None:
        self.log = structlog.get_logger(f"services.{self.name}").bind(service=self.name)

    # ---- lifecycle hooks -------------------------------------------------------------------
    async def on_start(self) -> None:
        """Called once the service is on the bus, before it is declared ready."""

    async def on_stop(self) -> None:
        """Called on a graceful stop, before the sockets close (bounded by the kernel's grace)."""

    async def on_parameter(self, name: str, value: Any) -> None:
        """Called after a parameter was changed over the bus."""

    # ---- what a service can do -------------------------------------------------------------
    @property
    def store(self) -> Store:
        """The persistent key-value store; it survives restarts and migration."""
        return self._host.store

    @property
    def data_dir(self) -> Path:
        """A directory of this service's own for files it keeps (its store lives there too)."""
        path = self._host.state_dir / self.name
        path.mkdir(parents=True, exist_ok=True)
        return path

    @property
    def options(self) -> dict[str, Any]:
        """This service's table from the target file (``[services.<name>]``)."""
        return self._host.options

    @property
    def config(self) -> Any:
        """The options table as an instance of ``options_schema``, converted once per process.

        Raises ValueError naming the key when the table does not fit (the kernel refuses such a target
        at load, so a service sees this only for options that reached it another way), and TypeError
        when the service declares no schema.
        """
        if self._config is None:
            schema = type(self).options_schema
            if schema is None:
                raise TypeError(f"service {self.name!r} declares no options_schema; read self.options")
            self._config = load_options(schema, self.options, self.name)
        return self._config

    @property
    def devices(self) -> Devices:
        """The payload devices the target grants this service: ``self.devices.i2c("imu")``, ``.uart``, ``.gpio``,
        ``.spi``, ``.can`` (docs/devices.md); any other device raises DeviceNotGranted."""
        if self._devices is None:
            from flightos.sdk.devices import Devices  # the HAL's device layer loads only for services that use it

            self._devices = Devices(self._host.device_grants)
        return self._devices

    @property
    def throttle(self) -> int:
        """The kernel's current throttle level for this service (0 = none); honour it if you can."""
        return self._host.throttle

    async def publish(self, name: str, payload: Any) -> None:
        """Publish telemetry on ``tm.<service>.<name>`` (numbered, so drops are counted).

        The payload is encoded now; messages after the first in one loop iteration leave together at its end,
        one frame per topic (docs/design.md, "Coalesced telemetry"). Raises PublishDenied when the target's
        ``[acl] publish`` does not allow the topic.
        """
        self._host.publish(f"tm.{self.name}.{name}", payload)

    async def downlink(self, name: str, payload: Any, priority: int = 5) -> None:
        """Send a product to the ground (TM[128,1] via the ground link), queued by ``priority`` 0..7 while
        there is no contact. For insight, not raw data: alerts, summaries, small products."""
        if not 0 <= priority <= 7:
            raise ValueError(f"downlink priority is 0..7, got {priority}")
        self._host.publish(f"dl.{self.name}.{name}", {"priority": priority, "data": payload})

    async def event(self, message: str, severity: Severity = Severity.INFO, *, event_id: int = 0, **data: Any) -> None:
        """Raise an event on ``ev.<service>`` and in the log (PUS ST[05] severities).

        ``event_id`` is a stable number, best a member of the service's own ``IntEnum`` (docs/events.md);
        it travels as a plain int.
        """
        self._host.raise_event(message, severity, int(event_id), data)

    async def call(
        self,
        service: str,
        command: str,
        args: dict[str, Any] | None = None,
        *,
        timeout: float = 5.0,
    ) -> Any:
        """Run another service's command and return its value, or raise its typed CommandError."""
        return await self._host.call(service, command, args or {}, timeout=timeout)

    def subscribe(self, prefix: str, handler: Callable[[Message], Awaitable[None]]) -> None:
        """Call ``handler`` with every message whose topic starts with ``prefix``."""
        self._host.add_subscription(prefix, handler)
