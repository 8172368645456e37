"""The kernel under systemd: READY=1 once services are up, WATCHDOG=1 on time, STOPPING=1 at shutdown."""

from __future__ import annotations

import asyncio
import itertools
import socket
import time
from collections.abc import Callable
from pathlib import Path

from tests.integration.conftest import make_runtime


async def test_kernel_notifies_ready_watchdog_and_stopping(tmp_path: Path) -> None:
    """Through $NOTIFY_SOCKET (a socket this test owns): READY=1 after start, watchdogs at half WATCHDOG_USEC."""
    path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.setblocking(False)
    loop = asyncio.get_running_loop()
    got: list[tuple[float, str]] = []

    async def until(done: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = loop.time() + timeout
        while not done():
            assert loop.time() < deadline, f"no {what} from the kernel; got {[m for _, m in got]}"
            try:
                got.append((time.monotonic(), sock.recv(4096).decode()))
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
