"""`flightos ground` with a bad endpoint or parameter value: a clear usage error; the target's endpoint by default."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from flightos.ground import pus


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "flightos.cli.main", *args],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )


@pytest.mark.parametrize(
    ("to", "says"),
    [
        ("foo", "--to: expected HOST:PORT with a port in 1..65535, got 'foo'"),
        ("127.0.0.1:bar", "--to: expected HOST:PORT with a port in 1..65535, got '127.0.0.1:bar'"),
        ("127.0.0.1:99999", "--to: expected HOST:PORT with a port in 1..65535, got '127.0.0.1:99999'"),
        ("no-such-host.invalid:10025", "ground endpoint no-such-host.invalid:10025: "),
    ],
)
def test_bad_endpoint_is_a_usage_error(to: str, says: str) -> None:
    """Was exit 70 'internal error: ValueError/gaierror/OverflowError'."""
    res = cli("ground", "ping", "--no-auth", "--to", to, "--timeout", "1")
    assert res.returncode == 2 and res.stderr.startswith(f"flightos: {says}"), res.stderr
    assert "internal error" not in res.stderr


def test_bad_udp_bind_in_the_target_is_named() -> None:
    res = cli("ground", "ping", "--no-auth", "--set", "services.ground.options.udp_bind=nowhere", "--timeout", "1")
    assert res.returncode == 2, res.stderr
    assert "services.ground.options.udp_bind: expected HOST:PORT" in res.stderr and "'nowhere'" in res.stderr


def test_console_speaks_to_the_targets_udp_bind_without_to() -> None:
    """The console takes the endpoint from the target and its --set overrides, as its help says (was: always :10025)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(20)
    port = sock.getsockname()[1]

    def spacecraft() -> None:
        tc, addr = sock.recvfrom(65536)
        rid = pus.request_id_of(tc)
        assert rid is not None
        sock.sendto(pus.verification(7, rid, 100, 1), addr)
        sock.sendto(pus.tm(200, 1, b"\x01", 100, 2), addr)

    fake = threading.Thread(target=spacecraft, daemon=True)
    fake.start()
    res = cli(
        "ground",
        "tm",
        "--no-auth",
        "--set",
        f"services.ground.options.udp_bind=0.0.0.0:{port}",
        "--count",
        "1",
        "--timeout",
        "5",
    )
    fake.join(5)
    sock.close()
    assert res.returncode == 0, res.stderr
    assert "TM[200,1] seq 2: not in the mission database, 1 bytes" in res.stdout


def test_timeout_names_the_endpoint_asked() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as quiet:  # bound, never answers
        quiet.bind(("127.0.0.1", 0))
        to = f"127.0.0.1:{quiet.getsockname()[1]}"
        res = cli("ground", "ping", "--no-auth", "--to", to, "--timeout", "0.5")
    assert res.returncode == 4 and f"asked the ground service at {to}" in res.stderr, res.stderr


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["test.greeting"], "ground param set test.greeting VALUE: expected one value, got 0"),
        (["test.greeting", "a", "b"], "ground param set test.greeting VALUE: expected one value, got 2"),
        (["sar.scene_px", "abc"], "ground param set sar.scene_px: argument 'VALUE' expects int, got 'abc'"),
    ],
)
def test_param_set_checks_its_value_before_sending(args: list[str], says: str) -> None:
    """Was: no value set the parameter to '' and said 'set'; a non-number for an int was an internal error."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as quiet:
        quiet.bind(("127.0.0.1", 0))
        quiet.settimeout(0.2)
        res = cli(
            "ground",
            "param",
            "set",
            *args,
            "--no-auth",
            "--to",
            f"127.0.0.1:{quiet.getsockname()[1]}",
            "--timeout",
            "1",
        )
        with pytest.raises(TimeoutError):
            quiet.recvfrom(65536)  # nothing was sent
    assert res.returncode == 2 and res.stderr.strip() == f"flightos: {says}", res.stderr


def test_tm_says_how_many_datagrams_were_not_packets() -> None:
    """Was: bytes that are not a PUS TM packet vanished without a word."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(20)

    def spacecraft() -> None:
        tc, addr = sock.recvfrom(65536)
        rid = pus.request_id_of(tc)
        assert rid is not None
        sock.sendto(pus.verification(7, rid, 100, 1), addr)
        sock.sendto(b"\x00" * 7, addr)
        sock.sendto(b"not a packet", addr)
        sock.sendto(pus.tm(200, 1, b"\x01", 100, 2), addr)

    fake = threading.Thread(target=spacecraft, daemon=True)
    fake.start()
    res = cli(
        "ground", "tm", "--no-auth", "--to", f"127.0.0.1:{sock.getsockname()[1]}", "--count", "1", "--timeout", "5"
    )
    fake.join(5)
    sock.close()
    assert res.returncode == 0, res.stderr
    assert "TM[200,1] seq 2" in res.stdout
    assert "flightos: ignored 2 datagram(s) that are not PUS telemetry packets" in res.stderr


@pytest.mark.parametrize(
    ("args", "code", "says"),
    [
        (["--apid", "99999", "ping"], 2, "--apid 99999: expected 0..2047"),
        (["--timeout", "-1", "ping"], 2, "--timeout -1: expected seconds > 0"),
        (["--count", "0", "tm"], 2, "--count 0: expected 1 or more packets"),
        (["schedule", "add", "+-5", "test", "ping"], 2, "ground schedule add: '+-5': expected seconds from now > 0"),
    ],
)
def test_console_options_are_checked_before_anything_is_sent(args: list[str], code: int, says: str) -> None:
    """Was: --apid 99999 an internal error (exit 70); the others sent a TC and timed out, or scheduled in the past."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as quiet:
        quiet.bind(("127.0.0.1", 0))
        quiet.settimeout(0.2)
        res = cli("ground", *args, "--no-auth", "--to", f"127.0.0.1:{quiet.getsockname()[1]}")
        with pytest.raises(TimeoutError):
            quiet.recvfrom(65536)
    assert res.returncode == code and res.stderr.strip() == f"flightos: {says}", res.stderr


def test_a_key_file_that_is_not_json_is_named(tmp_path: Path) -> None:
    """Was exit 70, 'internal error: ValueError'; `flightos keys list` already said it (exit 5)."""
    bad = tmp_path / "keys.json"
    bad.write_bytes(b"\xef\xbb\x00 not json")
    res = cli("ground", "ping", "--key-file", str(bad), "--to", "127.0.0.1:9", "--timeout", "1")
    assert res.returncode == 5 and res.stderr.startswith(f"flightos: {bad}: unreadable key file"), res.stderr


def test_mdb_writes_into_a_missing_directory_name_the_file(tmp_path: Path) -> None:
    """Was exit 70, 'internal error: FileNotFoundError' (of a hidden .assign.tmp file for assign)."""
    table = tmp_path / "nodir" / "mission.toml"
    res = cli("mdb", "assign", "--table", str(table))
    assert (
        res.returncode == 5
        and res.stderr.strip() == f"flightos: mdb assign: cannot write {table}: No such file or directory"
    ), res.stderr
    out = tmp_path / "nodir" / "mdb.xml"
    res = cli("mdb", "export", "--format", "xtce", "--out", str(out))
    assert (
        res.returncode == 5
        and res.stderr.strip() == f"flightos: mdb export: cannot write --out {out}: No such file or directory"
    ), res.stderr


def test_a_target_whose_ground_takes_any_free_port_asks_for_to() -> None:
    res = cli("ground", "ping", "--no-auth", "--set", "services.ground.options.udp_bind=127.0.0.1:0")
    assert res.returncode == 2 and res.stderr.strip() == (
        "flightos: target sim-radhard: services.ground.options.udp_bind is '127.0.0.1:0': the ground service takes "
        "any free port, so give its --to HOST:PORT"
    ), res.stderr
