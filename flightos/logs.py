"""Structured logging for the kernel and services: to the systemd journal with native fields when the
process runs under systemd, otherwise console or JSON lines on stderr plus a bounded file per process.

The journal is written with its native protocol (one datagram of ``KEY=value`` fields on
``/run/systemd/journal/socket``; see systemd's "Native Journal Protocol"), so ``journalctl
FLIGHTOS_SERVICE=camera`` selects one service and ``PRIORITY`` follows the log level. No systemd
library is needed.
"""

from __future__ import annotations

import array
import contextlib
import errno
import fcntl
import json
import logging
import os
import re
import socket
import struct
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import structlog

_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}

JOURNAL_SOCKET = "/run/systemd/journal/socket"
ENV_JOURNAL_SOCKET = "FLIGHTOS_JOURNAL_SOCKET"
"""Send to this journal socket whatever stderr is (tests point it at a socket of their own)."""
SYSLOG_IDENTIFIER = "flightos"
#: syslog priorities (what journalctl -p filters on) of structlog's level names
PRIORITY = {"debug": 7, "info": 6, "warning": 4, "warn": 4, "error": 3, "exception": 3, "critical": 2}
#: keys of an event that become their own journal fields rather than FLIGHTOS_<KEY>
_OWN_KEYS = ("event", "level", "proc", "timestamp", "event_id", "msg", "message", "exception")
LOG_MAX_BYTES = 1 << 20
"""A process's log file is rotated past this size ..."""
LOG_BACKUPS = 2
"""... keeping this many older files (``<name>.log.1``, ``<name>.log.2``)."""
ENV_RICH_TRACEBACKS = "FLIGHTOS_RICH_TRACEBACKS"
"""Set to 1 for rich tracebacks with locals on the console: a developer's choice, never a board's default
(formatting one takes 0.7-1 s of the service's own loop on a PC, several times that on a slow board)."""


# ---- the journal's native protocol -------------------------------------------------------------------
def field_name(key: str) -> str:
    """A journal field name for ``key``: upper case letters, digits and '_', not starting with '_' (<= 64)."""
    name = re.sub(r"[^A-Z0-9_]", "_", key.upper()).lstrip("_")
    if not name or name[0].isdigit():
        name = "F_" + name
    return name[:64]


def encode_entry(fields: Mapping[str, str]) -> bytes:
    """One journal entry: ``KEY=value\\n``, or ``KEY\\n`` + 64-bit little-endian length + value + ``\\n``
    for a value holding a newline (the protocol's binary form)."""
    out = bytearray()
    for key, value in fields.items():
        data = value.encode("utf-8", "replace")
        if b"\n" in data:
            out += key.encode() + b"\n" + struct.pack("<Q", len(data)) + data + b"\n"
        else:
            out += key.encode() + b"=" + data + b"\n"
    return bytes(out)


JOURNAL_SEND_TIMEOUT_S = 0.2
"""Longest a log call waits for a backed-up journald: past it the entry is dropped and counted, so logging
never holds a service's event loop (and its heartbeats) for longer."""


class JournalSender:
    """Datagrams to journald's socket; an entry too large for one datagram goes as a sealed memfd."""

    def __init__(self, path: str = JOURNAL_SOCKET) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        usec = int(JOURNAL_SEND_TIMEOUT_S * 1e6)
        timeout = struct.pack("ll", usec // 1_000_000, usec % 1_000_000)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, timeout)
        self.dropped = 0
        """Entries dropped since the last one the journal took (told in that entry's FLIGHTOS_DROPPED_BEFORE)."""

    def send(self, payload: bytes) -> None:
        """Send one encoded entry; drop it (counted) if the journal is busy past the timeout; raise OSError when
        the journal cannot take it at all."""
        if self.dropped:
            payload += f"FLIGHTOS_DROPPED_BEFORE={self.dropped}\n".encode()
        try:
            self.sock.sendto(payload, self.path)
        except OSError as exc:
            if exc.errno in (errno.EAGAIN, errno.EWOULDBLOCK):
                self.dropped += 1
                return
            if exc.errno not in (errno.EMSGSIZE, errno.ENOBUFS):
                raise
            self._send_memfd(payload)
        self.dropped = 0

    def _send_memfd(self, payload: bytes) -> None:
        fd = os.memfd_create("flightos-journal", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
        try:
            os.write(fd, payload)
            seals = fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_WRITE | fcntl.F_SEAL_SEAL
            fcntl.fcntl(fd, fcntl.F_ADD_SEALS, seals)
            rights = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [fd]).tobytes())]
            self.sock.sendmsg([], rights, 0, self.path)
        finally:
            os.close(fd)

    def close(self) -> None:
        self.sock.close()


def journal_socket(environ: Mapping[str, str] = os.environ) -> str | None:
    """The journal socket to log to: ``$FLIGHTOS_JOURNAL_SOCKET``, or journald's when stderr is the journal
    stream systemd gave this process (``$JOURNAL_STREAM`` names its device and inode); else None."""
    forced = environ.get(ENV_JOURNAL_SOCKET)
    if forced:
        return forced
    stream = environ.get("JOURNAL_STREAM", "")
    dev, _, ino = stream.partition(":")
    if not (dev.isdigit() and ino.isdigit()) or not os.path.exists(JOURNAL_SOCKET):
        return None
    try:
        st = os.fstat(sys.stderr.fileno())
    except (OSError, ValueError, AttributeError):
        return None
    return JOURNAL_SOCKET if (st.st_dev, st.st_ino) == (int(dev), int(ino)) else None


def journal_fields(event: Mapping[str, Any], process: str) -> dict[str, str]:
    """The native fields of one log event: MESSAGE (readable text), PRIORITY, SYSLOG_IDENTIFIER,
    FLIGHTOS_SERVICE (the service the line is about: its own process's, or the kernel's lines naming it),
    FLIGHTOS_PROCESS (kernel or the service), FLIGHTOS_EVENT, FLIGHTOS_EVENT_ID, and FLIGHTOS_<KEY> for
    every other key."""
    name = str(event.get("event", ""))
    text = event.get("msg", event.get("message"))
    proc = str(event.get("proc", process))
    extras = {k: v for k, v in event.items() if k not in _OWN_KEYS}
    message = name + (f": {text}" if text not in (None, "") else "")
    if extras:
        message += " " + " ".join(f"{k}={_text(v)}" for k, v in extras.items())
    if event.get("exception"):
        message += "\n" + str(event["exception"])
    fields = {
        "MESSAGE": message,
        "PRIORITY": str(PRIORITY.get(str(event.get("level", "info")), 6)),
        "SYSLOG_IDENTIFIER": SYSLOG_IDENTIFIER,
        "FLIGHTOS_SERVICE": str(event.get("service") or proc),
        "FLIGHTOS_PROCESS": proc,
        "FLIGHTOS_EVENT": name,
    }
    if event.get("event_id") is not None:
        fields["FLIGHTOS_EVENT_ID"] = str(event["event_id"])
    for k, v in extras.items():
        if k != "service":
            fields.setdefault("FLIGHTOS_" + field_name(k), _text(v))
    return fields


def _text(v: Any) -> str:
    return v if isinstance(v, str) else json.dumps(v, default=str)


class _JournalLogger:
    """structlog's final logger under systemd: sends the encoded entry, falls back to stderr if it cannot."""

    def __init__(self, sender: JournalSender) -> None:
        self.sender = sender

    def msg(self, payload: bytes) -> None:
        try:
            self.sender.send(payload)
        except OSError as exc:
            text = payload.decode("utf-8", "replace").replace("\n", " | ")
            print(f"flightos: journal unavailable ({exc.strerror or exc}): {text}", file=sys.stderr)

    log = debug = info = warn = warning = error = err = critical = exception = fatal = failure = msg


# ---- per-process log files ---------------------------------------------------------------------------
def log_file(log_dir: Path, process: str) -> Path:
    """Where one process's log lines go (``kernel.log``, ``<service>.log``)."""
    return log_dir / f"{process}.log"


class RotatingFile:
    """Append JSON lines to a file; past ``max_bytes`` it becomes ``.1`` (and ``.1`` becomes ``.2`` ...)."""

    def __init__(self, path: Path, max_bytes: int = LOG_MAX_BYTES, backups: int = LOG_BACKUPS) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.backups = backups

    def write(self, line: str) -> None:
        """Append one line (rotating first when the file is full); a failing disk never stops the caller."""
        data = (line.rstrip("\n") + "\n").encode("utf-8", "replace")
        with contextlib.suppress(OSError):
            if self.path.stat().st_size + len(data) > self.max_bytes:
                self._rotate()
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)
        except OSError:
            return
        try:
            os.write(fd, data)
        except OSError:
            pass
        finally:
            os.close(fd)

    def _rotate(self) -> None:
        for n in range(self.backups, 0, -1):
            older = self.path.with_name(f"{self.path.name}.{n}")
            newer = self.path.with_name(f"{self.path.name}.{n - 1}") if n > 1 else self.path
            with contextlib.suppress(FileNotFoundError):
                os.replace(newer, older)
        if self.backups == 0:
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()


def _tee(out: RotatingFile) -> structlog.types.Processor:
    def write(_: object, __: str, event: structlog.types.EventDict) -> structlog.types.EventDict:
        out.write(json.dumps(event, default=str))
        return event

    return write


# ---- configuration -----------------------------------------------------------------------------------
def configure(fmt: str = "console", level: str = "info", process: str = "", *, log_dir: Path | None = None) -> str:
    """Set up structlog once per process; ``process`` tags every line (kernel or service name).

    Under systemd the entries go to the journal with native fields (``fmt`` does not apply); otherwise to
    stderr as ``fmt``, and as JSON lines to ``<log_dir>/<process>.log`` when ``log_dir`` is given (rotated,
    at most ``LOG_BACKUPS + 1`` files of ``LOG_MAX_BYTES``). Returns where the log goes: "journal" or "stderr".
    """
    processors: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    if process:
        processors.append(_tag(process))
    wrapper = structlog.make_filtering_bound_logger(_LEVELS.get(level, logging.INFO))
    path = journal_socket()
    if path is not None:
        sender = JournalSender(path)
        processors += [structlog.processors.format_exc_info, _journal_renderer(process)]
        structlog.configure(
            processors=processors,
            wrapper_class=wrapper,
            logger_factory=lambda *_: _JournalLogger(sender),
            cache_logger_on_first_use=False,
        )
        return "journal"
    if log_dir is not None and process:
        try:
            log_dir.mkdir(parents=True, exist_ok=True)
        except OSError:
            pass
        else:
            processors += [structlog.processors.format_exc_info, _tee(RotatingFile(log_file(log_dir, process)))]
    if fmt != "json" and structlog.processors.format_exc_info not in processors:
        processors.append(structlog.dev.set_exc_info)
    elif fmt == "json" and structlog.processors.format_exc_info not in processors:
        processors.append(structlog.processors.format_exc_info)
    renderer: structlog.types.Processor
    if fmt == "json":
        renderer = structlog.processors.JSONRenderer()
    else:
        rich = os.environ.get(ENV_RICH_TRACEBACKS) == "1"
        renderer = structlog.dev.ConsoleRenderer(
            colors=sys.stderr.isatty(),
            exception_formatter=structlog.dev.default_exception_formatter if rich else structlog.dev.plain_traceback,
        )
    structlog.configure(
        processors=[*processors, renderer],
        wrapper_class=wrapper,
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )
    return "stderr"


def _journal_renderer(process: str) -> structlog.types.Processor:
    def render(_: object, __: str, event: structlog.types.EventDict) -> bytes:
        return encode_entry(journal_fields(event, process))

    return render


def _tag(process: str) -> structlog.types.Processor:
    def add(_: object, __: str, event: structlog.types.EventDict) -> structlog.types.EventDict:
        event.setdefault("proc", process)
        return event

    return add


LOG_LINK = "logs"
"""The runtime directory's link to the log directory of the kernel that runs there."""


def link_log_dir(runtime_dir: Path, log_dir: Path) -> None:
    """Point ``<runtime_dir>/logs`` at ``log_dir`` so that ``flightos logs`` finds a running kernel's files."""
    link = runtime_dir / LOG_LINK
    with contextlib.suppress(OSError):
        if link.is_symlink():
            link.unlink()
        link.symlink_to(log_dir.resolve(), target_is_directory=True)
