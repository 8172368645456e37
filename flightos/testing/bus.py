"""A test's view of the bus: command services, await telemetry and events, and explain a timeout."""

from __future__ import annotations

import asyncio
import collections
import json
from collections.abc import Callable
from typing import Any

from flightos.bus.envelope import Envelope
from flightos.client import Client

Predicate = Callable[[Any], bool]


class Bus:
    """Wraps a Client for tests: every message seen is kept in a short history for failure messages."""

    def __init__(self, client: Client, history: int = 200) -> None:
        self.client = client
        self._sub = client.subscriber("tm.", "ev.")
        self.history: collections.deque[Envelope] = collections.deque(maxlen=history)
        self._backlog: collections.deque[Envelope] = collections.deque()

    async def call(self, service: str, command: str, args: dict[str, Any] | None = None, timeout: float = 5.0) -> Any:
        """Run a command; its typed error propagates."""
        return await self.client.call(service, command, args, timeout=timeout)

    async def _next(self, timeout: float) -> Envelope:
        if not self._backlog:
            self._backlog.extend(await asyncio.wait_for(self._sub.batches(), timeout))
        env = self._backlog.popleft()
        self.history.append(env)
        return env

    async def wait_for(
        self, topic: str, predicate: Predicate = lambda p: True, timeout: float = 10.0, what: str = ""
    ) -> Envelope:
        """The first message under ``topic`` whose payload satisfies ``predicate``, or an AssertionError
        that shows the recent messages under that topic (what a person needs to see why)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise AssertionError(self._explain(topic, what or f"a message on {topic!r}", timeout))
            try:
                env = await self._next(remaining)
            except asyncio.TimeoutError:
                continue
            if env.topic.startswith(topic) and predicate(env.payload):
                return env

    async def event(self, name: str, timeout: float = 10.0, **data: Any) -> Envelope:
        """The next kernel event ``name`` whose data has the given fields."""
        return await self.wait_for(
            "ev.kernel",
            lambda p: p.get("name") == name and all(p.get("data", {}).get(k) == v for k, v in data.items()),
            timeout,
            what=f"kernel event {name} {data or ''}".strip(),
        )

    async def telemetry(
        self, topic: str, predicate: Predicate = lambda p: True, timeout: float = 10.0, what: str = ""
    ) -> Any:
        """The payload of the first matching telemetry message."""
        return (await self.wait_for(topic, predicate, timeout, what)).payload

    def _explain(self, topic: str, what: str, timeout: float) -> str:
        related = [e for e in self.history if e.topic.startswith(topic) or e.topic.startswith("ev.kernel")]
        lines = [f"timed out after {timeout:g} s waiting for {what}; the last messages seen:"]
        for env in related[-15:]:
            body = json.dumps(env.payload, default=str, separators=(",", ":"))
            lines.append(f"  {env.topic} #{env.seq}: {body[:200]}")
        if not related:
            lines.append("  (none on that topic or from the kernel)")
        return "\n".join(lines)

    def close(self) -> None:
        """Close the subscription (the client is closed by its owner)."""
        self._sub.close()
