"""The ``test`` service: PUS ST[17]-style ping, and drills that crash, hang or leak on purpose."""

from __future__ import annotations

import asyncio
import functools
import os
import signal
import subprocess
import sys
import time
from typing import Any

from flightos import BadArguments, Message, Parameter, Service, Severity, command, periodic
from services.test.events import TestEvent
from services.test.options import TestOptions


class TestService(Service):
    """Answers pings and misbehaves on command, so the kernel's supervision can be exercised."""

    name = "test"
    options_schema = TestOptions
    greeting = Parameter("pong", doc="what ping answers with")
    duty_pct = Parameter(0.0, min=0.0, max=95.0, doc="CPU burnt by the payload drill; honours the throttle level")

    def __init__(self) -> None:
        super().__init__()
        self._leak: list[bytearray] = []
        self._seen: dict[str, dict[str, Any]] = {}
        self._children: list[subprocess.Popen[bytes]] = []

    async def on_start(self) -> None:
        """Fail the start while the drill's file exists (``fail_start_while``)."""
        blocker = self.config.fail_start_while
        if blocker and await asyncio.to_thread(os.path.exists, blocker):
            raise RuntimeError(f"start refused by the drill: {blocker} exists")

    @periodic(hz=10)
    async def payload(self) -> None:
        """A stand-in for payload processing: burns duty_pct of each 100 ms, less when throttled (0..3)."""
        if self.duty_pct <= 0:
            return
        busy = 0.1 * self.duty_pct / 100.0 * max(0.0, 1.0 - self.throttle / 3.0)
        end = time.monotonic() + busy
        while time.monotonic() < end:
            pass

    @command()
    async def ping(self) -> dict[str, Any]:
        """Are-you-alive: answers at once with the pid and the greeting parameter."""
        return {"reply": self.greeting, "pid": os.getpid()}

    @command()
    async def echo(self, value: Any) -> Any:
        """Return the argument unchanged."""
        return value

    @command()
    async def record(self, key: str) -> int:
        """Count an execution of ``key`` in the persistent store; return the new count."""
        return self.store.increment(f"exec/{key}")

    @command()
    async def executions(self, prefix: str = "") -> dict[str, int]:
        """How many times each recorded key was executed."""
        return {k.removeprefix("exec/"): int(v) for k, v in self.store.items("exec/" + prefix)}

    @command()
    async def relay(self, service: str, command: str, args: dict[str, Any] | None = None, timeout: float = 5.0) -> Any:
        """Call another service's command through the kernel and return its value (ST[17] link test)."""
        return await self.call(service, command, args or {}, timeout=timeout)

    @command()
    async def watch(self, prefix: str) -> list[str]:
        """Subscribe to a topic prefix (from this board or, through the link, from others); return all watched."""
        if prefix not in self._seen:
            self._seen[prefix] = {"count": 0, "last": None, "sources": []}
            self.subscribe(prefix, functools.partial(self._saw, prefix))
        return sorted(self._seen)

    async def _saw(self, prefix: str, msg: Message) -> None:
        seen = self._seen[prefix]
        seen["count"] += 1
        seen["last"] = {"topic": msg.topic, "source": msg.source, "seq": msg.seq, "payload": msg.payload}
        if msg.source not in seen["sources"]:
            seen["sources"].append(msg.source)

    @command()
    async def seen(self, prefix: str) -> dict[str, Any]:
        """What arrived under a watched prefix: count, sources and the last message."""
        if prefix not in self._seen:
            raise BadArguments(f"not watching {prefix!r} (watching {sorted(self._seen)})")
        return self._seen[prefix]

    @command()
    async def emit(self, name: str, payload: Any = None, count: int = 1) -> int:
        """Publish ``tm.test.<name>`` ``count`` times (a telemetry source for bus and link drills)."""
        for i in range(count):
            await self.publish(name, {"i": i, "value": payload})
        return count

    @command()
    async def announce(self, message: str, severity: int = 1) -> None:
        """Raise an event with the given message and severity (1 INFO … 4 HIGH)."""
        await self.event(message, Severity(severity), event_id=TestEvent.ANNOUNCED)

    @command()
    async def product(self, name: str, data: Any, priority: int = 5) -> None:
        """Downlink a product to the ground at a priority (exercises the SDK's downlink)."""
        await self.downlink(name, data, priority)

    @command()
    async def sleep(self, seconds: float) -> float:
        """Wait asynchronously (the loop stays responsive), for deadline tests."""
        await asyncio.sleep(seconds)
        return seconds

    @command()
    async def fail(self, message: str = "failure on request") -> None:
        """Raise, so the caller gets a command_failed error."""
        raise RuntimeError(message)

    @command()
    async def crash(self, code: int = 1) -> None:
        """Exit the process at once with ``code`` (no cleanup), as a crash would."""
        await self.event("crashing on request", Severity.LOW, code=code)
        os._exit(code)

    @command()
    async def abort(self) -> None:
        """Die from SIGABRT, as a native crash would."""
        os.kill(os.getpid(), signal.SIGABRT)

    @command()
    async def hang(self, seconds: float = 3600.0) -> None:
        """Block the event loop (no heartbeats, no commands) for ``seconds``."""
        await self.event("hanging on request", Severity.LOW, seconds=seconds)
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            time.sleep(0.05)  # noqa: ASYNC251 - blocking the loop is the point of this drill

    @command()
    async def leak(self, megabytes: int) -> int:
        """Allocate and keep ``megabytes`` of memory; return the total held."""
        for _ in range(megabytes):
            self._leak.append(bytearray(1 << 20))
        return len(self._leak)

    @command()
    async def spawn_children(
        self, n: int = 3, busy: bool = False, seconds: float = 600.0, session: bool = False
    ) -> list[int]:
        """Start ``n`` child processes (idle, or burning CPU at nice 19 when ``busy``; each in a session of its
        own when ``session``, as a daemon or a job would) and return their pids."""
        code = (
            f"import os, time\nos.nice(19)\nend = time.monotonic() + {seconds!r}\n"
            "while time.monotonic() < end:\n    pass"
            if busy
            else f"import time; time.sleep({seconds!r})"
        )
        procs = [
            subprocess.Popen([sys.executable, "-S", "-c", code], stdin=subprocess.DEVNULL, start_new_session=session)
            for _ in range(n)
        ]
        self._children.extend(procs)
        return [p.pid for p in procs]

    @command()
    async def fork_bomb(self, n: int = 300, seconds: float = 30.0) -> dict[str, int]:
        """Fork ``n`` sleeping children as fast as possible; count how many the task limit allowed."""
        started = refused = 0
        for _ in range(n):
            try:
                pid = os.fork()
            except OSError:
                refused += 1
                continue
            if pid == 0:  # pragma: no cover - the child only sleeps
                time.sleep(seconds)  # noqa: ASYNC251 - in the forked child, which has no loop of its own
                os._exit(0)
            started += 1
        return {"started": started, "refused": refused}
