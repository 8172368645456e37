"""The systemd notify protocol (``sd_notify(3)``) without a dependency.

systemd runs a ``Type=notify`` unit with ``$NOTIFY_SOCKET`` set to a datagram ``AF_UNIX`` socket
(a path, or ``@name`` for the abstract namespace). The service sends newline-separated
``KEY=VALUE`` assignments to it: ``READY=1`` once started, ``WATCHDOG=1`` at least every
``$WATCHDOG_USEC`` microseconds (when the unit has ``WatchdogSec=``), ``STATUS=...`` for
``systemctl status`` and ``STOPPING=1`` when shutting down.

Without ``$NOTIFY_SOCKET`` (not started by systemd) every method is a no-op. A send never blocks
(the socket is non-blocking) and never raises: a failure is logged and counted in ``failures``.

    notify = SdNotify.from_env()
    notify.ready("4 services ready")
    ...                                   # every notify.watchdog_interval_s while healthy:
    notify.watchdog()
    notify.stopping()
    notify.close()
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from types import TracebackType

import structlog

log = structlog.get_logger("flightos.kernel")

ENV_SOCKET = "NOTIFY_SOCKET"
ENV_WATCHDOG_USEC = "WATCHDOG_USEC"
ENV_WATCHDOG_PID = "WATCHDOG_PID"


class SdNotify:
    """Talks to systemd through $NOTIFY_SOCKET (a datagram AF_UNIX socket; '@' prefix = abstract namespace)."""

    def __init__(self, address: str | None, watchdog_usec: int | None = None) -> None:
        """``address`` as in ``$NOTIFY_SOCKET`` (None: disabled); ``watchdog_usec`` as in ``$WATCHDOG_USEC``."""
        self.address: str | None = address
        self._target: str | None = None
        self._sock: socket.socket | None = None
        #: datagrams sent, and sends that failed (each failure is also logged)
        self.sent = 0
        self.failures = 0
        self._failing = False
        #: how often to call watchdog(): half of $WATCHDOG_USEC; None when systemd expects no pings
        self.watchdog_interval_s: float | None = None
        if not address:
            return
        if address.startswith("@"):
            self._target = "\0" + address[1:]
        elif address.startswith("/"):
            self._target = address
        else:  # e.g. systemd's vsock: addresses, for VMs; not needed on a board
            log.warning("sd_notify disabled: unsupported NOTIFY_SOCKET address", address=address)
            return
        try:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            sock.setblocking(False)
        except OSError as exc:
            log.warning("sd_notify disabled: cannot create a socket", error=str(exc))
            return
        self._sock = sock
        if watchdog_usec is not None and watchdog_usec > 0:
            self.watchdog_interval_s = watchdog_usec / 1e6 / 2

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> SdNotify:
        """From ``$NOTIFY_SOCKET``, ``$WATCHDOG_USEC`` and ``$WATCHDOG_PID`` (disabled when the socket is unset).

        The watchdog applies only if ``$WATCHDOG_PID`` is unset or names this process (systemd
        sets it to the main pid; a child that inherited the environment must not ping).
        """
        usec: int | None = None
        raw_usec = environ.get(ENV_WATCHDOG_USEC, "").strip()
        raw_pid = environ.get(ENV_WATCHDOG_PID, "").strip()
        if raw_usec:
            try:
                usec = int(raw_usec)
            except ValueError:
                log.warning("ignoring a malformed WATCHDOG_USEC", value=raw_usec)
        if usec is not None and raw_pid:
            try:
                mine = int(raw_pid) == os.getpid()
            except ValueError:
                mine = False
            if not mine:
                usec = None
        return cls(environ.get(ENV_SOCKET) or None, usec)

    @property
    def enabled(self) -> bool:
        """True when connected to systemd (False when not started by it, or after close())."""
        return self._sock is not None

    # ---- the messages ------------------------------------------------------------------------
    def ready(self, status: str = "") -> None:
        """Startup finished: ``READY=1`` (with ``STATUS=`` when given)."""
        self.send("READY=1", *([f"STATUS={_one_line(status)}"] if status else []))

    def watchdog(self) -> None:
        """Keep-alive ping: ``WATCHDOG=1``; send it every ``watchdog_interval_s`` while healthy."""
        self.send("WATCHDOG=1")

    def status(self, text: str) -> None:
        """A one-line status shown by ``systemctl status``: ``STATUS=...``."""
        self.send(f"STATUS={_one_line(text)}")

    def stopping(self) -> None:
        """Shutdown began: ``STOPPING=1``."""
        self.send("STOPPING=1")

    def send(self, *assignments: str) -> bool:
        """Send ``KEY=VALUE`` assignments as one datagram; True if it went out. Never raises, never blocks."""
        if self._sock is None or self._target is None or not assignments:
            return False
        data = "\n".join(assignments).encode("utf-8", errors="replace")
        try:
            self._sock.sendto(data, self._target)
        except OSError as exc:  # gone (ENOENT, ECONNREFUSED), full (EAGAIN), ...
            self.failures += 1
            if not self._failing:  # one warning per outage, not one per ping
                log.warning(
                    "sd_notify send failed",
                    address=self.address,
                    error=str(exc),
                    message=assignments[0],
                    failures=self.failures,
                )
            self._failing = True
            return False
        if self._failing:
            log.info("sd_notify sends work again", address=self.address, failures=self.failures)
            self._failing = False
        self.sent += 1
        return True

    # ---- lifecycle ---------------------------------------------------------------------------
    def close(self) -> None:
        """Close the socket; later calls are no-ops."""
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def __enter__(self) -> SdNotify:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = f"address={self.address!r}" if self.enabled else "disabled"
        return (
            f"SdNotify({state}, watchdog_interval_s={self.watchdog_interval_s}, sent={self.sent}, "
            f"failures={self.failures})"
        )


def _one_line(text: str) -> str:
    """A value must not contain a newline: it would start a new assignment."""
    return " ".join(text.splitlines())
