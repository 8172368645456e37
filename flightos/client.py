"""A bus client for tools, tests and ground software on the same board: command, subscribe, wait."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from types import TracebackType
from typing import Any

import zmq

from flightos.bus.commands import DEFAULT_TIMEOUT_S, CommandChannel
from flightos.bus.endpoints import Endpoints, default_runtime_dir
from flightos.bus.envelope import Envelope
from flightos.bus.pubsub import KernelChannel, Subscriber


class NoRuntime(Exception):
    """No kernel is running in the runtime directory."""


def kernel_pid(runtime_dir: Path) -> int | None:
    """The pid of the kernel holding the runtime directory's lock, or None if none runs."""
    pidfile = Endpoints(runtime_dir).pidfile
    try:
        fd = os.open(pidfile, os.O_RDONLY)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            text = os.read(fd, 32).decode(errors="replace").strip()
            return int(text) if text.isdigit() else -1
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None  # we could lock it: the kernel that wrote it is gone
    finally:
        os.close(fd)


class Client:
    """Talks to a running runtime: ``await client.call("test", "ping")``, ``client.subscribe("tm.")``."""

    def __init__(self, runtime_dir: Path | str | None = None, name: str = "client", *, direct: bool = True) -> None:
        """``direct``: send commands with fresh ids one hop to local services (``flightos.bus.direct``)."""
        self.runtime_dir = Path(runtime_dir) if runtime_dir else default_runtime_dir()
        pid = kernel_pid(self.runtime_dir)
        if pid is None:
            raise NoRuntime(
                f"no flightos runtime is running in {self.runtime_dir} "
                "(start one with `flightos run`, or pass --runtime-dir)"
            )
        self.endpoints = Endpoints(self.runtime_dir)
        self.kernel_pid = max(pid, 0)
        """The kernel's pid (from its locked pid file): kernel topics are accepted only from that process."""
        self.ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context(io_threads=1)
        ident = f"c/{name}/{os.getpid()}/{os.urandom(4).hex()}"
        self.commands = CommandChannel(
            self.ctx, self.endpoints.command, ident, name, direct_dir=self.runtime_dir if direct else None
        )
        self._subs: list[Subscriber] = []

    async def call(
        self,
        service: str,
        command: str,
        args: dict[str, Any] | None = None,
        *,
        timeout: float = DEFAULT_TIMEOUT_S,
        command_id: str | None = None,
    ) -> Any:
        """Run a command and return its value, or raise its typed CommandError."""
        return await self.commands.call(service, command, args, timeout=timeout, command_id=command_id)

    def subscriber(self, *prefixes: str) -> Subscriber:
        """A subscriber to topic prefixes; read it with ``await sub.batches()``."""
        sub = Subscriber(
            self.ctx,
            self.endpoints.subscribe,
            "client",  # kernel topics from the kernel alone
            kernel=KernelChannel(self.endpoints.kernel_events, self.kernel_pid),
        )
        for p in prefixes or ("",):
            sub.subscribe(p)
        self._subs.append(sub)
        return sub

    async def messages(self, *prefixes: str) -> AsyncIterator[Envelope]:
        """Every message under the prefixes, as it arrives."""
        sub = self.subscriber(*prefixes)
        while True:
            for env in await sub.batches():
                yield env

    async def wait_for(
        self,
        prefix: str,
        predicate: Callable[[Envelope], bool] = lambda e: True,
        timeout: float = 10.0,
        sub: Subscriber | None = None,
    ) -> Envelope:
        """The first message under ``prefix`` matching ``predicate``; TimeoutError after ``timeout``."""
        own = sub is None
        sub = sub or self.subscriber(prefix)

        async def find() -> Envelope:
            assert sub is not None
            while True:
                env = await sub.next()  # one at a time: later messages stay for the next wait
                if env.topic.startswith(prefix) and predicate(env):
                    return env

        try:
            return await asyncio.wait_for(find(), timeout)
        finally:
            if own:
                sub.close()
                self._subs.remove(sub)

    def close(self) -> None:
        """Close every socket and the context."""
        self.commands.close()
        for s in self._subs:
            s.close()
        self._subs.clear()
        with contextlib.suppress(zmq.ZMQError):
            self.ctx.term()

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
