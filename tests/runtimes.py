"""Fixtures that start real runtimes (real processes, real sockets) in private directories.

A pytest plugin of the whole suite (``pytest_plugins`` in ``tests/conftest.py``), and helpers any test imports.
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator, Sized
from pathlib import Path

import pytest_asyncio

from flightos.bus.envelope import Envelope
from flightos.bus.pubsub import Subscriber
from flightos.client import Client
from flightos.testing import RuntimeProcess

FAST = [
    "services.test.heartbeat_period_s=0.2",
    "services.test.heartbeat_misses=3",
    "restart.backoff_initial_s=0.2",
]


def base() -> Path:
    """Where this run's runtimes live (short: ipc socket paths must stay under ~100 characters)."""
    return Path(os.environ["FLIGHTOS_TEST_BASE"])


def make_runtime(
    services: list[str] | None = None,
    overrides: list[str] | None = None,
    target: str = "sim-radhard",
    env: dict[str, str] | None = None,
    scenario: Path | None = None,
) -> RuntimeProcess:
    """A runtime for one test, in this run's directory."""
    return RuntimeProcess(
        target, services=services, overrides=[*FAST, *(overrides or [])], base_dir=base(), env=env, scenario=scenario
    )


@pytest_asyncio.fixture
async def runtime() -> AsyncIterator[RuntimeProcess]:
    """The default target with the test service on fast heartbeats; torn down after the test."""
    async with make_runtime(["test", "housekeeping"]) as rt:
        yield rt


async def kill_at_marks(
    rt: RuntimeProcess, answers: Sized, marks: tuple[int, ...] = (250, 500, 750), service: str = "test"
) -> None:
    """SIGKILL ``service`` each time ``answers`` has grown to the next mark (a chaos test's killer)."""
    for mark in marks:
        while len(answers) < mark:
            await asyncio.sleep(0.001)  # polling a shared dict that the command tasks fill
        row = await rt.service(service)
        if row["pid"]:
            os.kill(row["pid"], signal.SIGKILL)


async def kernel_events(client: Client, timeout: float = 5.0) -> Subscriber:
    """A subscriber to ``ev.kernel`` whose subscription has reached the kernel's own endpoint.

    A kernel event is delivered only with its twin from ``kev.sock``; a subscription that has not reached that
    endpoint yet misses the twin, and the event with it. The kernel's 1 Hz ``tm.kernel.services``, subscribed
    on the same sockets after ``ev.kernel``, arriving proves both subscriptions are there.
    """
    sub = client.subscriber("ev.kernel", "tm.kernel.services")
    kept: list[Envelope] = []

    async def first_services() -> None:
        while True:
            for env in await sub.batches():
                if env.topic == "tm.kernel.services":
                    return
                kept.append(env)  # an event that came meanwhile stays for the test to read

    try:
        await asyncio.wait_for(first_services(), timeout)
    finally:
        sub.requeue(kept)
    return sub
