"""One hop for an operator's commands: each service's own ROUTER, ``<runtime_dir>/direct-<name>.sock``.

A client outside the runtime (``Client``, the CLI) sends a command with an id it generated straight
to the service: two socket hops instead of four through the kernel. Everything else goes through the
kernel: a caller's own id (a retry), service-to-service calls (the ACL), a service that is not there
(``ZMQ_IMMEDIATE``: the send fails, the kernel holds the command while the service restarts). When
the connection drops, the client re-sends every command still in flight on it through the kernel
with the same id; the kernel answers an id the dead incarnation had started (its started ledger)
``service_failed`` with ``started: true``, so no command runs twice. The service judges each caller
from the socket's peer credentials: a process of the runtime is told to use the kernel.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import zmq

from flightos.bus import envelope as wire
from flightos.bus.aiozmq import AsyncSocket
from flightos.bus.envelope import Envelope, FrameError, Kind
from flightos.bus.errors import AccessDenied, FrameTooLarge

PREFIX = "direct-"
DIRECT_TOPIC = "direct:"
"""Topic of a direct command's result (``direct:<timeout ms>``); the service sends the kernel a copy for its cache."""
MAX_DEPTH = 64
"""Ancestors walked to find the kernel above a caller."""
JUDGED_MAX = 1024
"""Callers remembered by a service; past this it judges afresh (a flood of connections cannot grow it)."""


def direct_path(runtime_dir: Path, name: str) -> Path:
    """The ipc socket file of a service's direct ROUTER."""
    return runtime_dir / f"{PREFIX}{name}.sock"


def _parent(pid: int) -> int | None:
    """The parent of a live process, or None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
        return int(stat[stat.rindex(b")") + 2 :].split(b" ", 2)[1])
    except (OSError, ValueError, IndexError):
        return None


def _in_service_group(pid: int) -> bool:
    """Whether the process sits in a service's cgroup (``svc-<name>.<incarnation>``)."""
    try:
        with open(f"/proc/{pid}/cgroup") as f:
            text = f.read()
    except OSError:
        return True  # cannot tell: the kernel judges it
    return any(part.startswith("svc-") for line in text.splitlines() for part in line.rsplit(":", 1)[-1].split("/"))


def in_runtime(
    pid: int,
    kernel_pid: int,
    parent: Callable[[int], int | None] = _parent,
    grouped: Callable[[int], bool] = _in_service_group,
) -> bool:
    """Whether a caller must go through the kernel: the kernel or below it, in a service's group, or unknown."""
    if pid <= 0 or kernel_pid <= 0:
        return True
    p = pid
    for _ in range(MAX_DEPTH):
        if p == kernel_pid:
            return True
        up = parent(p)
        if up is None:
            return True  # gone, or unreadable: cannot tell
        if up == 0:
            return grouped(pid)
        p = up
    return True


def _peer_pid(peer: str) -> int:
    """The pid in a ``Peer-Address`` (``host:uid:gid:pid`` on ipc), 0 when there is none."""
    tail = peer.rsplit(":", 1)[-1]
    return int(tail) if ":" in peer and tail.isdigit() else 0


def use_kernel_payload() -> dict[str, Any]:
    """The answer to a caller that must go through the kernel (the client re-sends it there)."""
    err = AccessDenied("this caller runs inside the runtime: send commands through the kernel", use_kernel=True)
    return {"ok": False, "error": err.to_wire()}


def says_use_kernel(payload: Any) -> bool:
    """Whether a direct answer is the service's "use the kernel" (then the command did not run)."""
    if not isinstance(payload, dict) or payload.get("ok") is not False:
        return False
    err = payload.get("error")
    details = err.get("details") if isinstance(err, dict) else None
    return isinstance(details, dict) and details.get("use_kernel") is True


Route = bytes
"""The routing id of a direct caller on the service's ROUTER."""
DirectSink = Callable[[list[tuple[Route, Envelope]]], None]


class DirectServer:
    """A service's direct ROUTER: judges each caller once, hands on its commands with their route."""

    def __init__(
        self,
        ctx: zmq.Context[zmq.Socket[bytes]],
        path: Path,
        kernel_pid: int,
        source: str,
        on_commands: DirectSink,
        on_reject: Callable[[FrameError], None],
        max_frame_bytes: int,
        max_msg: int,
    ) -> None:
        self.path = path
        self.kernel_pid = kernel_pid
        self.source = source
        self.on_commands = on_commands
        self.on_reject = on_reject
        with contextlib.suppress(OSError):
            path.unlink()  # an earlier incarnation's file
        self.sock: zmq.Socket[bytes] = ctx.socket(zmq.ROUTER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.setsockopt(zmq.SNDHWM, 10_000)
        self.sock.setsockopt(zmq.RCVHWM, 10_000)
        self.max_frame_bytes = max_frame_bytes
        self.sock.setsockopt(zmq.MAXMSGSIZE, max_msg)  # past it the peer is dropped, not buffered
        self.sock.bind(f"ipc://{path}")
        self._judged: dict[tuple[bytes, str], bool] = {}
        self.refused = 0
        self.asock = AsyncSocket(self.sock)
        self.asock.on_messages(self._on_batch, multipart=True, copy=False)

    def _on_batch(self, batch: list[list[Any]]) -> None:
        out: list[tuple[Route, Envelope]] = []
        for parts in batch:
            if len(parts) != 2:
                self.on_reject(FrameError("malformed", f"{len(parts)} frames on the direct socket, expected 2"))
                continue
            ident, frame = parts[0].bytes, parts[1]
            try:
                peer = str(frame.get("Peer-Address") or "")
            except (zmq.ZMQError, KeyError):
                peer = ""
            key = (ident, peer)
            allowed = self._judged.get(key)
            if allowed is None:
                if len(self._judged) >= JUDGED_MAX:
                    self._judged.clear()
                allowed = self._judged[key] = not in_runtime(_peer_pid(peer), self.kernel_pid)
            data = frame.bytes
            try:
                env = wire.decode(data)
            except FrameError as err:
                self.on_reject(err)
                continue
            if env.kind != Kind.COMMAND or not env.corr:
                self.on_reject(FrameError("unexpected_kind", f"kind {env.kind} on the direct socket"))
                continue
            if not allowed:
                self.refused += 1
                self._answer(ident, env.corr, use_kernel_payload())
                continue
            if len(data) > self.max_frame_bytes:  # refused as the kernel refuses it
                too_large = FrameTooLarge(
                    f"command is {len(data):,} bytes, over this runtime's limit of "
                    f"{self.max_frame_bytes:,} bytes (runtime.max_frame_bytes); it was not run",
                    size=len(data),
                    limit=self.max_frame_bytes,
                )
                self._answer(ident, env.corr, {"ok": False, "error": too_large.to_wire()})
                continue
            out.append((ident, env))
        if out:
            self.on_commands(out)

    def _answer(self, route: Route, cid: str, payload: dict[str, Any]) -> None:
        self.send(route, wire.encode(wire.make(Kind.RESULT, "", self.source, payload, corr=cid)))

    def send(self, route: Route, frame: bytes) -> None:
        """Answer a direct caller; a caller that left is not waited for (it re-sent through the kernel)."""
        with contextlib.suppress(zmq.ZMQError):
            self.asock.send_routed_nowait(route, frame)

    def close(self) -> None:
        """Stop serving: connected clients see the connection drop and go through the kernel."""
        self.asock.close(linger_ms=0)


class DirectLink:
    """A client's DEALER to one service's direct socket; ``lost`` once that connection drops."""

    def __init__(
        self,
        ctx: zmq.Context[zmq.Socket[bytes]],
        path: Path,
        identity: bytes,
        on_results: Callable[[list[bytes]], None],
        on_lost: Callable[[DirectLink], None],
    ) -> None:
        self.on_lost = on_lost
        self.lost = False
        self.sock: zmq.Socket[bytes] = ctx.socket(zmq.DEALER)
        self.sock.setsockopt(zmq.IDENTITY, identity)
        self.sock.setsockopt(zmq.IMMEDIATE, 1)  # no connection: the send fails and the kernel takes the command
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.setsockopt(zmq.SNDHWM, 10_000)
        self.sock.setsockopt(zmq.RCVHWM, 10_000)
        self.sock.setsockopt(zmq.RECONNECT_IVL, 50)  # back soon after a restart; backing off to 1 s while absent
        self.sock.setsockopt(zmq.RECONNECT_IVL_MAX, 1000)
        self._mon = self.sock.get_monitor_socket(zmq.EVENT_DISCONNECTED)
        self.sock.connect(f"ipc://{path}")
        self.asock = AsyncSocket(self.sock)
        self.asock.on_messages(on_results)
        self.amon = AsyncSocket(self._mon)
        self.amon.on_messages(self._on_event, multipart=True)

    def try_send(self, frame: bytes) -> bool:
        """Send now, or False when not connected (or at the high-water mark): then use the kernel."""
        if self.lost:
            return False
        try:
            self.asock.send_nowait(frame)
        except zmq.ZMQError:
            return False
        return True

    def _on_event(self, batch: list[list[bytes]]) -> None:
        if batch and not self.lost:
            self.lost = True
            self.on_lost(self)

    def close(self) -> None:
        """Close the socket and its monitor."""
        self.lost = True
        with contextlib.suppress(zmq.ZMQError):
            self.sock.disable_monitor()
        self.amon.close(linger_ms=0)
        self.asock.close(linger_ms=0)
