"""The link's sockets: the CURVE ROUTER peers and clients connect to, one DEALER per peer, and the bus taps.

Also the link's limits on them (high-water marks, heartbeats, reconnects) and the ZAP gatekeeper.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import structlog
import zmq

from flightos.bus.aiozmq import LINGER_MS, AsyncSocket
from flightos.config.schema import LinkConfig
from flightos.kernel.events import EventId
from flightos.link import keys
from flightos.link.state import LinkState
from flightos.link.zap import DOMAIN, Gatekeeper
from flightos.sdk.severity import Severity

log = structlog.get_logger("flightos.link")

HWM = 10_000


class LinkSetupError(Exception):
    """The link cannot start: a key is missing or unsafe, or the endpoint cannot be bound."""


def keys_dir_for(cfg: LinkConfig, state_dir: Path) -> Path:
    """Where the link's CURVE keys are: ``link.keys_dir``, else ``<state_dir>/keys/curve``."""
    return Path(cfg.keys_dir).expanduser() if cfg.keys_dir else state_dir / "keys" / "curve"


def check_keys(cfg: LinkConfig, state_dir: Path) -> None:
    """Load this board's secret key and each peer's public key, or raise LinkSetupError naming the problem.

    Called before the kernel takes its runtime directory and pid file: a missing key is a configuration
    error found at once, not a kernel that started and died.
    """
    if not cfg.curve:
        return
    where = keys_dir_for(cfg, state_dir)
    try:
        keys.load_secret(where, cfg.board)
        for b, p in cfg.peers.items():
            if not p.public_key:
                keys.load_public(where, b)
    except keys.KeyFileError as exc:
        raise LinkSetupError(f"[link] keys: {exc}") from None


class LinkSockets:
    """Opens and closes every socket of the link; the DEALERs go into the shared state's ``dealers``."""

    def __init__(self, state: LinkState) -> None:
        self.s = state
        self.host = state.host
        self.cfg = state.cfg
        self.keys_dir = keys_dir_for(self.cfg, state.host.state_dir)
        self.gate: Gatekeeper | None = None
        self._loop = asyncio.get_running_loop()
        self._opened: list[zmq.Socket[bytes]] = []

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
        ctx = self.host.ctx
        board = self.s.board
        server = ctx.socket(zmq.ROUTER)
        self._opened.append(server)
        server.setsockopt(zmq.ROUTER_MANDATORY, 1)
        self._tune(server)
        own: keys.KeyPair | None = None
        peer_keys: dict[str, bytes] = {}
        if self.cfg.curve:
            own = keys.load_secret(self.keys_dir, board)
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
            log.warning(
                "link.plaintext",
                board=board,
                note="[link] curve = false: links are neither encrypted nor authenticated (lab bench only)",
            )
        server.bind(self.cfg.listen or "")
        self.server = AsyncSocket(server)
        for b, p in self.cfg.peers.items():
            d = ctx.socket(zmq.DEALER)
            self._opened.append(d)
            d.setsockopt(zmq.ROUTING_ID, f"k/{board}".encode())
            d.setsockopt(zmq.IMMEDIATE, 1)  # nothing queues for a peer that is not connected: we resend ourselves
            self._tune(d)
            if own is not None:
                d.setsockopt(zmq.CURVE_PUBLICKEY, own.public)
                d.setsockopt(zmq.CURVE_SECRETKEY, own.secret)
                d.setsockopt(zmq.CURVE_SERVERKEY, peer_keys[b])
            d.connect(p.endpoint)
            self.s.dealers[b] = AsyncSocket(d)
        self.export_sub = ctx.socket(zmq.SUB)
        self.export_sub.setsockopt(zmq.RCVHWM, 100_000)
        self.export_sub.setsockopt(zmq.LINGER, 0)
        self.export_sub.connect(self.host.endpoints.subscribe)
        self.import_pub = ctx.socket(zmq.PUB)
        self.import_pub.setsockopt(zmq.SNDHWM, 100_000)
        self.import_pub.setsockopt(zmq.LINGER, LINGER_MS)
        self.import_pub.connect(self.host.endpoints.publish)
        self.export = AsyncSocket(self.export_sub)
        # Events and products are exported from the kernel's own endpoint, where only vouched frames go.
        self.export_vouched = ctx.socket(zmq.SUB)
        self.export_vouched.setsockopt(zmq.RCVHWM, 100_000)
        self.export_vouched.setsockopt(zmq.LINGER, 0)
        self.export_vouched.connect(self.host.endpoints.kernel_events)
        self.export_vouched_in = AsyncSocket(self.export_vouched)

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

    def close(self) -> None:
        """Close every socket (after the goodbyes are sent) and stop the gatekeeper."""
        for d in self.s.dealers.values():
            d.close()
        self.server.close()
        self.export.close(0)
        self.import_pub.close(linger=LINGER_MS)
        self.export_vouched_in.close(0)
        if self.gate is not None:
            self.gate.close()

    def _refused_from_thread(self, reason: str, detail: str, count: int) -> None:
        self._loop.call_soon_threadsafe(
            lambda: self.host.emit(
                EventId.LINK_REFUSED,
                Severity.HIGH,
                f"link connection refused ({reason}): {detail}",
                reason=reason,
                detail=detail,
                count=count,
            )
        )
