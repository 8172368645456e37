"""The kernel under systemd: READY=1 once services are up, WATCHDOG=1 on time, STOPPING=1 at shutdown."""

from __future__ import annotations

import asyncio
import itertools
import socket
import struct
import time
from collections.abc import Callable
from pathlib import Path

from tests.runtimes import make_runtime

SO_TIMESTAMP = getattr(socket, "SO_TIMESTAMP", 29)
"""Linux's number for it; Python's socket module does not always export the name."""


async def test_kernel_notifies_ready_watchdog_and_stopping(tmp_path: Path) -> None:
    """Through $NOTIFY_SOCKET (a socket this test owns): READY=1 after start, watchdogs at half WATCHDOG_USEC."""
    path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.setblocking(False)
    # Each datagram carries the time it arrived, so a reader delayed by a busy host measures the kernel's
    # timing, not its own (two datagrams read back to back still show their real gap).
    sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMP, 1)
    loop = asyncio.get_running_loop()
    got: list[tuple[float, str]] = []

    async def until(done: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = loop.time() + timeout
        while not done():
            assert loop.time() < deadline, f"no {what} from the kernel; got {[m for _, m in got]}"
            try:
                got.append(_receive(sock))
            except BlockingIOError:
                await asyncio.sleep(0.01)  # a non-blocking socket polled against a deadline

    def count(message: str) -> int:
        return sum(1 for _, m in got if m == message)

    rt = make_runtime(["test"], env={"NOTIFY_SOCKET": str(path), "WATCHDOG_USEC": "400000"})
    try:
        async with rt:
            await until(lambda: any(m.startswith("READY=1") for _, m in got), 10, "READY=1")
            ready_at = next(t for t, m in got if m.startswith("READY=1"))
            await until(lambda: count("WATCHDOG=1") >= 5, 10, "five WATCHDOG=1")
            dogs = [t for t, m in got if m == "WATCHDOG=1"]
            gaps = [b - a for a, b in itertools.pairwise(dogs)]
            assert len(gaps) >= 4 and all(0.1 <= g <= 0.35 for g in gaps), gaps  # every 0.2 s
            assert dogs[0] >= ready_at
        await until(lambda: count("STOPPING=1") >= 1, 10, "STOPPING=1")
    finally:
        sock.close()


def _receive(sock: socket.socket) -> tuple[float, str]:
    """One datagram and its arrival time (SO_TIMESTAMP, wall clock seconds)."""
    data, ancillary, _, _ = sock.recvmsg(4096, socket.CMSG_SPACE(struct.calcsize("ll")))
    for level, kind, raw in ancillary:
        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMP:
            sec, usec = struct.unpack("ll", raw[: struct.calcsize("ll")])
            return sec + usec / 1e6, data.decode()
    return time.time(), data.decode()
