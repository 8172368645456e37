"""Hellos and peer liveness: what this board says it runs and wants, and when a peer is up or down.

A hello carries this board's directory of services and its telemetry interest; a peer is up while its
hellos arrive and down after ``dead_after_s`` without one, or at once when it says goodbye. Coming up
and going down drive the other parts: resends, exports, replicas, failover and duplicate resolution.
"""

from __future__ import annotations

import asyncio
import contextlib

from flightos.kernel.events import EventId
from flightos.kernel.records import State
from flightos.link import protocol
from flightos.link.failover import Failover
from flightos.link.forwarding import Forwarding
from flightos.link.protocol import Hello, Hosted, PeerView
from flightos.link.replication import Replicator
from flightos.link.state import LinkState
from flightos.link.telemetry import Telemetry
from flightos.sdk.severity import Severity


class Peers:
    """Sends this board's hellos and follows its peers' state from theirs."""

    def __init__(
        self, state: LinkState, forwarding: Forwarding, telemetry: Telemetry, replicator: Replicator, failover: Failover
    ) -> None:
        self.s = state
        self.host = state.host
        self.forwarding = forwarding
        self.telemetry = telemetry
        self.replicator = replicator
        self.failover = failover
        self.seq = 0
        self._heard = asyncio.Event()
        self._joined = False

    async def join(self) -> None:
        """Say hello and wait (up to ``join_timeout_s``) to hear every peer; then leave to peers what they run."""
        cfg, peers = self.s.cfg, self.s.peers
        self.send_hellos()
        loop = asyncio.get_running_loop()
        until = loop.time() + cfg.join_timeout_s
        while not all(p.up for p in peers.values()) and loop.time() < until:
            self._heard.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._heard.wait(), min(cfg.heartbeat_s, until - loop.time()))
            self.send_hellos()
        self._joined = True
        heard = sorted(b for b, p in peers.items() if p.up)
        missing = sorted(set(peers) - set(heard))
        for rec in self.host.records.values():
            where = self.forwarding.locate(rec.name)
            if where is not None and rec.state != State.DISABLED:
                rec.state, rec.reason = State.REMOTE, f"runs on board {where}"
                self.host.emit(
                    EventId.SERVICE_REMOTE,
                    Severity.INFO,
                    f"{rec.name} runs on board {where}; not started here",
                    service=rec.name,
                    board=where,
                )
        self.host.emit(
            EventId.LINK_JOINED,
            Severity.INFO if not missing else Severity.LOW,
            f"board {self.s.board} joined: peers up {heard or 'none'}"
            + (f", not answering {missing}" if missing else ""),
            board=self.s.board,
            up=heard,
            missing=missing,
        )

    def _directory(self) -> dict[str, Hosted]:
        out: dict[str, Hosted] = {}
        if not self._joined:
            return out  # claim nothing until join() has left to peers what they already run
        for rec in self.host.records.values():
            if rec.state in (State.REMOTE, State.DISABLED):
                continue
            out[rec.name] = Hosted(
                state=rec.state.value,
                home=rec.guest_of or self.s.board,
                failover=rec.cfg.failover,
                config=rec.cfg.to_wire() if rec.cfg.failover else None,
            )
        return out

    def _interest(self) -> list[str]:
        return sorted(
            {p for r in self.host.records.values() if r.state not in (State.REMOTE, State.DISABLED) for p in r.interest}
        )

    def send_hellos(self, bye: bool = False) -> None:
        """Send every peer this board's hello (``bye``: the last one, so peers fail over at once)."""
        self.seq += 1
        body = protocol.encode(
            Hello(
                v=protocol.VERSION,
                board=self.s.board,
                epoch=self.s.epoch,
                seq=self.seq,
                services=self._directory(),
                interest=self._interest(),
                bye=bye,
            )
        )
        for b in self.s.dealers:
            self.s.send(b, [protocol.HELLO, body])

    def on_hello(self, peer: PeerView, hello: Hello) -> None:
        """A peer's hello: it is up (or gone, on a goodbye); its directory and interest are now these."""
        loop = asyncio.get_running_loop()
        peer.hellos += 1
        restarted = peer.epoch != 0 and hello.epoch != peer.epoch
        previous, peer.hello, peer.epoch = peer.hello, hello, hello.epoch
        if hello.bye:
            if peer.up:
                self._peer_down(peer, "said goodbye (graceful stop)")
            return
        peer.last_hello = loop.time()
        if restarted:
            self.forwarding.fail_outgoing(peer.board, f"board {peer.board} restarted")
        if not peer.up:
            peer.up, peer.ever_up = True, True
            down_for = None if peer.down_since is None else round(loop.time() - peer.down_since, 2)
            peer.down_since = None
            self.host.emit(
                EventId.LINK_UP,
                Severity.INFO,
                f"link to board {peer.board} up" + (f" after {down_for} s" if down_for is not None else ""),
                board=peer.board,
                endpoint=peer.endpoint,
                down_s=down_for,
                restarted=restarted,
            )
            self.replicator.forget(peer.board)  # send it every replica again
            self._heard.set()
            self.forwarding.retry(force=True)
        if previous is None or previous.interest != hello.interest:
            self.telemetry.sync_exports()
        self.failover.resolve_duplicates(peer, hello)

    def _peer_down(self, peer: PeerView, why: str) -> None:
        loop = asyncio.get_running_loop()
        peer.up = False
        peer.down_since = loop.time()
        silent = round((loop.time() - peer.last_hello) * 1000) if peer.last_hello else None
        self.host.emit(
            EventId.LINK_DOWN,
            Severity.HIGH,
            f"link to board {peer.board} down: {why}",
            board=peer.board,
            endpoint=peer.endpoint,
            silent_ms=silent,
            reason=why,
        )
        self.telemetry.sync_exports()
        self.failover.failover_from(peer)

    async def heartbeat_loop(self) -> None:
        """Send hellos every ``heartbeat_s``, mark silent peers down and resend unanswered commands."""
        loop = asyncio.get_running_loop()
        while True:
            self.send_hellos()
            now = loop.time()
            for peer in self.s.peers.values():
                if peer.up and now - peer.last_hello > self.s.cfg.dead_after_s:
                    self._peer_down(
                        peer, f"no hello for {now - peer.last_hello:.1f} s (limit {self.s.cfg.dead_after_s:g} s)"
                    )
            self.forwarding.retry()
            await asyncio.sleep(self.s.cfg.heartbeat_s)
