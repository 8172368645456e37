"""Who runs a service when the board that ran it stops answering: one rule every kernel computes alike.

:class:`Failover` applies it: it takes over a silent peer's failover services and yields duplicates.
"""

from __future__ import annotations

import asyncio

from flightos.config.target import ServiceConfig
from flightos.kernel.events import EventId
from flightos.kernel.records import ServiceRecord, State
from flightos.kernel.restart_policy import RestartTracker
from flightos.link import replication
from flightos.link.protocol import Hello, Hosted, PeerView
from flightos.link.state import ACTIVE, LinkState
from flightos.sdk.severity import Severity


def taker(home: str, survivors: set[str]) -> str | None:
    """The board that should run a failover service: its home board if it survives, else the first by name."""
    if home in survivors:
        return home
    return min(survivors) if survivors else None


def keeper(home: str, a: str, b: str) -> str:
    """When two boards both run a service (a healed partition), the one that keeps it."""
    if home in (a, b):
        return home
    return min(a, b)


class Failover:
    """Takes over the failover services of a peer that went down, and yields duplicates after a partition heals."""

    def __init__(self, state: LinkState) -> None:
        self.s = state
        self.host = state.host
        self.stopping = False
        """Set while this kernel shuts down: it takes over nothing from then on."""

    def failover_from(self, peer: PeerView) -> None:
        """A peer went down: start here the failover services this board should take from it."""
        hello = peer.hello
        if hello is None or self.stopping:
            return
        survivors = {self.s.board} | {b for b, p in self.s.peers.items() if p.up}
        silent_ms = round((asyncio.get_running_loop().time() - peer.last_hello) * 1000)
        for name, hosted in sorted(hello.services.items()):
            if not hosted.failover or taker(hosted.home, survivors) != self.s.board:
                continue
            self._adopt(name, hosted, peer.board, silent_ms)

    def _adopt(self, name: str, hosted: Hosted, from_board: str, silent_ms: int) -> None:
        rec = self.host.records.get(name)
        if rec is not None and rec.state not in (State.REMOTE, State.DISABLED):
            return  # already runs here
        if rec is None:
            if hosted.config is None:
                return
            try:
                cfg = ServiceConfig.from_wire(name, hosted.config)
            except ValueError as exc:
                self.host.emit(
                    EventId.REPLICATION_FAILED,
                    Severity.HIGH,
                    f"cannot take over {name}: {exc}",
                    service=name,
                    board=from_board,
                )
                return
            settings = self.host.target.restart
            rec = ServiceRecord(cfg=cfg, tracker=RestartTracker(settings))
            rec.guest_of = hosted.home
            self.host.records[name] = rec
        elif rec.state == State.DISABLED:
            return  # disabled here on purpose
        else:
            rec.guest_of = "" if hosted.home == self.s.board else hosted.home
        rec.state, rec.reason = State.RESTARTING, f"taking over from board {from_board}"  # commands queue
        chosen = self.host.monitor.placement_for(rec) or self.host.board.core_ids()
        self.host.set_cores(rec, chosen)
        self.s.stats["failovers"] += 1
        self.s.tasks.append(asyncio.get_running_loop().create_task(self._take_over(rec, hosted, from_board, silent_ms)))

    async def _take_over(self, rec: ServiceRecord, hosted: Hosted, from_board: str, silent_ms: int) -> None:
        """Restore the last replica (after any replica still being written) and start the service here."""
        async with self.s.replica_locks.setdefault(rec.name, asyncio.Lock()):
            try:
                restored = await asyncio.to_thread(replication.restore, self.host.state_dir, rec.name)
            except OSError as exc:
                restored = False
                self.host.emit(
                    EventId.REPLICATION_FAILED,
                    Severity.HIGH,
                    f"cannot restore {rec.name}'s replica ({exc}); starting it with the data this board has",
                    service=rec.name,
                    board=from_board,
                )
        self.host.emit(
            EventId.SERVICE_FAILOVER,
            Severity.HIGH,
            f"{rec.name} starts on board {self.s.board}: board {from_board} stopped answering "
            f"{silent_ms} ms ago" + (" (data from its last replica)" if restored else " (no replica)"),
            service=rec.name,
            from_board=from_board,
            board=self.s.board,
            silent_ms=silent_ms,
            replica=restored,
            home=hosted.home,
        )
        await self.host.supervisor.spawn(rec)

    def resolve_duplicates(self, peer: PeerView, hello: Hello) -> None:
        """Both boards run a service (a healed partition): the loser stops its copy and routes to the keeper."""
        for name, hosted in hello.services.items():
            rec = self.host.records.get(name)
            if rec is None or rec.state not in ACTIVE or hosted.state not in {s.value for s in ACTIVE}:
                continue
            agreed_home = min(rec.guest_of or self.s.board, hosted.home)  # both sides compute the same
            if keeper(agreed_home, self.s.board, peer.board) == self.s.board:
                continue
            self.s.stats["yielded"] += 1
            self.host.emit(
                EventId.SERVICE_YIELDED,
                Severity.MEDIUM,
                f"{name} runs on board {peer.board} too; stopping it here (board {peer.board} keeps it)",
                service=name,
                board=peer.board,
            )
            self.s.tasks.append(asyncio.get_running_loop().create_task(self._yield(rec, peer.board)))

    async def _yield(self, rec: ServiceRecord, to_board: str) -> None:
        await self.host.supervisor.stop_service(
            rec, self.host.target.runtime.shutdown_grace_s, f"runs on board {to_board}"
        )
        rec.state, rec.reason = State.REMOTE, f"runs on board {to_board}"
