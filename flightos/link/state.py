"""What every part of the link shares: this board's name and epoch, its peers, counters and the send path.

The parts (``peers``, ``forwarding``, ``telemetry``, ``replication``, ``failover``) each hold one concern
and reach the kernel only through :class:`~flightos.link.ports.LinkHost`.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import zmq

from flightos.bus.aiozmq import AsyncSocket
from flightos.bus.pubsub import RejectCounter
from flightos.kernel.records import State
from flightos.link.ports import LinkHost
from flightos.link.protocol import PeerView

ACTIVE = {State.STARTING, State.READY, State.BACKOFF, State.RESTARTING}
"""States in which a service counts as running on a board (two boards in them is a duplicate)."""


class LinkState:
    """This board's side of the link: its config, peers, counters, rejects, tasks and per-peer DEALERs."""

    def __init__(self, host: LinkHost) -> None:
        self.host = host
        self.cfg = host.target.link
        self.board = self.cfg.board
        self.epoch = time.time_ns()
        self.peers = {b: PeerView(b, p.endpoint) for b, p in self.cfg.peers.items()}
        self.rejects = RejectCounter("link")
        self.stats = {
            "commands_out": 0,
            "commands_in": 0,
            "resends": 0,
            "results_in": 0,
            "results_out": 0,
            "telemetry_out": 0,
            "telemetry_in": 0,
            "telemetry_dropped": 0,
            "publish_denied": 0,
            "spoofed": 0,
            "replicas_out": 0,
            "replicas_in": 0,
            "failovers": 0,
            "yielded": 0,
            "failed_over_commands": 0,
        }
        self.tasks: list[asyncio.Task[Any]] = []
        self.dealers: dict[str, AsyncSocket] = {}
        self.replica_locks: dict[str, asyncio.Lock] = {}
        """One lock per service: a replica being written, and a take-over restoring it, never overlap."""

    def send(self, board: str, frames: list[bytes]) -> bool:
        """Send to a peer's ROUTER without blocking; count it as sent or failed on that peer."""
        try:
            self.dealers[board].send_multipart_nowait(frames)
        except zmq.ZMQError:
            self.peers[board].stats["send_failed"] += 1
            return False
        self.peers[board].stats["sent"] += 1
        return True
