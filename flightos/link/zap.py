"""The ZAP allow-list and handshake watch: who may connect to this kernel's link endpoint, and who was refused.

A thread (like the libzmq proxy) answers ZAP requests so handshakes never wait on the event loop,
and reads the endpoint's monitor so that failures ZAP never sees (plaintext, a wrong server key)
are counted and reported too.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import structlog
import zmq
from zmq.utils import z85
from zmq.utils.monitor import parse_monitor_message

log = structlog.get_logger("flightos.link")

ZAP_ENDPOINT = "inproc://zeromq.zap.01"
DOMAIN = b"flightos"
_PLAINTEXT = zmq.PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH
_CRYPTO = {zmq.PROTOCOL_ERROR_ZMTP_CRYPTOGRAPHIC, zmq.PROTOCOL_ERROR_ZMTP_KEY_EXCHANGE}

Report = Callable[[str, str, int], None]
"""Called (from the thread) with a refusal reason, a detail and that reason's count."""


class Gatekeeper:
    """Answers ZAP for the link endpoint from an allow-list of CURVE public keys, and counts refusals."""

    def __init__(self, ctx: zmq.Context[zmq.Socket[bytes]], allowed: dict[bytes, str]) -> None:
        self.ctx = ctx
        self._allowed = dict(allowed)
        self._lock = threading.Lock()
        self.refused: dict[str, int] = {}
        self.admitted: dict[str, int] = {}
        self.on_refused: Report | None = None
        self._zap: zmq.Socket[bytes] = ctx.socket(zmq.REP)
        self._zap.setsockopt(zmq.LINGER, 0)
        self._zap.bind(ZAP_ENDPOINT)
        self._monitor: zmq.Socket[bytes] | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="flightos-zap", daemon=True)

    def allow(self, allowed: dict[bytes, str]) -> None:
        """Replace the allow-list (Z85 public key -> identity), e.g. after a key rotation."""
        with self._lock:
            self._allowed = dict(allowed)

    def watch(self, sock: zmq.Socket[bytes]) -> None:
        """Watch a CURVE server socket's handshakes; call before :meth:`start`."""
        events = (
            zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL | zmq.EVENT_HANDSHAKE_FAILED_AUTH | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL
        )
        self._monitor = sock.get_monitor_socket(events)

    def start(self) -> None:
        """Serve on a daemon thread until :meth:`close`."""
        self._thread.start()

    def close(self) -> None:
        """Stop the thread and close its sockets."""
        self._stop.set()
        self._thread.join(timeout=2.0)
        self._zap.close(linger=0)
        if self._monitor is not None:
            self._monitor.close(linger=0)

    def _count(self, reason: str, detail: str) -> None:
        with self._lock:
            n = self.refused[reason] = self.refused.get(reason, 0) + 1
        if n <= 5 or n % 100 == 0:
            log.warning("link.refused", reason=reason, detail=detail, count=n)
            if self.on_refused is not None:
                self.on_refused(reason, detail, n)

    def _run(self) -> None:
        poller = zmq.Poller()
        poller.register(self._zap, zmq.POLLIN)
        if self._monitor is not None:
            poller.register(self._monitor, zmq.POLLIN)
        while not self._stop.is_set():
            try:
                ready = dict(poller.poll(100))
                if self._zap in ready:
                    try:
                        self._answer(self._zap.recv_multipart())
                    except Exception as exc:  # never leave libzmq waiting on an answer that will not come
                        log.exception("link.zap_failed", error=str(exc))
                        self._count("zap_error", str(exc))
                if self._monitor is not None and self._monitor in ready:
                    self._handshake_failed(self._monitor.recv_multipart())
            except zmq.ZMQError as exc:
                if exc.errno in (zmq.ETERM, zmq.ENOTSOCK):
                    return
                log.warning("link.zap_error", error=str(exc))

    def _answer(self, msg: list[bytes]) -> None:
        if len(msg) < 6:
            log.warning("link.zap_malformed", frames=len(msg))
            return
        version, request_id, domain, address, _identity, mechanism = msg[:6]
        creds = msg[6:]
        status, text, user = b"400", b"refused", b""
        if domain != DOMAIN:
            self._count("bad_domain", f"ZAP domain {domain!r} from {address.decode(errors='replace')}")
        elif mechanism != b"CURVE" or len(creds) != 1 or len(creds[0]) != 32:
            self._count(
                "plaintext", f"mechanism {mechanism.decode(errors='replace')} from {address.decode(errors='replace')}"
            )
        else:
            key = z85.encode(creds[0])
            with self._lock:
                who = self._allowed.get(key)
            if who is None:
                self._count(
                    "unknown_key",
                    f"public key {key.decode()} from {address.decode(errors='replace')} is not on the allow-list",
                )
                text = b"unknown key"
            else:
                status, text, user = b"200", b"OK", who.encode()
                with self._lock:
                    self.admitted[who] = self.admitted.get(who, 0) + 1
        self._zap.send_multipart([version, request_id, status, text, user, b""])

    def _handshake_failed(self, msg: list[bytes]) -> None:
        ev: Any = parse_monitor_message(msg)
        event, value = ev.get("event"), ev.get("value")
        where = (ev.get("endpoint") or b"").decode(errors="replace")
        if event == zmq.EVENT_HANDSHAKE_FAILED_AUTH:
            return  # ZAP refused it: already counted with its reason
        if event == zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL and value == _PLAINTEXT:
            self._count("plaintext", f"a client without CURVE connected to {where}")
        elif event == zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL and value in _CRYPTO:
            self._count(
                "bad_handshake",
                f"a CURVE handshake on {where} failed its cryptography (the client has a wrong server key?)",
            )
        elif event == zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL:
            # The client hung up mid-handshake (e.g. a plaintext client that saw our CURVE greeting first).
            self._count("handshake_failed", f"a client hung up during the handshake on {where} (errno {value})")
        else:
            self._count("bad_handshake", f"handshake failed on {where} (event {event}, code {value})")

    def stats(self) -> dict[str, Any]:
        """Refusals by reason and admissions by identity."""
        with self._lock:
            return {"refused": dict(self.refused), "admitted": dict(self.admitted)}
