"""Command requests and results over a DEALER connected to the kernel's ROUTER."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import structlog
import zmq

from flightos.aio import TaskSet
from flightos.bus import envelope as wire
from flightos.bus.aiozmq import LINGER_MS, AsyncSocket
from flightos.bus.direct import DirectLink, direct_path, says_use_kernel
from flightos.bus.envelope import Envelope, FrameError, Kind
from flightos.bus.errors import CommandError, DeadlineExceeded, FrameTooLarge
from flightos.bus.pubsub import RejectCounter

log = structlog.get_logger("flightos.bus")

DEFAULT_TIMEOUT_S = 5.0
LOCAL_GRACE_S = 1.0
"""Extra time the caller waits past the deadline for the kernel's own deadline error."""
DEFAULT_MAX_FRAME_BYTES = 1 << 20
"""Largest command or result frame (``runtime.max_frame_bytes``); larger ones get ``frame_too_large``."""
MIN_MAX_FRAME_BYTES = 64 << 10
"""The smallest limit a target may set: commands up to this size need no knowledge of the limit."""
FRAME_SLACK_BYTES = 64 << 10
"""The kernel's sockets drop a peer sending a frame larger than the limit plus this (ZMQ_MAXMSGSIZE):
frames in between are answered ``frame_too_large``, larger ones are never buffered."""


def frame_cap(max_frame_bytes: int) -> int:
    """ZMQ_MAXMSGSIZE for the kernel's sockets: past it a peer is disconnected, not buffered."""
    return max_frame_bytes + FRAME_SLACK_BYTES


def check_frame(size: int, limit: int, what: str) -> None:
    """Raise FrameTooLarge if ``size`` bytes is over ``limit``."""
    if size > limit:
        raise FrameTooLarge(
            f"{what} is {size:,} bytes, over this runtime's limit of {limit:,} bytes "
            "(runtime.max_frame_bytes); send large data as files or in parts",
            size=size,
            limit=limit,
        )


def command_payload(name: str, args: dict[str, Any], timeout_s: float) -> dict[str, Any]:
    """The payload of a COMMAND envelope."""
    return {"name": name, "args": args, "timeout_ms": int(timeout_s * 1000)}


def ok_payload(value: Any) -> dict[str, Any]:
    """The payload of a successful RESULT."""
    return {"ok": True, "value": value}


def error_payload(err: CommandError) -> dict[str, Any]:
    """The payload of a failed RESULT."""
    return {"ok": False, "error": err.to_wire()}


def result_value(payload: Any) -> Any:
    """The value of a RESULT payload, or raise its typed CommandError."""
    if isinstance(payload, dict) and payload.get("ok") is True:
        return payload.get("value")
    if isinstance(payload, dict) and "error" in payload:
        raise CommandError.from_wire(payload["error"])
    raise CommandError.from_wire({"code": "bad_request", "message": f"malformed result {payload!r}"})


MAX_DIRECT_LINKS = 64
"""Services a client keeps a direct connection to; past this, commands to others use the kernel."""
MAX_DIRECT_INFLIGHT = 1024
"""Direct commands in flight at once; past this they use the kernel (bounds what a dropped connection re-sends)."""

CommandSink = Callable[[list[Envelope]], None]
"""Takes the commands of one drained batch, in order."""


class CommandChannel:
    """A DEALER to the kernel ROUTER: sends commands, matches results, optionally serves commands."""

    def __init__(
        self,
        ctx: zmq.Context[zmq.Socket[bytes]],
        endpoint: str,
        identity: str,
        source: str,
        on_commands: CommandSink | None = None,
        max_frame_bytes: int | None = None,
        direct_dir: Path | None = None,
    ) -> None:
        self.identity = identity
        self.source = source
        self.sock: zmq.Socket[bytes] = ctx.socket(zmq.DEALER)
        self.sock.setsockopt(zmq.IDENTITY, identity.encode())
        self.sock.setsockopt(zmq.LINGER, LINGER_MS)
        self.sock.setsockopt(zmq.SNDHWM, 10_000)
        self.sock.setsockopt(zmq.RCVHWM, 10_000)
        self.sock.connect(endpoint)
        self._asock: AsyncSocket | None = None
        self._pending: dict[str, asyncio.Future[Any]] = {}
        self._on_commands = on_commands
        self.max_frame_bytes = max_frame_bytes
        """The runtime's frame limit; None until learned from the kernel (asked only for a large command)."""
        self.rejects = RejectCounter(f"commands:{identity}")
        self.late_results = 0
        self.direct_dir = direct_dir
        """The runtime directory of the services this client reaches directly (``flightos.bus.direct``); None: never."""
        self._links: dict[str, DirectLink] = {}
        self._direct: dict[str, tuple[DirectLink, str, str, dict[str, Any], float]] = {}
        """Commands in flight on a direct link: (link, destination, name, args, deadline on the loop clock)."""
        self.direct_stats = {"sent": 0, "via_kernel": 0, "resent": 0}
        self._resends = TaskSet("direct-resend")
        self._give_up_at: dict[str, tuple[float, asyncio.Future[Any]]] = {}
        """When (loop clock) each waiting call stops waiting for its answer, and its future."""
        self._sweep: asyncio.TimerHandle | None = None

    def start(self) -> None:
        """Start receiving on the running event loop (results and commands are handled as they arrive)."""
        if self._asock is None:
            self._asock = AsyncSocket(self.sock)
            self._asock.on_messages(self._on_batch)

    def _on_batch(self, frames: list[bytes]) -> None:
        commands: list[Envelope] = []
        for frame in frames:
            try:
                env = wire.decode(frame)
            except FrameError as err:
                self.rejects.reject(err)
                continue
            if env.kind == Kind.RESULT:
                if self._direct:
                    sent = self._direct.pop(env.corr, None)
                    if sent is not None and says_use_kernel(env.payload):  # the service wants it via the kernel
                        sent[0].lost = True
                        self._resend([(env.corr, sent)])
                        continue
                fut = self._pending.pop(env.corr, None)
                if fut is None or fut.done():
                    self.late_results += 1
                    continue
                fut.set_result(env.payload)
            elif env.kind == Kind.COMMAND and self._on_commands is not None:
                commands.append(env)
            else:
                self.rejects.reject(FrameError("unexpected_kind", f"kind {env.kind} on command channel"))
        if commands:
            assert self._on_commands is not None
            self._on_commands(commands)

    async def send_envelope(self, env: Envelope) -> None:
        """Send a RESULT or COMMAND envelope (waits at the HWM, never drops)."""
        await self.send_frame(wire.encode(env))

    async def send_frame(self, frame: bytes) -> None:
        """Send an encoded envelope (waits at the HWM, never drops)."""
        assert self._asock is not None, "start() first"
        await self._asock.send(frame)

    @property
    def closed(self) -> bool:
        """Whether close() was called."""
        return self._asock is not None and self._asock.closed

    def send_nowait(self, frame: bytes) -> bool:
        """Send an encoded envelope now; False at the high-water mark or once closed (``send_frame`` waits)."""
        if self._asock is None or self._asock.closed:
            return False
        try:
            self._asock.send_nowait(frame)
        except zmq.ZMQError:
            return False
        return True

    async def frame_limit(self) -> int:
        """The runtime's frame limit: known at spawn for a service, asked of the kernel once by a client."""
        if self.max_frame_bytes is None:
            try:
                pong = await self.call("kernel", "ping", timeout=DEFAULT_TIMEOUT_S)
            except CommandError:
                pong = None
            limit = pong.get("max_frame_bytes") if isinstance(pong, dict) else None
            self.max_frame_bytes = limit if isinstance(limit, int) and limit > 0 else DEFAULT_MAX_FRAME_BYTES
        return self.max_frame_bytes

    async def call(
        self,
        destination: str,
        name: str,
        args: dict[str, Any] | None = None,
        *,
        timeout: float = DEFAULT_TIMEOUT_S,
        command_id: str | None = None,
    ) -> Any:
        """Run ``destination.name(**args)`` and return its value or raise its typed CommandError.

        Reusing ``command_id`` makes a retry: the kernel never executes one id twice. A command over the
        runtime's frame limit raises FrameTooLarge here, without being sent.
        """
        self.start()
        cid = command_id or wire.new_id()
        loop = asyncio.get_running_loop()
        shared = self._pending.get(cid)
        frame = b""
        if shared is None:
            frame = wire.encode(
                wire.make(Kind.COMMAND, destination, self.source, command_payload(name, args or {}, timeout), corr=cid)
            )
            if len(frame) > MIN_MAX_FRAME_BYTES:  # only a large command needs the limit (learned once)
                check_frame(len(frame), await self.frame_limit(), f"command {destination}.{name}")
                shared = self._pending.get(cid)  # another caller of this id may have sent it meanwhile
        if shared is not None:
            fut = shared
        else:
            fut = self._pending[cid] = loop.create_future()
            if (
                command_id is not None
                or self.direct_dir is None
                or not self._send_direct(destination, cid, frame, name, args or {}, loop.time() + timeout)
            ):
                await self.send_frame(frame)
        self._watch(cid, fut, loop.time() + timeout + LOCAL_GRACE_S, loop)
        try:
            # Shield only a result shared by concurrent callers of one id (a cancelled caller must not
            # cancel the others); the common case awaits directly, which saves a loop iteration.
            payload = await (asyncio.shield(fut) if shared is not None else fut)
        except asyncio.TimeoutError:
            raise DeadlineExceeded(
                f"no answer from the kernel within {timeout + LOCAL_GRACE_S:.1f} s for {destination}.{name}",
                command_id=cid,
            ) from None
        finally:
            if fut.done():  # answered (or given up) for every caller of this id; else its give-up time stays
                self._give_up_at.pop(cid, None)
        return result_value(payload)

    def _watch(self, cid: str, fut: asyncio.Future[Any], at: float, loop: asyncio.AbstractEventLoop) -> None:
        """Give up on ``cid`` at loop time ``at`` unless answered: one timer for every call, at the earliest.

        A timer per call cost its arming and cancelling on every round trip; calls mostly end long before.
        """
        known = self._give_up_at.get(cid)
        if known is None or at < known[0]:
            self._give_up_at[cid] = (at, fut)
        if self._sweep is None or at < self._sweep.when():
            if self._sweep is not None:
                self._sweep.cancel()
            self._sweep = loop.call_at(at, self._sweep_due)

    def _sweep_due(self) -> None:
        """Give up on every call past its time; wake again at the next one still waiting."""
        self._sweep = None
        loop = asyncio.get_running_loop()
        now = loop.time()
        due = [(cid, fut) for cid, (at, fut) in self._give_up_at.items() if at <= now]
        for cid, fut in due:
            del self._give_up_at[cid]
            self._give_up(cid, fut)
        if self._give_up_at:
            self._sweep = loop.call_at(min(at for at, _ in self._give_up_at.values()), self._sweep_due)

    def _send_direct(
        self, destination: str, cid: str, frame: bytes, name: str, args: dict[str, Any], deadline: float
    ) -> bool:
        """Send a command with a fresh id straight to a local service; False: send it through the kernel."""
        link = self._links.get(destination)
        if link is None:
            if destination == "kernel" or "@" in destination or len(self._links) >= MAX_DIRECT_LINKS:
                return False
            assert self.direct_dir is not None
            try:
                link = DirectLink(
                    self.sock.context,
                    direct_path(self.direct_dir, destination),
                    self.identity.encode(),
                    self._on_batch,
                    self._lost,
                )
            except zmq.ZMQError:  # e.g. a path too long for ipc
                self.direct_dir = None
                return False
            self._links[destination] = link
        if len(self._direct) >= MAX_DIRECT_INFLIGHT or not link.try_send(frame):
            self.direct_stats["via_kernel"] += 1
            return False
        self._direct[cid] = (link, destination, name, args, deadline)
        self.direct_stats["sent"] += 1
        return True

    def _lost(self, link: DirectLink) -> None:
        """A direct connection dropped: its commands still in flight go through the kernel, same ids."""
        link.asock.pump()  # results that arrived before the drop are answers, not commands to re-send
        for dest, known in list(self._links.items()):
            if known is link:
                del self._links[dest]
        asyncio.get_running_loop().call_soon(link.close)
        self._resend([(cid, sent) for cid, sent in self._direct.items() if sent[0] is link])

    def _resend(self, items: list[tuple[str, tuple[DirectLink, str, str, dict[str, Any], float]]]) -> None:
        now = asyncio.get_running_loop().time()
        for cid, (_, destination, name, args, deadline) in items:
            self._direct.pop(cid, None)
            if cid not in self._pending:
                continue
            self.direct_stats["resent"] += 1
            payload = command_payload(name, args, max(deadline - now, 0.001))
            payload["resent"] = True  # the kernel checks it against the started ledger of a dead incarnation
            env = wire.make(Kind.COMMAND, destination, self.source, payload, corr=cid)
            self._resends.spawn(self.send_envelope(env))

    def _give_up(self, cid: str, fut: asyncio.Future[Any]) -> None:
        if self._pending.get(cid) is fut:
            del self._pending[cid]
        self._direct.pop(cid, None)
        if not fut.done():
            fut.set_exception(asyncio.TimeoutError())
            fut.exception()  # its callers raise it; a caller that was cancelled meanwhile leaves none to log

    def close(self) -> None:
        """Stop receiving, fail pending calls, close the socket with bounded linger."""
        for fut in self._pending.values():
            if not fut.done():
                fut.cancel()
        self._pending.clear()
        self._direct.clear()
        self._give_up_at.clear()
        if self._sweep is not None:
            self._sweep.cancel()
            self._sweep = None
        for link in self._links.values():
            link.close()
        self._links.clear()
        self._resends.cancel_all()
        if self._asock is not None:
            self._asock.close()
        else:
            with contextlib.suppress(zmq.ZMQError):
                self.sock.close(linger=LINGER_MS)
