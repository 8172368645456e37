"""Who sent a frame on a local socket, taken from the sending process (SO_PEERCRED), never from what it claims.

On an ``ipc://`` socket libzmq attaches the peer's credentials to every frame (``Peer-Address`` is
``host:uid:gid:pid``). The kernel knows each service's pid, so a process is:

- the service whose process it is, or descends from (a service that opens another socket is still itself);
- the operator, if it does not descend from this runtime at all (the CLI, tests, same-user tools);
- refused, if it descends from the runtime but is no live service incarnation (an old incarnation
  still exiting, an orphan the fork server adopted, the fork server itself).

A direct child of the kernel or the fork server whose pid the kernel has not recorded yet is a spawn
in flight: its frames are held (``PENDING``) until the pid is known, then judged like any other.
Answers are cached per (routing id, peer), so the hot path is two dictionary lookups.
"""

from __future__ import annotations

import asyncio
import enum
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import zmq

from flightos.bus.envelope import FrameError

PEER_ADDRESS = "Peer-Address"
"""The libzmq message property holding the peer's ``host:uid:gid:pid`` on ipc sockets."""
CACHE_MAX = 4096
"""Cached answers; past this the cache starts again (a flood of new connections cannot grow it)."""
MAX_DEPTH = 64
"""Ancestors walked before a process is judged (deeper trees than this are refused)."""


class Kind(enum.Enum):
    """What the kernel makes of a sender."""

    SERVICE = "service"
    OPERATOR = "operator"
    REFUSED = "refused"
    PENDING = "pending"
    GONE = "gone"


@dataclass(frozen=True)
class Peer:
    """A sender as the kernel sees it: its kind, and for a service its name and the service process."""

    kind: Kind
    name: str = ""
    """The service (kind SERVICE); empty for the operator."""
    pid: int = 0
    """The process that sent the frame (0 when the socket carried no credentials)."""
    service_pid: int = 0
    """The service process it is or descends from (kind SERVICE)."""
    reason: str = ""


class ServiceProcess(Protocol):
    """What the resolver needs of a service record."""

    @property
    def pid(self) -> int | None: ...


def proc_parent(pid: int) -> int | None:
    """The parent pid of a live process (from ``/proc/<pid>/stat``), or None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return None
    try:  # "pid (comm) state ppid ...": comm may hold spaces and parentheses, so split after the last ')'
        return int(stat[stat.rindex(b")") + 2 :].split(b" ", 2)[1])
    except (ValueError, IndexError):
        return None


def other_users_process(pid: int) -> bool:
    """True when ``pid`` lives but belongs to another user (a null signal to it is refused): under
    ``ProtectProc=invisible`` its ``/proc`` entry is hidden, so the runtime's tree cannot continue through it."""
    try:
        os.kill(pid, 0)
    except PermissionError:
        return True
    except OSError:
        return False
    return False


def proc_cgroups(pid: int) -> str:
    """The text of ``/proc/<pid>/cgroup`` ("" if unreadable)."""
    try:
        with open(f"/proc/{pid}/cgroup") as f:
            return f.read()
    except OSError:
        return ""


def service_group(cgroups: str) -> tuple[str, int] | None:
    """The (service, incarnation) of a ``svc-<name>.<incarnation>`` group in ``/proc/<pid>/cgroup`` text."""
    for line in cgroups.splitlines():
        for part in line.rsplit(":", 1)[-1].split("/"):
            if part.startswith("svc-") and "." in part:
                name, _, inc = part[4:].rpartition(".")
                if inc.isdigit():
                    return name, int(inc)
    return None


def peer_address(frame: zmq.Frame) -> str | None:
    """A received frame's ``Peer-Address`` (``host:uid:gid:pid`` on ipc), or None when libzmq has none."""
    try:
        value = frame.get(PEER_ADDRESS)
    except (zmq.ZMQError, KeyError):
        return None
    return str(value) if value else None


def peer_pid(peer: str | None) -> int:
    """The pid in a ``Peer-Address`` value, or 0 when there is none (not ipc, or no SO_PEERCRED)."""
    if not peer:
        return 0
    try:
        return int(peer.rsplit(":", 1)[1])
    except (IndexError, ValueError):
        return 0


@dataclass
class Identities:
    """Maps the process behind a frame to a service, the operator, or a refusal."""

    records: Mapping[str, ServiceProcess]
    kernel_pid: int = field(default_factory=os.getpid)
    spawners: Callable[[], Iterable[int]] = tuple
    """Processes that start services besides the kernel (the fork server): their children are services."""
    parent: Callable[[int], int | None] = proc_parent
    cgroups: Callable[[int], str] = proc_cgroups
    foreign: Callable[[int], bool] = other_users_process
    """Whether an unreadable process is another user's (alive, hidden by ProtectProc=), not an exited one."""
    """A process's cgroups: one that left the runtime's tree (re-parented to init) but is still in a
    service's group (``svc-<name>.<incarnation>``, flightos.kernel.supervision.containment) is still that service."""
    stats: dict[str, int] = field(
        default_factory=lambda: {"services": 0, "operators": 0, "refused": 0, "held": 0, "forged": 0}
    )
    _cache: dict[tuple[bytes, str], Peer] = field(default_factory=dict)

    def resolve(self, ident: bytes, peer: str | None) -> Peer:
        """Who sent a frame that arrived under routing id ``ident`` with this ``Peer-Address``."""
        key = (ident, peer or "")
        hit = self._cache.get(key)
        if hit is not None:
            if hit.kind is not Kind.SERVICE:
                return hit
            rec = self.records.get(hit.name)
            if rec is not None and rec.pid == hit.service_pid:
                return hit
            del self._cache[key]  # that incarnation is gone: judge the process again
        found = self._judge(peer_pid(peer))
        if found.kind in (Kind.SERVICE, Kind.OPERATOR, Kind.REFUSED):
            if len(self._cache) >= CACHE_MAX:
                self._cache.clear()
            self._cache[key] = found
            self.stats[{Kind.SERVICE: "services", Kind.OPERATOR: "operators", Kind.REFUSED: "refused"}[found.kind]] += 1
        return found

    def _judge(self, pid: int, again: bool = True) -> Peer:
        if pid <= 0:
            return Peer(Kind.REFUSED, pid=pid, reason="the socket carried no peer credentials")
        services = {r.pid: name for name, r in self.records.items() if r.pid}
        spawners = {self.kernel_pid, *self.spawners()}
        p = pid
        for depth in range(MAX_DEPTH):
            name = services.get(p)
            if name is not None:
                return Peer(Kind.SERVICE, name, pid, p)
            if p in spawners:
                if depth == 0 and p == self.kernel_pid:
                    return Peer(Kind.OPERATOR, pid=pid, reason="the kernel itself")
                if depth == 1:  # a child of a spawner the kernel has not recorded (yet): a spawn in flight
                    return Peer(Kind.PENDING, pid=pid, reason=f"a child of {p} that is not a known service process")
                return Peer(
                    Kind.REFUSED,
                    pid=pid,
                    reason=f"process {pid} descends from this runtime but is no live service incarnation",
                )
            parent = self.parent(p)
            if parent is None and self.foreign(p):  # another user's (the operator's sudo or shell): the sender
                return self._by_group(pid)  # is no runtime descendant, whose whole tree runs as the kernel's user
            if parent is None:  # p exited: the sender itself, or an ancestor (then the sender was re-parented)
                if depth == 0 or not again:
                    return Peer(Kind.GONE, pid=pid, reason=f"process {pid} has exited")
                return self._judge(pid, again=False)
            if parent == 0:  # the top of the tree, not through this runtime: the operator, unless contained
                return self._by_group(pid)
            p = parent
        return Peer(Kind.REFUSED, pid=pid, reason=f"process {pid}: ancestry deeper than {MAX_DEPTH}")

    def _by_group(self, pid: int) -> Peer:
        """A process outside the runtime's tree: still a service if it sits in a service's group."""
        group = service_group(self.cgroups(pid))
        if group is None:
            return Peer(Kind.OPERATOR, pid=pid)
        name, inc = group
        rec = self.records.get(name)
        if rec is not None and rec.pid and getattr(rec, "incarnation", inc) == inc:
            return Peer(Kind.SERVICE, name, pid, rec.pid)
        return Peer(
            Kind.REFUSED,
            pid=pid,
            reason=f"process {pid} is in the group of {name} incarnation {inc}, which no longer runs",
        )


Deliver = Callable[[Peer, bytes, bytes], None]
"""Handles one frame: (the judged sender, the routing id it arrived under, the frame's bytes)."""

HOLD_S = 5.0
"""How long frames of a spawn in flight wait for the kernel to record its pid before they are refused."""
HOLD_MAX = 1024
"""Frames held at once, over all senders; past it a pending sender's frames are refused."""


class Gate:
    """Judges the sender of every frame of one ROUTER socket, holding a just-spawned process's frames in order."""

    def __init__(self, identities: Identities, deliver: Deliver, hold_s: float = HOLD_S) -> None:
        self.identities = identities
        self.deliver = deliver
        self.hold_s = hold_s
        self._held: dict[tuple[bytes, str], tuple[float, list[bytes]]] = {}
        self._count = 0
        self._timer: asyncio.TimerHandle | None = None

    def feed_batch(self, batch: list[list[Any]], reject: Callable[[FrameError], None]) -> None:
        """Judge a drained batch of ``[routing id, frame]`` messages (zmq.Frame: they carry the sender's pid)."""
        for parts in batch:
            if len(parts) != 2:
                reject(FrameError("malformed", f"{len(parts)} frames, expected 2"))
                continue
            ident, frame = parts
            self.feed(ident.bytes, peer_address(frame), frame.bytes)

    def feed(self, ident: bytes, peer: str | None, frame: bytes) -> None:
        """Judge one frame's sender and hand it on (now, or once its pid is known)."""
        key = (ident, peer or "")
        held = self._held.get(key)
        if held is not None:  # keep a sender's frames in order behind the ones already waiting
            self._hold(key, held[1], frame)
            return
        who = self.identities.resolve(ident, peer)
        if who.kind is Kind.PENDING:
            loop = asyncio.get_running_loop()
            self._held[key] = (loop.time() + self.hold_s, [])
            self._hold(key, self._held[key][1], frame)
            if self._timer is None:
                self._timer = loop.call_later(0.005, self._retry)
            return
        self.deliver(who, ident, frame)

    def _hold(self, key: tuple[bytes, str], frames: list[bytes], frame: bytes) -> None:
        if self._count >= HOLD_MAX:
            self.deliver(
                Peer(
                    Kind.REFUSED,
                    pid=peer_pid(key[1]),
                    reason="too many frames held for processes the kernel does not know yet",
                ),
                key[0],
                frame,
            )
            return
        frames.append(frame)
        self._count += 1
        self.identities.stats["held"] += 1

    def _retry(self) -> None:
        self._timer = None
        loop = asyncio.get_running_loop()
        now = loop.time()
        for key, (deadline, frames) in list(self._held.items()):
            who = self.identities.resolve(*key)
            if who.kind is Kind.PENDING:
                if now < deadline:
                    continue
                who = Peer(
                    Kind.REFUSED,
                    pid=who.pid,
                    reason=f"process {who.pid} is a child of this runtime that "
                    f"no service spawn claimed within {self.hold_s:.0f} s",
                )
            del self._held[key]
            self._count -= len(frames)
            for frame in frames:
                self.deliver(who, key[0], frame)
        if self._held:
            self._timer = loop.call_later(0.01, self._retry)

    def close(self) -> None:
        """Stop retrying (frames still held are dropped with the kernel)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
