"""A service stopped or shed while its restart is scheduled stays stopped: the restart never starts it.

Seen in a clean-clone run: a SEFI froze ``test``, the kernel killed it as hung and scheduled an immediate
restart, and in the same moment SAFE mode shed it. The restart started it anyway, so a shed service ran while
the kernel said STOPPED, and leaving SAFE could not restore it.
"""

from __future__ import annotations

import asyncio

from flightos.config.schema import RestartConfig
from flightos.kernel.records import ServiceRecord, State
from flightos.kernel.restart_policy import RestartTracker
from flightos.kernel.supervision.supervisor import Supervisor
from tests.kernel.routing.fakes import service_config


class Flow:
    """The router's side of a service's life, recorded."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def flush(self, rec: ServiceRecord) -> None:
        self.calls.append("flush")

    def service_lost(self, rec: ServiceRecord, reason: str) -> None:
        self.calls.append("lost")

    def service_unavailable(self, rec: ServiceRecord) -> None:
        self.calls.append("unavailable")


def exited_service() -> tuple[Supervisor, ServiceRecord, list[int]]:
    """A supervisor over one READY service whose process has just been reaped; ``spawn`` only records the
    incarnation it would start."""
    rec = ServiceRecord(cfg=service_config("svc", "elastic"), tracker=RestartTracker(RestartConfig()))
    sup = Supervisor({"svc": rec}, Flow(), lambda *a, **k: None, lambda r: None, "exec", 5.0, containment=object())  # type: ignore[arg-type]
    spawned: list[int] = []

    async def spawn(r: ServiceRecord) -> None:
        spawned.append(r.incarnation)

    sup.spawn = spawn  # type: ignore[method-assign]
    rec.state, rec.pid, rec.incarnation = State.READY, None, 1  # reaped, as the exit handler leaves it
    return sup, rec, spawned


async def run_scheduled(sup: Supervisor, spawned: list[int]) -> list[int]:
    """Let every task the supervisor started finish, then say what was spawned."""
    while len(sup._tasks):
        await asyncio.gather(*list(sup._tasks._tasks), return_exceptions=True)
    return spawned


async def test_a_service_shed_while_its_immediate_restart_waits_is_not_started() -> None:
    sup, rec, spawned = exited_service()
    rec.hung = True
    sup._handle_exit(rec, -9, "was killed after it hung")  # the first restart is immediate
    assert rec.state == State.BACKOFF
    await sup.stop_service(rec, 1.0, "shed: SAFE mode keeps only critical services")
    assert await run_scheduled(sup, spawned) == []
    assert rec.state == State.STOPPED and rec.reason.startswith("shed")


async def test_an_immediate_restart_with_nothing_in_its_way_starts_the_service() -> None:
    sup, rec, spawned = exited_service()
    sup._handle_exit(rec, 1, "exited")
    assert await run_scheduled(sup, spawned) == [1]
