"""The kernel's side of the links to other boards: hellos, commands, telemetry, replicas and failover.

One ROUTER per kernel listens on ``[link] listen`` (CURVE server, ZAP allow-list); one DEALER per
peer connects to that peer's ROUTER with this kernel's key pair. Requests (hellos, commands,
telemetry, replicas) go out on the DEALERs; results come back on the connection their command
came in on. A command sent to a peer is kept until its result arrives and sent again every
``retry_s`` while the link is up: the peer's router runs one id once, so a healed link never
loses or duplicates a command.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog
import zmq

from flightos.bus import envelope as wire
from flightos.bus.aiozmq import LINGER_MS, AsyncSocket
from flightos.bus.commands import error_payload
from flightos.bus.envelope import FrameError, Kind
from flightos.bus.errors import ServiceFailed
from flightos.bus.pubsub import VOUCHED_PREFIXES, RejectCounter
from flightos.config.target import ServiceConfig
from flightos.kernel.events import EventId
from flightos.kernel.records import PendingCommand, ServiceRecord, State
from flightos.kernel.restart_policy import RestartTracker
from flightos.kernel.router import LinkRequester
from flightos.link import keys, protocol, replication
from flightos.link.failover import keeper, taker
from flightos.link.ports import LinkHost
from flightos.link.protocol import Hello, Hosted, LinkProtocolError, PeerView
from flightos.link.zap import DOMAIN, Gatekeeper
from flightos.sdk.severity import Severity

log = structlog.get_logger("flightos.link")

HWM = 10_000
ACTIVE = {State.STARTING, State.READY, State.BACKOFF, State.RESTARTING}
"""States in which a service counts as running on a board (two boards in them is a duplicate)."""


class LinkSetupError(Exception):
    """The link cannot start: a key is missing or unsafe, or the endpoint cannot be bound."""


@dataclass
class Outgoing:
    """A command this kernel forwards to another board, until its result comes back."""

    cmd: PendingCommand
    board: str = ""
    last_sent: float = 0.0
    sends: int = 0


class Link:
    """Joins this kernel to its peers; see the module docstring."""

    def __init__(self, kernel: LinkHost) -> None:
        self.k = kernel
        self.cfg = kernel.target.link
        self.board = self.cfg.board
        self.epoch = time.time_ns()
        self.seq = 0
        self.keys_dir = Path(self.cfg.keys_dir).expanduser() if self.cfg.keys_dir else \
            kernel.state_dir / "keys" / "curve"
        self.peers = {b: PeerView(b, p.endpoint) for b, p in self.cfg.peers.items()}
        self.outgoing: dict[str, Outgoing] = {}
        self.rejects = RejectCounter("link")
        self.stats = {"commands_out": 0, "commands_in": 0, "resends": 0, "results_in": 0, "results_out": 0,
                      "telemetry_out": 0, "telemetry_in": 0, "telemetry_dropped": 0, "publish_denied": 0,
                      "spoofed": 0, "replicas_out": 0, "replicas_in": 0, "failovers": 0, "yielded": 0,
                      "failed_over_commands": 0}
        self._exported: set[str] = set()
        self._replicated: dict[tuple[str, str], replication.Signature] = {}
        self._too_big: set[str] = set()
        self._tasks: list[asyncio.Task[Any]] = []
        self._heard = asyncio.Event()
        self.gate: Gatekeeper | None = None
        self._dealers: dict[str, AsyncSocket] = {}
        self._loop = asyncio.get_running_loop()
        self._opened: list[zmq.Socket[bytes]] = []
        self._joined = False
        self._stopping = False
        self._replica_locks: dict[str, asyncio.Lock] = {}

    # ---- set-up -------------------------------------------------------------------------------
    def open(self) -> None:
        """Load keys, bind the link endpoint, connect to every peer; raise LinkSetupError naming the problem."""
        try:
            self._open()
        except keys.KeyFileError as exc:
            self._close_sockets()
            raise LinkSetupError(f"[link] keys: {exc}") from None
        except zmq.ZMQError as exc:
            self._close_sockets()
            raise LinkSetupError(f"[link] listen {self.cfg.listen}: {exc}") from None

    def _close_sockets(self) -> None:
        for s in self._opened:
            with contextlib.suppress(zmq.ZMQError):
                s.close(linger=0)
        if self.gate is not None:
            self.gate.close()
            self.gate = None

    def _open(self) -> None:
        ctx = self.k.ctx
        server = ctx.socket(zmq.ROUTER)
        self._opened.append(server)
        server.setsockopt(zmq.ROUTER_MANDATORY, 1)
        self._tune(server)
        own: keys.KeyPair | None = None
        peer_keys: dict[str, bytes] = {}
        if self.cfg.curve:
            own = keys.load_secret(self.keys_dir, self.board)
            for b, p in self.cfg.peers.items():
                peer_keys[b] = p.public_key.encode() if p.public_key else keys.load_public(self.keys_dir, b)
            allowed = {pub: f"kernel:{b}" for b, pub in peer_keys.items()}
            allowed.update({pub: f"service:{n}" for pub, n in keys.authorized(self.keys_dir).items()})
            self.gate = Gatekeeper(ctx, allowed)
            self.gate.on_refused = self._refused_from_thread
            server.setsockopt(zmq.CURVE_SERVER, 1)
            server.setsockopt(zmq.CURVE_SECRETKEY, own.secret)
            server.setsockopt(zmq.ZAP_DOMAIN, DOMAIN)
            self.gate.watch(server)
            self.gate.start()
        else:
            log.warning("link.plaintext", board=self.board,
                        note="[link] curve = false: links are neither encrypted nor authenticated (lab bench only)")
        server.bind(self.cfg.listen or "")
        self.server = AsyncSocket(server)
        for b, p in self.cfg.peers.items():
            d = ctx.socket(zmq.DEALER)
            self._opened.append(d)
            d.setsockopt(zmq.ROUTING_ID, f"k/{self.board}".encode())
            d.setsockopt(zmq.IMMEDIATE, 1)  # nothing queues for a peer that is not connected: we resend ourselves
            self._tune(d)
            if own is not None:
                d.setsockopt(zmq.CURVE_PUBLICKEY, own.public)
                d.setsockopt(zmq.CURVE_SECRETKEY, own.secret)
                d.setsockopt(zmq.CURVE_SERVERKEY, peer_keys[b])
            d.connect(p.endpoint)
            self._dealers[b] = AsyncSocket(d)
        self.export_sub = ctx.socket(zmq.SUB)
        self.export_sub.setsockopt(zmq.RCVHWM, 100_000)
        self.export_sub.setsockopt(zmq.LINGER, 0)
        self.export_sub.connect(self.k.endpoints.subscribe)
        self.import_pub = ctx.socket(zmq.PUB)
        self.import_pub.setsockopt(zmq.SNDHWM, 100_000)
        self.import_pub.setsockopt(zmq.LINGER, LINGER_MS)
        self.import_pub.connect(self.k.endpoints.publish)
        self._export = AsyncSocket(self.export_sub)
        # Events and products are exported from the kernel's own endpoint, where only vouched frames go.
        self.export_vouched = ctx.socket(zmq.SUB)
        self.export_vouched.setsockopt(zmq.RCVHWM, 100_000)
        self.export_vouched.setsockopt(zmq.LINGER, 0)
        self.export_vouched.connect(self.k.endpoints.kernel_events)
        self._export_vouched = AsyncSocket(self.export_vouched)

    def attach(self) -> None:
        """Start handling what arrives (once the kernel's router and publisher exist)."""
        self.server.on_messages(self._on_server, multipart=True, copy=False)
        for b, d in self._dealers.items():
            d.on_messages(lambda batch, b=b: self._on_dealer(b, batch), multipart=True)  # type: ignore[misc]
        self._export.on_messages(lambda frames: self._on_export(frames, vouched=False))
        self._export_vouched.on_messages(lambda frames: self._on_export(frames, vouched=True))

    def _tune(self, s: zmq.Socket[bytes]) -> None:
        s.setsockopt(zmq.SNDHWM, HWM)
        s.setsockopt(zmq.RCVHWM, HWM)
        s.setsockopt(zmq.LINGER, LINGER_MS)
        ivl = max(100, int(self.cfg.heartbeat_s * 1000))
        s.setsockopt(zmq.HEARTBEAT_IVL, ivl)
        s.setsockopt(zmq.HEARTBEAT_TIMEOUT, int(self.cfg.dead_after_s * 1000))
        s.setsockopt(zmq.HEARTBEAT_TTL, int(self.cfg.dead_after_s * 1000))
        s.setsockopt(zmq.RECONNECT_IVL, 100)
        s.setsockopt(zmq.RECONNECT_IVL_MAX, 1000)

    async def join(self) -> None:
        """Say hello and wait (up to ``join_timeout_s``) to hear every peer; then leave to peers what they run."""
        self._send_hellos()
        loop = asyncio.get_running_loop()
        until = loop.time() + self.cfg.join_timeout_s
        while not all(p.up for p in self.peers.values()) and loop.time() < until:
            self._heard.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._heard.wait(), min(self.cfg.heartbeat_s, until - loop.time()))
            self._send_hellos()
        self._joined = True
        heard = sorted(b for b, p in self.peers.items() if p.up)
        missing = sorted(set(self.peers) - set(heard))
        for rec in self.k.records.values():
            where = self.locate(rec.name)
            if where is not None and rec.state != State.DISABLED:
                rec.state, rec.reason = State.REMOTE, f"runs on board {where}"
                self.k.emit(EventId.SERVICE_REMOTE, Severity.INFO,
                            f"{rec.name} runs on board {where}; not started here", service=rec.name, board=where)
        self.k.emit(EventId.LINK_JOINED, Severity.INFO if not missing else Severity.LOW,
                    f"board {self.board} joined: peers up {heard or 'none'}"
                    + (f", not answering {missing}" if missing else ""), board=self.board, up=heard,
                    missing=missing)

    def start(self) -> None:
        """Start the heartbeat, retry and replication loops."""
        loop = asyncio.get_running_loop()
        self._tasks += [loop.create_task(self._heartbeat_loop()), loop.create_task(self._replication_loop())]

    def stopping(self) -> None:
        """This kernel is shutting down: take over nothing from now on."""
        self._stopping = True

    async def close(self) -> None:
        """Say goodbye to peers (so they fail over at once), then close every socket."""
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._send_hellos(bye=True)
        for d in self._dealers.values():
            d.close()
        self.server.close()
        self._export.close(0)
        self.import_pub.close(linger=LINGER_MS)
        self._export_vouched.close(0)
        if self.gate is not None:
            self.gate.close()

    # ---- hellos and peer state ---------------------------------------------------------------
    def _directory(self) -> dict[str, Hosted]:
        out: dict[str, Hosted] = {}
        if not self._joined:
            return out  # claim nothing until join() has left to peers what they already run
        for rec in self.k.records.values():
            if rec.state in (State.REMOTE, State.DISABLED):
                continue
            out[rec.name] = Hosted(state=rec.state.value, home=rec.guest_of or self.board,
                                   failover=rec.cfg.failover,
                                   config=rec.cfg.to_wire() if rec.cfg.failover else None)
        return out

    def _interest(self) -> list[str]:
        return sorted({p for r in self.k.records.values() if r.state not in (State.REMOTE, State.DISABLED)
                       for p in r.interest})

    def _send_hellos(self, bye: bool = False) -> None:
        self.seq += 1
        body = protocol.encode(Hello(v=protocol.VERSION, board=self.board, epoch=self.epoch, seq=self.seq,
                                     services=self._directory(), interest=self._interest(), bye=bye))
        for b in self._dealers:
            self._send(b, [protocol.HELLO, body])

    def _send(self, board: str, frames: list[bytes]) -> bool:
        try:
            self._dealers[board].send_multipart_nowait(frames)
        except zmq.ZMQError:
            self.peers[board].stats["send_failed"] += 1
            return False
        self.peers[board].stats["sent"] += 1
        return True

    def _on_hello(self, peer: PeerView, hello: Hello) -> None:
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
            self._fail_outgoing(peer.board, f"board {peer.board} restarted")
        if not peer.up:
            peer.up, peer.ever_up = True, True
            down_for = None if peer.down_since is None else round(loop.time() - peer.down_since, 2)
            peer.down_since = None
            self.k.emit(EventId.LINK_UP, Severity.INFO, f"link to board {peer.board} up"
                        + (f" after {down_for} s" if down_for is not None else ""), board=peer.board,
                        endpoint=peer.endpoint, down_s=down_for, restarted=restarted)
            for key in [k for k in self._replicated if k[0] == peer.board]:
                del self._replicated[key]  # send it every replica again
            self._heard.set()
            self._retry(force=True)
        if previous is None or previous.interest != hello.interest:
            self._sync_exports()
        self._resolve_duplicates(peer, hello)

    def _peer_down(self, peer: PeerView, why: str) -> None:
        loop = asyncio.get_running_loop()
        peer.up = False
        peer.down_since = loop.time()
        silent = round((loop.time() - peer.last_hello) * 1000) if peer.last_hello else None
        self.k.emit(EventId.LINK_DOWN, Severity.HIGH, f"link to board {peer.board} down: {why}",
                    board=peer.board, endpoint=peer.endpoint, silent_ms=silent, reason=why)
        self._sync_exports()
        self._failover_from(peer)

    async def _heartbeat_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            self._send_hellos()
            now = loop.time()
            for peer in self.peers.values():
                if peer.up and now - peer.last_hello > self.cfg.dead_after_s:
                    self._peer_down(peer, f"no hello for {now - peer.last_hello:.1f} s "
                                          f"(limit {self.cfg.dead_after_s:g} s)")
            self._retry()
            await asyncio.sleep(self.cfg.heartbeat_s)

    # ---- inbound ------------------------------------------------------------------------------
    def _on_server(self, batch: list[list[zmq.Frame]]) -> None:
        """Messages from peers' DEALERs and from authorised service clients: [routing id, tag, body...]."""
        for frames in batch:
            if len(frames) < 3:
                self.rejects.reject(FrameError("malformed", f"{len(frames)} frames on the link, expected 3"))
                continue
            parts = [f.bytes for f in frames]
            who = self._who(parts[0], frames[1])
            rid, tag, body = parts[0], parts[1], parts[2]
            try:
                if who.startswith("kernel:"):
                    self._from_kernel(who[7:], rid, tag, parts[2:])
                elif who.startswith("service:") and tag == protocol.COMMAND:
                    self._accept_command(rid, who[8:], body, client=True)
                else:
                    self.rejects.reject(FrameError("unexpected", f"tag {tag!r} from {who or 'an unknown peer'}"))
            except (FrameError, LinkProtocolError) as err:
                self.rejects.reject(err if isinstance(err, FrameError) else FrameError("link_protocol", str(err)))

    def _who(self, rid: bytes, frame: zmq.Frame) -> str:
        """The authenticated identity of a link connection (ZAP's User-Id), or the claimed one without CURVE."""
        if self.gate is None:  # a lab bench without CURVE: take the peer's word for who it is
            claimed = rid.decode(errors="replace")
            return f"kernel:{claimed[2:]}" if claimed.startswith("k/") else ""
        try:
            return str(frame.get("User-Id"))
        except zmq.ZMQError:
            return ""

    def _from_kernel(self, board: str, rid: bytes, tag: bytes, frames: list[bytes]) -> None:
        peer = self.peers.get(board)
        if peer is None:
            self.rejects.reject(FrameError("unknown_board", f"{board} is not a peer in [link.peers]"))
            return
        peer.stats["received"] += 1
        body = frames[0]
        if tag == protocol.HELLO:
            hello = protocol.decode_hello(body)
            if hello.board != board:
                self.stats["spoofed"] += 1
                self.rejects.reject(FrameError("spoofed", f"kernel {board} sent a hello as {hello.board}"))
                return
            self._on_hello(peer, hello)
        elif peer.hello is None:
            # Never heard: wait for its hello before trusting what it says it runs.
            self.rejects.reject(FrameError("peer_unknown", f"{tag!r} from board {board} before its first hello"))
        elif tag == protocol.COMMAND and len(frames) == 2:
            # Accepted even if its hellos have not got through yet after a cut: the key proves who sent it.
            self._accept_command(rid, frames[0].decode(errors="replace"), frames[1], client=False, board=board)
        elif not peer.up:
            self.rejects.reject(FrameError("peer_down", f"{tag!r} from board {board} while its hellos are missing"))
        elif tag == protocol.TELEMETRY:
            self._import(peer, body)
        elif tag == protocol.REPLICA:
            self._keep_replica(peer, protocol.decode_replica(body))
        else:
            self.rejects.reject(FrameError("unexpected", f"tag {tag!r} from board {board}"))

    def _on_dealer(self, board: str, batch: list[list[bytes]]) -> None:
        """Results of commands this kernel forwarded to ``board``."""
        for parts in batch:
            if len(parts) != 2 or parts[0] != protocol.RESULT:
                self.rejects.reject(FrameError("unexpected", f"{len(parts)} frames from board {board}'s router"))
                continue
            try:
                env = wire.decode(parts[1])
            except FrameError as err:
                self.rejects.reject(err)
                continue
            self.stats["results_in"] += 1
            out = self.outgoing.pop(env.corr, None)
            if out is not None:
                self.k.router.finish_remote(out.cmd, parts[1])

    # ---- commands -----------------------------------------------------------------------------
    def locate(self, service: str) -> str | None:
        """The board that runs ``service`` now, by its peers' hellos (None: no peer does)."""
        if service.startswith("kernel@"):
            board = service[7:]
            return board if board in self.peers else None
        owners = sorted(b for b, p in self.peers.items() if p.hosts(service))
        return owners[0] if owners else None

    def knows(self, service: str) -> bool:
        """Whether some peer's last hello named ``service`` (even a peer that is unreachable right now)."""
        if service.startswith("kernel@"):
            return service[7:] in self.peers
        return any(p.hello is not None and service in p.hello.services for p in self.peers.values())

    def known_services(self) -> list[str]:
        """Every service some peer's last hello named."""
        return sorted({s for p in self.peers.values() if p.hello for s in p.hello.services})

    def forward(self, cmd: PendingCommand) -> None:
        """Send a command to the board that runs its destination (or hold it until one does)."""
        out = Outgoing(cmd)
        self.outgoing[cmd.cid] = out
        self.stats["commands_out"] += 1
        self._send_command(out, asyncio.get_running_loop().time())

    def _send_command(self, out: Outgoing, now: float) -> None:
        cmd = out.cmd
        board = self.locate(cmd.destination)
        if board is None:
            return  # no board runs it right now: held until one does, or its deadline
        remaining = cmd.deadline - now
        if remaining <= 0:
            return
        if out.sends == 0 and cmd.frame is not None and now - cmd.received_at < 0.005:
            frame = cmd.frame
        else:
            frame = wire.encode(wire.make(Kind.COMMAND, cmd.destination, cmd.source,
                                          {"name": cmd.name, "args": cmd.args,
                                           "timeout_ms": max(1, int(remaining * 1000))}, corr=cmd.cid))
        if self._send(board, [protocol.COMMAND, cmd.caller.encode(), frame]):
            out.board = board
            out.last_sent = now
            out.sends += 1
            if out.sends > 1:
                self.stats["resends"] += 1

    def _retry(self, force: bool = False) -> None:
        """Send again what is unanswered; fail what went to a board that restarted or gave the service up."""
        now = asyncio.get_running_loop().time()
        for cid, out in list(self.outgoing.items()):
            cmd = out.cmd
            if cid not in self.k.router.pending:
                del self.outgoing[cid]  # answered by its deadline meanwhile
                continue
            rec = self.k.records.get(cmd.destination)
            if rec is not None and rec.state not in (State.REMOTE, State.DISABLED):
                del self.outgoing[cid]  # it runs here now (failed over to us)
                if out.sends:
                    self._at_most_once(out, f"{cmd.destination} moved to this board")
                else:
                    self.k.router.route_local(rec, cmd)
                continue
            if out.sends and self.locate(cmd.destination) not in (None, out.board):
                del self.outgoing[cid]
                self._at_most_once(out, f"{cmd.destination} moved from board {out.board}")
                continue
            if out.sends == 0 or force or now - out.last_sent >= self.cfg.retry_s:
                peer = self.peers.get(out.board) if out.board else None
                if out.sends == 0 or (peer is not None and peer.up):
                    self._send_command(out, now)

    def _at_most_once(self, out: Outgoing, why: str) -> None:
        self.stats["failed_over_commands"] += 1
        self.k.router.complete(out.cmd, error_payload(ServiceFailed(
            f"{why} while {out.cmd.destination}.{out.cmd.name} was there; it ran at most once",
            board=out.board, started=True)))  # that board may have started it: remembered, never rerun

    def _fail_outgoing(self, board: str, why: str) -> None:
        for cid, out in list(self.outgoing.items()):
            if out.board == board and out.sends:
                del self.outgoing[cid]
                if cid in self.k.router.pending:
                    self._at_most_once(out, why)

    def _accept_command(self, rid: bytes, caller: str, frame: bytes, *, client: bool, board: str = "") -> None:
        env = wire.decode(frame)
        if env.kind != Kind.COMMAND:
            raise FrameError("unexpected_kind", f"kind {env.kind} sent as a link command")
        self.stats["commands_in"] += 1
        if not client and caller:
            peer = self.peers[board]
            if not (peer.hello is not None and caller in peer.hello.services):
                self.stats["spoofed"] += 1
                self.k.emit(EventId.ACCESS_DENIED, Severity.HIGH,
                            f"board {board} sent a command as {caller}, a service it does not run",
                            caller=caller, board=board, destination=env.topic)
                caller = f"{caller}@{board}?"  # a name no ACL grants: refused below unless the ACL allows all
        self.k.router.accept_remote(LinkRequester(rid), env, frame, caller)

    def send_result(self, requester: LinkRequester, frame: bytes) -> bool:
        """Answer a command that came in over the link, on the connection it came in on."""
        try:
            self.server.send_multipart_nowait([bytes(requester), protocol.RESULT, frame])
        except zmq.ZMQError as exc:
            log.warning("link.result_undeliverable", error=str(exc),
                        note="kept in the result cache: the peer's resend gets it")
            return False
        self.stats["results_out"] += 1
        return True

    # ---- telemetry ----------------------------------------------------------------------------
    def _sync_exports(self) -> None:
        wanted = {p for peer in self.peers.values() if peer.up and peer.hello for p in peer.hello.interest}
        for prefix in wanted - self._exported:
            for sub in (self.export_sub, self.export_vouched):
                sub.setsockopt(zmq.SUBSCRIBE, prefix.encode())
        for prefix in self._exported - wanted:
            for sub in (self.export_sub, self.export_vouched):
                sub.setsockopt(zmq.UNSUBSCRIBE, prefix.encode())
        self._exported = wanted

    def _on_export(self, frames: list[bytes], *, vouched: bool) -> None:
        """Local telemetry a peer wants: sent on if a service here published it and may publish it.

        Events and products go only from the kernel's endpoint (``vouched``), where the kernel put them after
        checking their sender; their copies through the shared proxy are not exported (they may be forged).
        """
        acl = self.k.target.acl
        for frame in frames:
            try:
                topic, env = wire.decode_topic_frame(frame)
            except FrameError:
                continue  # the kernel's own subscribers count malformed frames; not ours to count twice
            if topic.startswith(VOUCHED_PREFIXES) != vouched:
                continue
            rec = self.k.records.get(env.source)
            if rec is None or rec.state in (State.REMOTE, State.DISABLED):
                continue  # imported from a peer, or the kernel's own: each board keeps its kernel telemetry
            if not acl.allows_publish(env.source, topic):
                self._publish_denied(env.source, topic, self.board)
                continue
            for board, peer in self.peers.items():
                if peer.wants(topic):
                    if self._send(board, [protocol.TELEMETRY, frame]):
                        self.stats["telemetry_out"] += 1
                    else:
                        self.stats["telemetry_dropped"] += 1

    def _import(self, peer: PeerView, frame: bytes) -> None:
        topic, env = wire.decode_topic_frame(frame)
        if not peer.hosts(env.source):
            self.stats["spoofed"] += 1
            self.rejects.reject(FrameError("spoofed", f"board {peer.board} sent {topic} as {env.source}, "
                                           "a service it does not run"))
            return
        if not self.k.target.acl.allows_publish(env.source, topic):
            self._publish_denied(env.source, topic, peer.board)
            return
        self.import_pub.send(frame)
        if topic.startswith(VOUCHED_PREFIXES):  # a peer kernel vouched for it; this kernel does so here
            self.k.publisher.mirror_frame(frame)
        self.stats["telemetry_in"] += 1

    def _publish_denied(self, source: str, topic: str, board: str) -> None:
        self.stats["publish_denied"] += 1
        self.k.publish_denied(source, topic, board, "not carried across the link")

    # ---- replication --------------------------------------------------------------------------
    async def _replication_loop(self) -> None:
        while True:
            await asyncio.sleep(self.cfg.replicate_s)
            try:
                await self.replicate()
            except Exception as exc:  # replication must never stop the kernel
                log.warning("link.replication_failed", error=f"{type(exc).__name__}: {exc}")

    async def replicate(self) -> None:
        """Send each up peer a snapshot of every failover service's data directory that changed since."""
        up = [b for b, p in self.peers.items() if p.up]
        if not up:
            return
        for rec in list(self.k.records.values()):
            if not rec.cfg.failover or rec.state in (State.REMOTE, State.DISABLED):
                continue
            sig = replication.signature(self.k.state_dir, rec.name)
            targets = [b for b in up if sig is not None and self._replicated.get((b, rec.name)) != sig]
            if not targets or sig is None:
                continue
            if replication.size(sig) > self.cfg.replicate_max_mb * 1e6:
                if rec.name not in self._too_big:
                    self._too_big.add(rec.name)
                    self.k.emit(EventId.REPLICATION_FAILED, Severity.MEDIUM,
                                f"{rec.name}'s data directory is over {self.cfg.replicate_max_mb:g} MB; "
                                "not replicated", service=rec.name, bytes=replication.size(sig))
                continue
            try:
                data = await asyncio.to_thread(replication.snapshot, self.k.state_dir, rec.name)
            except (sqlite3.Error, OSError) as exc:
                self.k.emit(EventId.REPLICATION_FAILED, Severity.LOW, f"cannot snapshot {rec.name}'s data: {exc}",
                            service=rec.name, error=str(exc))
                continue
            body = protocol.encode(protocol.Replica(v=protocol.VERSION, board=self.board, service=rec.name,
                                                    epoch=self.epoch, version=time.time_ns(), data=data))
            for b in targets:
                if self._send(b, [protocol.REPLICA, body]):
                    self._replicated[(b, rec.name)] = sig
                    self.stats["replicas_out"] += 1

    def _keep_replica(self, peer: PeerView, r: protocol.Replica) -> None:
        if r.board != peer.board or not peer.hosts(r.service):
            self.stats["spoofed"] += 1
            self.rejects.reject(FrameError("spoofed", f"board {peer.board} sent a replica of {r.service}, "
                                           "a service it does not run"))
            return
        self._tasks.append(asyncio.get_running_loop().create_task(self._write_replica(r)))
        self._tasks = [t for t in self._tasks if not t.done()]

    async def _write_replica(self, r: protocol.Replica) -> None:
        """Write a replica on a thread (fsyncs must not stall the loop), one at a time per service."""
        lock = self._replica_locks.setdefault(r.service, asyncio.Lock())
        async with lock:
            try:
                await asyncio.to_thread(replication.keep, self.k.state_dir, r.service, r.data)
            except (ValueError, OSError) as exc:
                self.rejects.reject(FrameError("bad_replica", str(exc)))
                return
        self.stats["replicas_in"] += 1

    # ---- failover -----------------------------------------------------------------------------
    def _failover_from(self, peer: PeerView) -> None:
        """A peer went down: start here the failover services this board should take from it."""
        hello = peer.hello
        if hello is None or self._stopping:
            return
        survivors = {self.board} | {b for b, p in self.peers.items() if p.up}
        silent_ms = round((asyncio.get_running_loop().time() - peer.last_hello) * 1000)
        for name, hosted in sorted(hello.services.items()):
            if not hosted.failover or taker(hosted.home, survivors) != self.board:
                continue
            self._adopt(name, hosted, peer.board, silent_ms)

    def _adopt(self, name: str, hosted: Hosted, from_board: str, silent_ms: int) -> None:
        rec = self.k.records.get(name)
        if rec is not None and rec.state not in (State.REMOTE, State.DISABLED):
            return  # already runs here
        if rec is None:
            if hosted.config is None:
                return
            try:
                cfg = ServiceConfig.from_wire(name, hosted.config)
            except ValueError as exc:
                self.k.emit(EventId.REPLICATION_FAILED, Severity.HIGH, f"cannot take over {name}: {exc}",
                            service=name, board=from_board)
                return
            settings = self.k.target.restart
            rec = ServiceRecord(cfg=cfg, tracker=RestartTracker(settings))
            rec.guest_of = hosted.home
            self.k.records[name] = rec
        elif rec.state == State.DISABLED:
            return  # disabled here on purpose
        else:
            rec.guest_of = "" if hosted.home == self.board else hosted.home
        rec.state, rec.reason = State.RESTARTING, f"taking over from board {from_board}"  # commands queue
        chosen = self.k.monitor.placement_for(rec) or self.k.board.core_ids()
        self.k.set_cores(rec, chosen)
        self.stats["failovers"] += 1
        self._tasks.append(asyncio.get_running_loop().create_task(
            self._take_over(rec, hosted, from_board, silent_ms)))

    async def _take_over(self, rec: ServiceRecord, hosted: Hosted, from_board: str, silent_ms: int) -> None:
        """Restore the last replica (after any replica still being written) and start the service here."""
        async with self._replica_locks.setdefault(rec.name, asyncio.Lock()):
            try:
                restored = await asyncio.to_thread(replication.restore, self.k.state_dir, rec.name)
            except OSError as exc:
                restored = False
                self.k.emit(EventId.REPLICATION_FAILED, Severity.HIGH,
                            f"cannot restore {rec.name}'s replica ({exc}); starting it with the data this board has",
                            service=rec.name, board=from_board)
        self.k.emit(EventId.SERVICE_FAILOVER, Severity.HIGH,
                    f"{rec.name} starts on board {self.board}: board {from_board} stopped answering "
                    f"{silent_ms} ms ago" + (" (data from its last replica)" if restored else " (no replica)"),
                    service=rec.name, from_board=from_board, board=self.board, silent_ms=silent_ms,
                    replica=restored, home=hosted.home)
        await self.k.supervisor.spawn(rec)

    def _resolve_duplicates(self, peer: PeerView, hello: Hello) -> None:
        """Both boards run a service (a healed partition): the loser stops its copy and routes to the keeper."""
        for name, hosted in hello.services.items():
            rec = self.k.records.get(name)
            if rec is None or rec.state not in ACTIVE or hosted.state not in {s.value for s in ACTIVE}:
                continue
            agreed_home = min(rec.guest_of or self.board, hosted.home)  # both sides compute the same
            if keeper(agreed_home, self.board, peer.board) == self.board:
                continue
            self.stats["yielded"] += 1
            self.k.emit(EventId.SERVICE_YIELDED, Severity.MEDIUM,
                        f"{name} runs on board {peer.board} too; stopping it here (board {peer.board} keeps it)",
                        service=name, board=peer.board)
            self._tasks.append(asyncio.get_running_loop().create_task(self._yield(rec, peer.board)))

    async def _yield(self, rec: ServiceRecord, to_board: str) -> None:
        await self.k.supervisor.stop_service(rec, self.k.target.runtime.shutdown_grace_s,
                                             f"runs on board {to_board}")
        rec.state, rec.reason = State.REMOTE, f"runs on board {to_board}"

    # ---- refusals and status ------------------------------------------------------------------
    def _refused_from_thread(self, reason: str, detail: str, count: int) -> None:
        self._loop.call_soon_threadsafe(lambda: self.k.emit(
            EventId.LINK_REFUSED, Severity.HIGH, f"link connection refused ({reason}): {detail}",
            reason=reason, detail=detail, count=count))

    def status(self) -> dict[str, Any]:
        """The link section of ``flightos status``."""
        now = asyncio.get_running_loop().time()
        return {
            "board": self.board, "listen": self.cfg.listen, "curve": self.cfg.curve, "epoch": self.epoch,
            "peers": {b: {"endpoint": p.endpoint, "up": p.up, "ever_up": p.ever_up,
                          "last_hello_ms": round((now - p.last_hello) * 1000) if p.last_hello else None,
                          "services": sorted(p.hello.services) if p.hello else [],
                          "interest": list(p.hello.interest) if p.hello else [], **p.stats}
                      for b, p in self.peers.items()},
            "outgoing": len(self.outgoing),
            "stats": dict(self.stats),
            "security": self.gate.stats() if self.gate is not None else {"refused": {}, "admitted": {}},
            "rejected": dict(self.rejects.counts),
        }
