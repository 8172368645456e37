"""What the telecommand path uses of the ground service: one telecommand in flight and narrow ports.

``tc.handle`` and the handlers are handed a :class:`TcPort`, never the ``Ground`` service, so they
cannot reach past it (import-linter keeps every module here off ``services.ground`` itself).
``Ground`` satisfies it structurally; mypy checks that where the service calls ``tc.handle``.
Members are read-only properties, so plain attributes of the service satisfy them.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Protocol

from flightos import Severity
from flightos.ground import mdb, pus
from flightos.ground.codes import Failure
from flightos.ground.security import KeyStore, ReplayGuard
from services.ground.generation import EventFilter, HousekeepingReports
from services.ground.link import Address, Transport
from services.ground.schedule import Schedule


@dataclass
class Context:
    """One telecommand in flight: where it came from and which reports it asked for."""

    tc: pus.Telecommand
    addr: Address | None
    link: Transport | None
    scheduled: bool = False
    started: bool = False
    extra: dict[str, object] = field(default_factory=dict)

    @property
    def label(self) -> str:
        """For logs and the schedule's source column."""
        return self.tc.label + (" (scheduled)" if self.scheduled else "")


class Verifier(Protocol):
    """ST[01] verification reports and the answers to one telecommand."""

    async def start(self, ctx: Context) -> None:
        """Report the start of execution once (if asked for)."""

    async def progress(self, ctx: Context, step: int) -> None:
        """A progress report TM[1,5], if the TC asked for progress reports."""

    async def reply(self, ctx: Context, service: int, subtype: int, data: bytes) -> None:
        """A report answering the telecommand (TM[service,subtype]), after its start report (TM[1,3])."""

    async def verify_success(self, service: int, subtype: int, ctx: Context) -> None:
        """A success report of ST[01] (acceptance 1, completion 7)."""

    async def verify_failure(
        self,
        service: int,
        subtype: int,
        request_id: Any,
        code: Failure,
        message: str,
        addr: Address | None,
        link: Transport | None,
        trusted: bool = False,
    ) -> None:
        """A failure report of ST[01] (2, 4 or 8) with its reason."""


class Gate(Protocol):
    """Admission of a telecommand: its APID, authentication, anti-replay, and counting what is rejected."""

    @property
    def apid(self) -> int: ...

    @property
    def auth(self) -> bool: ...

    @property
    def keys(self) -> KeyStore: ...

    @property
    def replay(self) -> ReplayGuard: ...

    @property
    def counters(self) -> Counter[str]: ...

    def authenticated(self, addr: Address, link: Transport) -> None:
        """A telecommand from ``addr`` passed authentication: replies and telemetry may go there."""

    async def reject(self, kind: str, reason: str, addr: Address | None, example: str) -> None:
        """Count a rejection towards its reason's report."""


class OnBoard(Protocol):
    """The spacecraft behind the link: the mission database and commands on the bus."""

    @property
    def tables(self) -> mdb.Tables: ...

    async def call(
        self, service: str, command: str, args: dict[str, Any] | None = None, *, timeout: float = 5.0
    ) -> Any:
        """A bus command (typed errors propagate)."""

    async def run_command(self, service: str, command_name: str, args: dict[str, Any]) -> Any:
        """A bus command whose typed error becomes an ST[01] failure."""

    async def signature(self, fn: mdb.Function) -> list[tuple[str, str]] | None:
        """A function's (name, type) arguments."""

    async def parameter_type(self, p: mdb.ParameterDef) -> str:
        """A parameter's value type."""


class Stores(Protocol):
    """What telecommands change on board besides the bus: report generation, the schedule, kept telemetry."""

    @property
    def housekeeping(self) -> HousekeepingReports: ...

    @property
    def events(self) -> EventFilter: ...

    @property
    def schedule(self) -> Schedule | None: ...

    @property
    def schedule_cause(self) -> str: ...

    def schedule_failed(self, exc: Exception) -> None:
        """A schedule operation failed: reopen it (quarantined if damaged)."""

    def acknowledge(self, identities: list[bytes]) -> int:
        """Ground has these TM packets: they leave the store; how many were found."""


class TcPort(Verifier, Gate, OnBoard, Stores, Protocol):
    """Everything the telecommand path uses of the ground service, and its event and log."""

    @property
    def log(self) -> Any: ...

    async def event(self, message: str, severity: Severity = Severity.INFO, *, event_id: int = 0, **data: Any) -> None:
        """Raise an event (ST[05])."""
