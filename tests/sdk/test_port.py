"""The SDK's host port: ``Service`` uses exactly ``HostPort``'s members, ServiceHost has them, a fake host suffices."""

from __future__ import annotations

import ast
import inspect
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from flightos import Message, Service, Severity, Store
from flightos.host.service_host import ServiceHost
from flightos.sdk import service as service_module
from flightos.sdk.port import HostPort


def port_members() -> set[str]:
    """The names HostPort declares."""
    return {name for name in vars(HostPort) if not name.startswith("_")}


def members_service_uses() -> set[str]:
    """Every ``self._host.<name>`` the Service class reads, from its source."""
    tree = ast.parse(inspect.getsource(service_module))
    return {
        node.attr
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Attribute) and node.value.attr == "_host"
    }


def test_the_port_is_exactly_what_service_uses() -> None:
    assert members_service_uses() == port_members()


def test_service_host_has_every_member_of_the_port() -> None:
    source = inspect.getsource(ServiceHost)
    missing = [
        name for name in sorted(port_members()) if not hasattr(ServiceHost, name) and f"self.{name} = " not in source
    ]
    assert missing == []


class FakeHost:
    """A host with only HostPort's members, recording what the service asked of it."""

    def __init__(self, state_dir: Path) -> None:
        self.store = Store(state_dir / "store.sqlite")
        self.state_dir = state_dir
        self.options: dict[str, Any] = {"gain": 2}
        self.throttle = 1
        self.published: list[tuple[str, Any]] = []
        self.events: list[tuple[str, Severity, int, dict[str, Any]]] = []
        self.calls: list[tuple[str, str, dict[str, Any], float]] = []
        self.subscriptions: list[str] = []

    def publish(self, topic: str, payload: Any) -> None:
        self.published.append((topic, payload))

    def raise_event(self, message: str, severity: Severity, event_id: int, data: dict[str, Any]) -> None:
        self.events.append((message, severity, event_id, data))

    async def call(self, service: str, command: str, args: dict[str, Any], *, timeout: float) -> Any:
        self.calls.append((service, command, args, timeout))
        return "pong"

    def add_subscription(self, prefix: str, handler: Callable[[Message], Awaitable[None]]) -> None:
        self.subscriptions.append(prefix)


class Camera(Service):
    name = "camera"


async def test_a_service_runs_on_any_host_with_the_port(tmp_path: Path) -> None:
    host = FakeHost(tmp_path)
    cam = Camera()
    port: HostPort = host
    cam._host = port
    try:
        cam.store.set("frames", 3)
        assert cam.store.get("frames") == 3
        assert cam.data_dir == tmp_path / "camera" and cam.data_dir.is_dir()
        assert cam.options == {"gain": 2} and cam.throttle == 1
        await cam.publish("frame", {"n": 1})
        await cam.downlink("thumb", b"x", priority=2)
        await cam.event("exposed", Severity.LOW, event_id=7, ms=10)
        assert await cam.call("test", "ping", timeout=1.5) == "pong"

        async def handler(msg: Message) -> None: ...

        cam.subscribe("tm.test.", handler)
    finally:
        host.store.close()
    assert host.published == [("tm.camera.frame", {"n": 1}), ("dl.camera.thumb", {"priority": 2, "data": b"x"})]
    assert host.events == [("exposed", Severity.LOW, 7, {"ms": 10})]
    assert host.calls == [("test", "ping", {}, 1.5)]
    assert host.subscriptions == ["tm.test."]
    with pytest.raises(ValueError, match=r"downlink priority is 0\.\.7, got 9"):
        await cam.downlink("thumb", b"x", priority=9)
