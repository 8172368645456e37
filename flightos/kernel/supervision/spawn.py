"""Starting service processes: through the preloaded fork server, or as a fresh interpreter."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import socket
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import structlog

from flightos.host.spawn_spec import SpawnSpec
from flightos.kernel.supervision.containment import Containment
from flightos.kernel.supervision.framing import Unpacker, pack
from flightos.runner import ENV_SPAWN

log = structlog.get_logger("flightos.kernel")

ExitCallback = Callable[[int, int | None], None]
"""Called with (pid, exit code or -signal, None if unknown) when a service process ends."""


class SpawnError(Exception):
    """A service process could not be started."""


def contain(containment: Containment, spec: SpawnSpec) -> SpawnSpec:
    """The spec with the service's group made and its limits set; unchanged (and logged) if that fails."""
    try:
        return containment.prepare(spec)
    except OSError as exc:
        log.error("kernel.containment_failed", service=spec.name, backend=containment.kind, error=str(exc))
        return spec


class ExecSpawner:
    """Starts each service as ``python -m flightos.runner`` and watches it through a pidfd."""

    def __init__(self, on_exit: ExitCallback, containment: Containment | None = None) -> None:
        self.on_exit = on_exit
        self.containment = containment or Containment()
        self._procs: dict[int, tuple[subprocess.Popen[bytes], int]] = {}

    async def start(self) -> None:
        """Nothing to prepare."""

    async def spawn(self, spec: SpawnSpec) -> int:
        """Start one service process and return its pid."""
        spec = contain(self.containment, spec)
        env = dict(os.environ)
        env[ENV_SPAWN] = base64.b64encode(spec.encode()).decode()
        try:
            proc = subprocess.Popen(
                [sys.executable, "-m", "flightos.runner"], env=env, stdin=subprocess.DEVNULL, close_fds=True
            )
        except OSError as exc:
            self.containment.discard(spec)
            raise SpawnError(f"cannot start {spec.name}: {exc}") from exc
        self.containment.started(spec, proc.pid)
        pidfd = os.pidfd_open(proc.pid)
        self._procs[proc.pid] = (proc, pidfd)
        asyncio.get_running_loop().add_reader(pidfd, self._on_pidfd, proc.pid)
        return proc.pid

    def _on_pidfd(self, pid: int) -> None:
        proc, pidfd = self._procs.pop(pid)
        asyncio.get_running_loop().remove_reader(pidfd)
        os.close(pidfd)
        self.on_exit(pid, proc.wait())

    async def close(self) -> None:
        """Kill whatever is left."""
        for pid, (proc, pidfd) in list(self._procs.items()):
            self.containment.kill_tree(pid)
            proc.wait()
            with contextlib.suppress(Exception):
                asyncio.get_running_loop().remove_reader(pidfd)
            os.close(pidfd)
            self._procs.pop(pid, None)


class ForkServerSpawner:
    """Asks the fork server to fork each service; child exits come back as reports within ms."""

    def __init__(
        self, on_exit: ExitCallback, on_lost: Callable[[], None], containment: Containment | None = None
    ) -> None:
        self.on_exit = on_exit
        self.on_lost = on_lost
        self.containment = containment or Containment()
        self._proc: subprocess.Popen[bytes] | None = None
        self._sock: socket.socket | None = None
        self._unpacker = Unpacker()
        self._req = 0
        self._waiting: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._hello: asyncio.Future[dict[str, Any]] | None = None
        self.children: set[int] = set()
        self.alive = False

    @property
    def pid(self) -> int | None:
        """The fork server's pid, while it was started (its children are services)."""
        return self._proc.pid if self._proc is not None else None

    async def start(self) -> None:
        """Start the fork server and wait until it has finished its imports."""
        loop = asyncio.get_running_loop()
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            self._proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "flightos.kernel.supervision.forkserver",
                    str(theirs.fileno()),
                    str(os.getpid()),
                ],
                pass_fds=[theirs.fileno()],
                stdin=subprocess.DEVNULL,
                close_fds=True,
            )
        except OSError as exc:
            raise SpawnError(f"cannot start the fork server: {exc}") from exc
        finally:
            theirs.close()
        ours.setblocking(False)
        self._sock = ours
        self._hello = loop.create_future()
        loop.add_reader(ours.fileno(), self._on_readable)
        try:
            await asyncio.wait_for(self._hello, 30)
        except asyncio.TimeoutError:
            raise SpawnError("the fork server did not start within 30 s") from None
        self.alive = True

    def _on_readable(self) -> None:
        assert self._sock is not None
        try:
            data = self._sock.recv(65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self._lost()
            return
        try:
            msgs = self._unpacker.feed(data)
        except ValueError as exc:
            log.error("kernel.forkserver_protocol_error", error=str(exc))
            self._lost()
            return
        for msg in msgs:
            op = msg.get("op")
            if op == "hello" and self._hello is not None and not self._hello.done():
                self._hello.set_result(msg)
            elif op in ("spawned", "spawn_failed"):
                fut = self._waiting.pop(int(msg.get("req", -1)), None)
                if fut is not None and not fut.done():
                    fut.set_result(msg)
            elif op == "exited":
                pid = int(msg["pid"])
                self.children.discard(pid)
                self.on_exit(pid, int(msg["code"]))

    def _lost(self) -> None:
        if not self.alive and self._sock is None:
            return
        self.alive = False
        loop = asyncio.get_running_loop()
        if self._sock is not None:
            with contextlib.suppress(Exception):
                loop.remove_reader(self._sock.fileno())
            self._sock.close()
            self._sock = None
        for fut in self._waiting.values():
            if not fut.done():
                fut.set_result({"op": "spawn_failed", "error": "fork server lost"})
        self._waiting.clear()
        orphans, self.children = self.children, set()
        for pid in orphans:  # they die with the fork server (PDEATHSIG); make sure, with their trees, then report
            self.containment.kill_tree(pid)
            self.on_exit(pid, None)
        self.on_lost()

    async def spawn(self, spec: SpawnSpec) -> int:
        """Fork one service process and return its pid."""
        if not self.alive or self._sock is None:
            raise SpawnError("the fork server is not running")
        spec = contain(self.containment, spec)
        self._req += 1
        req = self._req
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiting[req] = fut
        self._sock.sendall(pack({"op": "spawn", "req": req, "spec": spec.encode(), "cpus": spec.cpus}))
        try:
            reply = await asyncio.wait_for(fut, 10)
        except asyncio.TimeoutError:
            self._waiting.pop(req, None)
            self.containment.discard(spec)
            raise SpawnError(f"the fork server did not answer a spawn of {spec.name}") from None
        if reply.get("op") != "spawned":
            self.containment.discard(spec)
            raise SpawnError(f"the fork server could not start {spec.name}: {reply.get('error')}")
        pid = int(reply["pid"])
        self.containment.started(spec, pid)
        self.children.add(pid)
        return pid

    async def close(self) -> None:
        """Close the connection (the fork server kills its children and exits) and reap it."""
        if self._sock is not None:
            with contextlib.suppress(Exception):
                asyncio.get_running_loop().remove_reader(self._sock.fileno())
            self._sock.close()
            self._sock = None
        self.alive = False
        if self._proc is not None:
            try:
                await asyncio.get_running_loop().run_in_executor(None, self._proc.wait, 5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
            self._proc = None
