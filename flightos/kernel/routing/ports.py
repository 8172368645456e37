"""What the command router needs of its socket and its clock, as narrow protocols (fakes drive it in tests)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, Protocol


class Sender(Protocol):
    """The send side of the kernel's command ROUTER (``flightos.bus.aiozmq.AsyncSocket``)."""

    def send_multipart_nowait(self, frames: list[bytes]) -> None:
        """Send ``[routing id, frame]`` now or raise zmq.ZMQError (EAGAIN at the HWM, EHOSTUNREACH: no such peer)."""


class Timer(Protocol):
    """A callback armed on a clock."""

    def cancel(self) -> None:
        """Do not run it."""


class Clock(Protocol):
    """The time deadlines are measured in, and timers on it."""

    def time(self) -> float:
        """Now, in seconds (monotonic)."""

    def call_at(self, when: float, callback: Callable[..., object], *args: Any) -> Timer:
        """Run ``callback(*args)`` at ``when``."""

    def call_later(self, delay: float, callback: Callable[..., object], *args: Any) -> Timer:
        """Run ``callback(*args)`` ``delay`` seconds from now."""


class LoopClock:
    """The running asyncio loop's clock: the kernel's (looked up per call, so it can be made outside the loop)."""

    def time(self) -> float:
        """The loop's time."""
        return asyncio.get_running_loop().time()

    def call_at(self, when: float, callback: Callable[..., object], *args: Any) -> asyncio.TimerHandle:
        """A loop timer at ``when``."""
        return asyncio.get_running_loop().call_at(when, callback, *args)

    def call_later(self, delay: float, callback: Callable[..., object], *args: Any) -> asyncio.TimerHandle:
        """A loop timer ``delay`` seconds from now."""
        return asyncio.get_running_loop().call_later(delay, callback, *args)
