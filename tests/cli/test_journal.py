"""Logging to the journal with native fields: the protocol, checked on a real AF_UNIX datagram socket."""

from __future__ import annotations

import array
import fcntl
import json
import os
import shutil
import socket
import struct
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from flightos import logs


def parse_entry(data: bytes) -> dict[str, str]:
    """Decode one native-protocol entry as journald does (``KEY=value`` lines, or the binary-safe form)."""
    fields: dict[str, str] = {}
    i = 0
    while i < len(data):
        nl = data.index(b"\n", i)
        line = data[i:nl]
        if b"=" in line:
            key, _, value = line.partition(b"=")
            fields[key.decode()] = value.decode()
            i = nl + 1
        else:
            (size,) = struct.unpack("<Q", data[nl + 1 : nl + 9])
            fields[line.decode()] = data[nl + 9 : nl + 9 + size].decode()
            assert data[nl + 9 + size : nl + 10 + size] == b"\n"
            i = nl + 10 + size
    return fields


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[socket.socket]:
    """A fake journald: a bound AF_UNIX datagram socket in a temporary directory."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(tmp_path / "journal.socket"))
    sock.settimeout(10)
    yield sock
    sock.close()


def test_encoding_uses_the_binary_form_only_for_values_with_newlines() -> None:
    """Plain values are KEY=value lines; a multi-line value (a traceback) is KEY, a 64-bit LE length, the bytes."""
    data = logs.encode_entry({"MESSAGE": "boom\nTraceback ...", "PRIORITY": "3"})
    assert data.startswith(b"MESSAGE\n" + struct.pack("<Q", 18) + b"boom\nTraceback ...\n")
    assert data.endswith(b"PRIORITY=3\n")
    assert parse_entry(data) == {"MESSAGE": "boom\nTraceback ...", "PRIORITY": "3"}
    assert logs.field_name("cpu-load %") == "CPU_LOAD__" and logs.field_name("_pid") == "PID"
    assert logs.field_name("2nd") == "F_2ND"


def test_a_service_logs_native_fields_to_the_journal(journal: socket.socket) -> None:
    """A process configured under systemd sends MESSAGE text, PRIORITY from the level, the service and event
    id as fields of their own; nothing goes to stderr and no JSON is inside MESSAGE."""
    code = (
        "import structlog\nfrom flightos import logs\n"
        "print(logs.configure('console', 'info', 'camera'))\n"
        "structlog.get_logger().warning('service.event', event_id=1234, message='lens cap on', incarnation=2)\n"
        "structlog.get_logger().debug('service.chatter')\n"
    )
    env = {**os.environ, logs.ENV_JOURNAL_SOCKET: journal.getsockname()}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 0 and proc.stdout == "journal\n" and proc.stderr == "", proc.stderr
    fields = parse_entry(journal.recv(1 << 16))
    assert fields["MESSAGE"] == "service.event: lens cap on incarnation=2"
    assert fields["PRIORITY"] == "4" and fields["SYSLOG_IDENTIFIER"] == "flightos"
    assert fields["FLIGHTOS_SERVICE"] == "camera" and fields["FLIGHTOS_EVENT_ID"] == "1234"
    assert fields["FLIGHTOS_EVENT"] == "service.event" and fields["FLIGHTOS_INCARNATION"] == "2"
    assert fields["FLIGHTOS_PROCESS"] == "camera"
    journal.setblocking(False)
    with pytest.raises(BlockingIOError):  # the debug line is below the level
        journal.recv(1 << 16)


def test_the_kernels_lines_about_a_service_carry_that_service() -> None:
    """`journalctl FLIGHTOS_SERVICE=camera` also finds what the kernel said about camera (a crash, a restart)."""
    fields = logs.journal_fields(
        {
            "event": "service_crashed",
            "level": "error",
            "proc": "kernel",
            "event_id": 2003,
            "msg": "camera exited with code 70",
            "service": "camera",
            "exit_code": 70,
        },
        "kernel",
    )
    assert (fields["FLIGHTOS_SERVICE"], fields["FLIGHTOS_PROCESS"], fields["PRIORITY"]) == ("camera", "kernel", "3")
    assert fields["MESSAGE"] == "service_crashed: camera exited with code 70 service=camera exit_code=70"
    assert fields["FLIGHTOS_EXIT_CODE"] == "70" and fields["FLIGHTOS_EVENT_ID"] == "2003"


def test_an_entry_larger_than_a_datagram_goes_as_a_sealed_memfd(journal: socket.socket) -> None:
    """Past the datagram limit the entry is written to a sealed memfd passed with SCM_RIGHTS, as journald expects."""
    sender = logs.JournalSender(journal.getsockname())
    sender.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 64 * 1024)
    big = "x" * (512 * 1024)
    sender.send(logs.encode_entry({"MESSAGE": big, "FLIGHTOS_SERVICE": "payload"}))
    sender.close()
    fds = array.array("i")
    data, anc, _, _ = journal.recvmsg(1024, socket.CMSG_LEN(fds.itemsize))
    assert data == b""
    level, kind, raw = anc[0]
    assert (level, kind) == (socket.SOL_SOCKET, socket.SCM_RIGHTS)
    fds.frombytes(raw[: fds.itemsize])
    seals = fcntl.fcntl(fds[0], fcntl.F_GET_SEALS)
    assert seals & fcntl.F_SEAL_WRITE and seals & fcntl.F_SEAL_SHRINK and seals & fcntl.F_SEAL_SEAL
    with os.fdopen(fds[0], "rb") as fh:  # journald maps the whole file: read it from the start
        fh.seek(0)
        fields = parse_entry(fh.read())
    assert fields == {"MESSAGE": big, "FLIGHTOS_SERVICE": "payload"}


def test_the_journal_is_used_only_when_stderr_is_the_journal_stream(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """$JOURNAL_STREAM must name stderr's device and inode (a redirected stderr is not the journal)."""
    sock = tmp_path / "socket"
    sock.touch()
    monkeypatch.setattr(logs, "JOURNAL_SOCKET", str(sock))
    with open(tmp_path / "stderr", "w") as fake:
        monkeypatch.setattr(sys, "stderr", fake)
        st = os.fstat(fake.fileno())
        assert logs.journal_socket({"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"}) == str(sock)
        assert logs.journal_socket({"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino + 1}"}) is None
        assert logs.journal_socket({}) is None


def test_log_files_rotate_and_stay_bounded(tmp_path: Path) -> None:
    """Past max_bytes the file becomes .1, .1 becomes .2, and the oldest is dropped: at most 3 files."""
    out = logs.RotatingFile(tmp_path / "camera.log", max_bytes=100, backups=2)
    for i in range(30):
        out.write(f'{{"n": {i:02d}, "pad": "{"p" * 20}"}}')
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["camera.log", "camera.log.1", "camera.log.2"]
    assert all(p.stat().st_size <= 100 for p in tmp_path.iterdir())
    assert '"n": 29' in (tmp_path / "camera.log").read_text()


def _journald() -> tuple[str, str]:
    """The systemd-journald binary and '' when a private one can run here, else ('', why not)."""
    exe = next(
        (p for p in ("/lib/systemd/systemd-journald", "/usr/lib/systemd/systemd-journald") if os.path.exists(p)), ""
    )
    if not exe or shutil.which("journalctl") is None:
        return "", "systemd-journald/journalctl are not installed (Debian/Ubuntu package 'systemd')"
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        return "", "a private journald needs root and unshare(1) for a mount namespace of its own"
    probe = subprocess.run(["unshare", "-m", "true"], capture_output=True, timeout=30)
    if probe.returncode != 0:
        return "", f"unshare -m is refused here: {probe.stderr.decode().strip()}"
    return exe, ""


JOURNALD, NO_JOURNALD = _journald()

PRIVATE_JOURNAL = r"""
set -e
mount -t tmpfs tmpfs /run/systemd; mkdir -p /run/log; mount -t tmpfs tmpfs /run/log
[ -d /var/log/journal ] && mount -t tmpfs tmpfs /var/log/journal
mkdir -p /run/systemd/journal /run/log/journal
"$JOURNALD" >/dev/null 2>&1 &
trap 'kill $! 2>/dev/null; wait 2>/dev/null || true' EXIT
for i in $(seq 100); do [ -S /run/systemd/journal/socket ] && break; sleep 0.05; done
FLIGHTOS_JOURNAL_SOCKET=/run/systemd/journal/socket "$PYTHON" -c "$SENDER"
journalctl --no-pager --all -o json FLIGHTOS_SERVICE=camera
"""


@pytest.mark.skipif(not JOURNALD, reason=NO_JOURNALD)
def test_a_real_journald_stores_the_native_fields() -> None:
    """systemd-journald itself (a private one, in a mount namespace of its own) stores the fields, the
    binary-form traceback and the memfd-passed large entry, and journalctl selects them by FLIGHTOS_SERVICE."""
    sender = (
        "import structlog\nfrom flightos import logs\nlogs.configure('console', 'info', 'camera')\n"
        "log = structlog.get_logger()\n"
        "log.warning('service.event', event_id=1234, message='lens cap on', incarnation=2)\n"
        "log.info('service.big', blob='x' * 400000)\n"
        "try:\n    raise RuntimeError('boom')\nexcept RuntimeError:\n    log.exception('service.crashed')\n"
    )
    env = {**os.environ, "JOURNALD": JOURNALD, "PYTHON": sys.executable, "SENDER": sender}
    proc = subprocess.run(
        ["unshare", "-m", "--propagation", "private", "sh", "-c", PRIVATE_JOURNAL],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    entries = {e["FLIGHTOS_EVENT"]: e for e in map(json.loads, proc.stdout.splitlines())}
    event = entries["service.event"]
    assert event["MESSAGE"] == "service.event: lens cap on incarnation=2" and event["PRIORITY"] == "4"
    assert event["FLIGHTOS_EVENT_ID"] == "1234" and event["SYSLOG_IDENTIFIER"] == "flightos"
    assert entries["service.big"]["FLIGHTOS_BLOB"] == "x" * 400000  # too large for a datagram: the memfd
    crashed = entries["service.crashed"]
    assert crashed["PRIORITY"] == "3" and crashed["MESSAGE"].endswith("RuntimeError: boom")
