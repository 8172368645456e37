"""Command requests and results over a DEALER connected to the kernel's ROUTER."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

import structlog
import zmq

from flightos.bus import envelope as wire
from flightos.bus.aiozmq import LINGER_MS, AsyncSocket
from flightos.bus.envelope import Envelope, FrameError, Kind
from flightos.bus.errors import CommandError, DeadlineExceeded
from flightos.bus.pubsub import RejectCounter

log = structlog.get_logger("flightos.bus")

DEFAULT_TIMEOUT_S = 5.0
LOCAL_GRACE_S = 1.0
"""Extra time the caller waits past the deadline for the kernel's own deadline error."""


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


CommandSink = Callable[[Envelope], None]


class CommandChannel:
    """A DEALER to the kernel ROUTER: sends commands, matches results, optionally serves commands."""

    def __init__(
        self,
        ctx: zmq.Context[zmq.Socket[bytes]],
        endpoint: str,
        identity: str,
        source: str,
        on_command: CommandSink | None = None,
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
        self._on_command = on_command
        self.rejects = RejectCounter(f"commands:{identity}")
        self.late_results = 0

    def start(self) -> None:
        """Start receiving on the running event loop (results and commands are handled as they arrive)."""
        if self._asock is None:
            self._asock = AsyncSocket(self.sock)
            self._asock.on_messages(self._on_batch)

    def _on_batch(self, frames: list[bytes]) -> None:
        for frame in frames:
            self._dispatch(frame)

    def _dispatch(self, frame: bytes) -> None:
        try:
            env = wire.decode(frame)
        except FrameError as err:
            self.rejects.reject(err)
            return
        if env.kind == Kind.RESULT:
            fut = self._pending.pop(env.corr, None)
            if fut is None or fut.done():
                self.late_results += 1
                return
            fut.set_result(env.payload)
        elif env.kind == Kind.COMMAND and self._on_command is not None:
            self._on_command(env)
        else:
            self.rejects.reject(FrameError("unexpected_kind", f"kind {env.kind} on command channel"))

    async def send_envelope(self, env: Envelope) -> None:
        """Send a RESULT or COMMAND envelope (waits at the HWM, never drops)."""
        assert self._asock is not None, "start() first"
        await self._asock.send(wire.encode(env))

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

        Reusing ``command_id`` makes a retry: the kernel never executes one id twice.
        """
        self.start()
        cid = command_id or wire.new_id()
        loop = asyncio.get_running_loop()
        shared = self._pending.get(cid)
        if shared is not None:
            fut = shared
        else:
            fut = self._pending[cid] = loop.create_future()
            env = wire.make(Kind.COMMAND, destination, self.source,
                            command_payload(name, args or {}, timeout), corr=cid)
            await self.send_envelope(env)
        timer = loop.call_later(timeout + LOCAL_GRACE_S, self._give_up, cid, fut)
        try:
            # Shield only a result shared by concurrent callers of one id (a cancelled caller must not
            # cancel the others); the common case awaits directly, which saves a loop iteration.
            payload = await (asyncio.shield(fut) if shared is not None else fut)
        except asyncio.TimeoutError:
            raise DeadlineExceeded(
                f"no answer from the kernel within {timeout + LOCAL_GRACE_S:.1f} s "
                f"for {destination}.{name}", command_id=cid) from None
        finally:
            timer.cancel()
        return result_value(payload)

    def _give_up(self, cid: str, fut: asyncio.Future[Any]) -> None:
        if self._pending.get(cid) is fut:
            del self._pending[cid]
        if not fut.done():
            fut.set_exception(asyncio.TimeoutError())

    def close(self) -> None:
        """Stop receiving, fail pending calls, close the socket with bounded linger."""
        for fut in self._pending.values():
            if not fut.done():
                fut.cancel()
        self._pending.clear()
        if self._asock is not None:
            self._asock.close()
        else:
            with contextlib.suppress(zmq.ZMQError):
                self.sock.close(linger=LINGER_MS)
