"""The kernel's XSUB/XPUB proxy, run by libzmq itself on a thread (never a Python forwarding loop)."""

from __future__ import annotations

import threading

import structlog
import zmq

log = structlog.get_logger("flightos.bus")


class Proxy:
    """Forwards every publication from the XSUB endpoint to the XPUB endpoint until stopped."""

    def __init__(
        self, ctx: zmq.Context[zmq.Socket[bytes]], xsub_ep: str, xpub_ep: str, *, sndhwm: int = 100_000
    ) -> None:
        self._ctx = ctx
        self._sndhwm = sndhwm
        """Frames (a batch is one) held for each subscriber before libzmq drops."""
        self._xsub_ep = xsub_ep
        self._xpub_ep = xpub_ep
        self._ctl_ep = f"inproc://flightos-proxy-ctl-{id(self)}"
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    def start(self) -> None:
        """Bind both sides and start forwarding; raise if the endpoints cannot be bound."""
        self._thread = threading.Thread(target=self._run, name="flightos-proxy", daemon=True)
        self._thread.start()
        self._ready.wait(5)
        if self._error is not None:
            raise self._error

    def _run(self) -> None:
        xsub = self._ctx.socket(zmq.XSUB)
        xpub = self._ctx.socket(zmq.XPUB)
        ctl = self._ctx.socket(zmq.PAIR)
        try:
            xsub.setsockopt(zmq.RCVHWM, 100_000)
            xpub.setsockopt(zmq.SNDHWM, self._sndhwm)
            xsub.bind(self._xsub_ep)
            xpub.bind(self._xpub_ep)
            ctl.bind(self._ctl_ep)
        except zmq.ZMQError as exc:
            self._error = exc
            self._ready.set()
            for s in (xsub, xpub, ctl):
                s.close(linger=0)
            return
        self._ready.set()
        try:
            zmq.proxy_steerable(xsub, xpub, None, ctl)
        except zmq.ContextTerminated:
            pass
        except zmq.ZMQError as exc:  # pragma: no cover - libzmq internal failure
            log.error("bus.proxy_failed", error=str(exc))
        finally:
            for s in (xsub, xpub, ctl):
                s.close(linger=0)

    def stop(self) -> None:
        """Tell libzmq's proxy to terminate and join its thread."""
        if self._thread is None:
            return
        cmd = self._ctx.socket(zmq.PAIR)
        try:
            cmd.connect(self._ctl_ep)
            cmd.send(b"TERMINATE")
            # libzmq >= 4.3.5 answers a steering command; closing before the answer is read can
            # leave the proxy blocked until the context terminates, so wait for it (bounded).
            if cmd.poll(1000):
                cmd.recv()
        finally:
            cmd.close(linger=100)
        self._thread.join(5)
        self._thread = None
