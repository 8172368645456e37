"""The systemd notify protocol against sockets the tests own: exact datagrams, the watchdog interval, failures."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from flightos.kernel.notify import SdNotify


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    """A datagram socket bound in tmp_path, as systemd's would be; yields it and its NOTIFY_SOCKET value."""
    path = tmp_path / "notify.sock"
    if len(str(path)) > 100:  # sun_path is 108 bytes
        pytest.skip(f"tmp_path too long for an AF_UNIX socket: {path}")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(2.0)
    yield sock, str(path)
    sock.close()


def recv(sock: socket.socket) -> str:
    return sock.recv(4096).decode()


def test_messages_are_the_exact_datagrams(server: tuple[socket.socket, str]) -> None:
    sock, address = server
    with SdNotify.from_env({"NOTIFY_SOCKET": address}) as n:
        assert n.enabled
        n.ready()
        assert recv(sock) == "READY=1"
        n.ready("3 services ready")
        assert recv(sock) == "READY=1\nSTATUS=3 services ready"
        n.status("mode nominal")
        assert recv(sock) == "STATUS=mode nominal"
        n.watchdog()
        assert recv(sock) == "WATCHDOG=1"
        n.stopping()
        assert recv(sock) == "STOPPING=1"
        assert (n.sent, n.failures) == (5, 0)


def test_status_never_carries_a_newline(server: tuple[socket.socket, str]) -> None:
    sock, address = server
    n = SdNotify.from_env({"NOTIFY_SOCKET": address})
    n.status("line one\nWATCHDOG=1")
    assert recv(sock) == "STATUS=line one WATCHDOG=1"
    n.close()


def test_abstract_namespace_socket() -> None:
    name = f"flightos-test-notify-{os.getpid()}-{os.urandom(4).hex()}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name)
    sock.settimeout(2.0)
    try:
        n = SdNotify.from_env({"NOTIFY_SOCKET": "@" + name})
        n.ready()
        n.watchdog()
        assert recv(sock) == "READY=1"
        assert recv(sock) == "WATCHDOG=1"
        n.close()
    finally:
        sock.close()


def test_watchdog_interval_is_half_of_watchdog_usec() -> None:
    env = {"NOTIFY_SOCKET": "/nonexistent/notify", "WATCHDOG_USEC": "10000000"}
    assert SdNotify.from_env(env).watchdog_interval_s == 5.0
    assert SdNotify.from_env({**env, "WATCHDOG_PID": str(os.getpid())}).watchdog_interval_s == 5.0


def test_watchdog_of_another_pid_is_not_ours() -> None:
    env = {"NOTIFY_SOCKET": "/nonexistent/notify", "WATCHDOG_USEC": "10000000", "WATCHDOG_PID": str(os.getpid() + 1)}
    n = SdNotify.from_env(env)
    assert n.enabled
    assert n.watchdog_interval_s is None


@pytest.mark.parametrize("usec", ["", "0", "ten", "-5"])
def test_no_or_bad_watchdog_usec_means_no_watchdog(usec: str) -> None:
    assert SdNotify.from_env({"NOTIFY_SOCKET": "/x", "WATCHDOG_USEC": usec}).watchdog_interval_s is None


@pytest.mark.parametrize(
    "env", [{}, {"NOTIFY_SOCKET": ""}, {"WATCHDOG_USEC": "10000000"}, {"NOTIFY_SOCKET": "vsock:2:1234"}]
)
def test_disabled_without_a_usable_notify_socket(env: dict[str, str]) -> None:
    n = SdNotify.from_env(env)
    assert not n.enabled
    assert n.watchdog_interval_s is None
    n.ready("x")
    n.watchdog()
    n.status("x")
    n.stopping()
    assert not n.send("READY=1")
    assert (n.sent, n.failures) == (0, 0)
    n.close()


def test_default_environment_is_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert not SdNotify.from_env().enabled
    monkeypatch.setenv("NOTIFY_SOCKET", "/run/x")
    assert SdNotify.from_env().enabled


def test_a_vanished_socket_does_not_raise_and_is_counted(tmp_path: Path) -> None:
    path = tmp_path / "gone.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    n = SdNotify.from_env({"NOTIFY_SOCKET": str(path)})
    n.ready()
    sock.close()
    path.unlink()
    with capture_logs() as logs:
        n.watchdog()
        n.watchdog()
        assert not n.send("WATCHDOG=1")
    assert n.failures == 3
    warnings = [e for e in logs if e["log_level"] == "warning"]
    assert len(warnings) == 1  # one warning per outage, not one per ping
    assert "sd_notify" in warnings[0]["event"]
    # systemd comes back (a new socket at the same path): sends work again
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(2.0)
    try:
        n.watchdog()
        assert recv(sock) == "WATCHDOG=1"
        assert n.sent == 2
    finally:
        sock.close()
        n.close()


def test_a_full_receiver_does_not_block(server: tuple[socket.socket, str]) -> None:
    _sock, address = server  # never read: its queue fills up
    n = SdNotify.from_env({"NOTIFY_SOCKET": address})
    start = time.monotonic()
    for _ in range(2000):
        n.watchdog()
    assert time.monotonic() - start < 2.0
    assert n.sent > 0
    assert n.failures > 0  # EAGAIN, not a blocked send
    assert n.sent + n.failures == 2000
    n.close()


def test_close_disables(server: tuple[socket.socket, str]) -> None:
    _sock, address = server
    n = SdNotify.from_env({"NOTIFY_SOCKET": address})
    n.close()
    n.close()
    assert not n.enabled
    n.ready()
    assert n.sent == 0
    assert "disabled" in repr(n)
