"""The MQTT peer of ``make bench``: a broker of the bench's own that always stops, and a missing package named."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from bench import mqtt


def _listening(port: int) -> bool:
    """Whether something accepts TCP connections on the loopback port."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def _peer_or_skip() -> None:
    """Skip unless mosquitto and paho-mqtt are both installed (the bench installs them; the test suite does not)."""
    try:
        mqtt.paho()
    except mqtt.Unavailable as exc:
        pytest.skip(str(exc))
    if mqtt._broker_path() is None:
        pytest.skip("mosquitto is not installed (make bench installs it with apt when run as root)")


@pytest.fixture
def spawn_tracker_stopped() -> Iterator[None]:
    """The responder is a spawned process: stop the resource tracker spawning starts, which would outlive the test."""
    yield
    from multiprocessing import resource_tracker

    resource_tracker._resource_tracker._stop()


@pytest.mark.usefixtures("spawn_tracker_stopped")
def test_request_reply_through_a_broker_that_stops_even_when_the_block_fails() -> None:
    _peer_or_skip()
    port = 0
    with pytest.raises(RuntimeError, match="the figure failed"), mqtt.request_reply() as req:
        port = int(req.c._port)
        assert _listening(port)
        rtts = req.block(b"x" * 97, 5)
        assert len(rtts) == 5 and all(t > 0 for t in rtts)
        raise RuntimeError("the figure failed")
    assert port and not _listening(port)


def test_a_missing_client_package_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    import builtins

    real = builtins.__import__

    def no_paho(name: str, *args: object, **kwargs: object) -> object:
        if name.startswith("paho"):
            raise ImportError(f"No module named {name!r}")
        return real(name, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(builtins, "__import__", no_paho)
    with pytest.raises(mqtt.Unavailable, match="paho-mqtt is not installed"):
        mqtt.paho()


def test_a_missing_broker_is_named_when_it_cannot_be_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mqtt, "_broker_path", lambda: None)
    monkeypatch.setattr(mqtt.os, "geteuid", lambda: 1000)
    with pytest.raises(mqtt.Unavailable, match="mosquitto broker is not installed"):
        mqtt.broker_path()
