"""The kernel's side of the links to other boards: hellos, commands, telemetry, replicas and failover.

One ROUTER per kernel listens on ``[link] listen`` (CURVE server, ZAP allow-list); one DEALER per
peer connects to that peer's ROUTER with this kernel's key pair. Requests (hellos, commands,
telemetry, replicas) go out on the DEALERs; results come back on the connection their command
came in on. A command sent to a peer is kept until its result arrives and sent again every
``retry_s`` while the link is up: the peer's router runs one id once, so a healed link never
loses or duplicates a command.

:class:`Link` is a thin facade over parts that each hold one concern (``sockets``, ``peers``,
``forwarding``, ``telemetry``, ``replication``, ``failover``, ``inbound``), all sharing one
:class:`~flightos.link.state.LinkState` and reaching the kernel only through
:class:`~flightos.link.ports.LinkHost`.
"""

from __future__ import annotations

import asyncio
from typing import Any

from flightos.kernel.records import PendingCommand
from flightos.kernel.routing.router import LinkRequester
from flightos.link.failover import Failover
from flightos.link.forwarding import Forwarding, Outgoing
from flightos.link.inbound import Inbound
from flightos.link.peers import Peers
from flightos.link.ports import LinkHost
from flightos.link.replication import Replicator
from flightos.link.sockets import HWM, LinkSetupError, LinkSockets
from flightos.link.state import ACTIVE, LinkState
from flightos.link.telemetry import Telemetry

__all__ = ["ACTIVE", "HWM", "Link", "LinkSetupError", "Outgoing"]


class Link:
    """Joins this kernel to its peers; see the module docstring. Implements the router's ``RemoteRoutes``."""

    def __init__(self, host: LinkHost) -> None:
        self.state = LinkState(host)
        self.sockets = LinkSockets(self.state)
        self.forwarding = Forwarding(self.state, self.sockets)
        self.telemetry = Telemetry(self.state, self.sockets)
        self.replicator = Replicator(self.state)
        self.failover = Failover(self.state)
        self.peers = Peers(self.state, self.forwarding, self.telemetry, self.replicator, self.failover)
        self.inbound = Inbound(self.state, self.sockets, self.peers, self.forwarding, self.telemetry, self.replicator)

    @property
    def board(self) -> str:
        """This board's name on the link."""
        return self.state.board

    # ---- set-up and lifecycle -----------------------------------------------------------------
    def open(self) -> None:
        """Load keys, bind the link endpoint, connect to every peer; raise LinkSetupError naming the problem."""
        self.sockets.open()

    def attach(self) -> None:
        """Start handling what arrives (once the kernel's router and publisher exist)."""
        self.sockets.server.on_messages(self.inbound.on_server, multipart=True, copy=False)
        for b, d in self.state.dealers.items():
            d.on_messages(
                lambda batch, b=b: self.forwarding.on_results(b, batch),  # type: ignore[misc]
                multipart=True,
            )
        self.sockets.export.on_messages(lambda frames: self.telemetry.on_export(frames, vouched=False))
        self.sockets.export_vouched_in.on_messages(lambda frames: self.telemetry.on_export(frames, vouched=True))

    async def join(self) -> None:
        """Say hello and wait (up to ``join_timeout_s``) to hear every peer; then leave to peers what they run."""
        await self.peers.join()

    def start(self) -> None:
        """Start the heartbeat, retry and replication loops."""
        loop = asyncio.get_running_loop()
        self.state.tasks += [loop.create_task(self.peers.heartbeat_loop()), loop.create_task(self.replicator.loop())]

    def stopping(self) -> None:
        """This kernel is shutting down: take over nothing from now on."""
        self.failover.stopping = True

    async def close(self) -> None:
        """Say goodbye to peers (so they fail over at once), then close every socket."""
        for t in self.state.tasks:
            t.cancel()
        await asyncio.gather(*self.state.tasks, return_exceptions=True)
        self.peers.send_hellos(bye=True)
        self.sockets.close()

    async def replicate(self) -> None:
        """Send each up peer a snapshot of every failover service's data directory that changed since."""
        await self.replicator.replicate()

    # ---- the router's RemoteRoutes ------------------------------------------------------------
    def locate(self, service: str) -> str | None:
        """The board that runs ``service`` now, by its peers' hellos (None: no peer does)."""
        return self.forwarding.locate(service)

    def knows(self, service: str) -> bool:
        """Whether some peer's last hello named ``service`` (even a peer that is unreachable right now)."""
        return self.forwarding.knows(service)

    def known_services(self) -> list[str]:
        """Every service some peer's last hello named."""
        return self.forwarding.known_services()

    def forward(self, cmd: PendingCommand) -> None:
        """Send a command to the board that runs its destination (or hold it until one does)."""
        self.forwarding.forward(cmd)

    def send_result(self, requester: LinkRequester, frame: bytes) -> bool:
        """Answer a command that came in over the link, on the connection it came in on."""
        return self.forwarding.send_result(requester, frame)

    # ---- status -------------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        """The link section of ``flightos status``."""
        s, gate = self.state, self.sockets.gate
        now = asyncio.get_running_loop().time()
        return {
            "board": s.board,
            "listen": s.cfg.listen,
            "curve": s.cfg.curve,
            "epoch": s.epoch,
            "peers": {
                b: {
                    "endpoint": p.endpoint,
                    "up": p.up,
                    "ever_up": p.ever_up,
                    "last_hello_ms": round((now - p.last_hello) * 1000) if p.last_hello else None,
                    "services": sorted(p.hello.services) if p.hello else [],
                    "interest": list(p.hello.interest) if p.hello else [],
                    **p.stats,
                }
                for b, p in s.peers.items()
            },
            "outgoing": len(self.forwarding.outgoing),
            "stats": dict(s.stats),
            "security": gate.stats() if gate is not None else {"refused": {}, "admitted": {}},
            "rejected": dict(s.rejects.counts),
        }
