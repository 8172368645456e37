"""A runtime with the ground service on an ephemeral UDP port, a provisioned key, and a ground client."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest_asyncio

from flightos.ground.security import KeyStore
from flightos.groundtools.console import GroundClient
from flightos.testing import RuntimeProcess
from flightos.testing.eventually import eventually
from tests.runtimes import make_runtime

GROUND = [
    'services.ground.options.udp_bind="127.0.0.1:0"',
    'services.ground.options.tcp_bind="127.0.0.1:0"',
    "services.ground.heartbeat_period_s=0.5",
]


@dataclass
class Link:
    """What a ground test needs: the runtime, the key store, the UDP and TCP ports, and a client."""

    rt: RuntimeProcess
    keys: KeyStore
    udp_port: int
    tcp_port: int
    ground: GroundClient


async def start(extra: list[str] | None = None, services: list[str] | None = None) -> tuple[RuntimeProcess, KeyStore]:
    """A started runtime whose ground service already knows key 1."""
    rt = make_runtime(services or ["ground", "test", "housekeeping"], [*GROUND, *(extra or [])])
    keys = KeyStore(rt.state_dir / "ground" / "keys.json")
    keys.add(1)
    await rt.start()
    return rt, keys


async def ports(rt: RuntimeProcess) -> dict[str, int]:
    """The ports the ground service bound."""
    assert rt.client is not None
    status = await rt.client.call("ground", "link_status")
    return {lk["kind"]: lk["port"] for lk in status["links"]}


async def link_status(rt: RuntimeProcess) -> dict[str, Any]:
    """The ground service's counters, contact, links and store."""
    assert rt.client is not None
    return dict(await rt.client.call("ground", "link_status"))


async def tcp_ground(rt: RuntimeProcess, keys: KeyStore) -> socket.socket:
    """A TCP ground with a small receive window that authenticated itself and is now the downlink peer."""
    p = await ports(rt)
    peer = socket.socket()
    peer.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # a small window: a stall comes soon
    peer.connect(("127.0.0.1", p["tcp"]))
    peer.sendall(GroundClient("127.0.0.1", p["udp"], 100, keys).build(17, 1))  # authenticated: the new peer

    async def is_peer() -> bool:
        return str((await link_status(rt))["peer"]).startswith("tcp:")

    await eventually(is_peer, timeout=30, what="the TCP ground to be the peer")
    return peer


@pytest_asyncio.fixture
async def link() -> AsyncIterator[Link]:
    """A runtime with ground, test and housekeeping, and an authenticated ground client."""
    rt, keys = await start()
    try:
        p = await ports(rt)
        async with GroundClient("127.0.0.1", p["udp"], 100, keys) as g:
            yield Link(rt, keys, p["udp"], p["tcp"], g)
    finally:
        await rt.stop()
        rt.cleanup()
