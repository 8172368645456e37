"""The kernel's own bus sockets: the pub/sub proxy, the command and control ROUTERs, its publisher and its
subscriber to events. Built under the runtime directory's lock, inside the event loop: it binds at once."""

from __future__ import annotations

import os
from collections.abc import Callable

import zmq

from flightos.bus.aiozmq import AsyncSocket
from flightos.bus.commands import frame_cap
from flightos.bus.endpoints import Endpoints
from flightos.bus.envelope import FrameError
from flightos.bus.proxy import Proxy
from flightos.bus.pubsub import KernelChannel, Publisher, Subscriber


class KernelChannels:
    """Binds and owns every socket of the kernel's side of the bus (see docs/design.md, Channels)."""

    def __init__(
        self,
        ctx: zmq.Context[zmq.Socket[bytes]],
        endpoints: Endpoints,
        max_frame_bytes: int,
        on_reject: Callable[[str, FrameError, int], None],
    ) -> None:
        self.proxy = Proxy(ctx, endpoints.publish, endpoints.subscribe)
        self.proxy.start()
        cmd = ctx.socket(zmq.ROUTER)
        cmd.setsockopt(zmq.ROUTER_MANDATORY, 1)
        cmd.setsockopt(zmq.SNDHWM, 100_000)
        cmd.setsockopt(zmq.RCVHWM, 100_000)
        cmd.setsockopt(zmq.MAXMSGSIZE, frame_cap(max_frame_bytes))  # a larger frame drops its peer
        cmd.bind(endpoints.command)
        ctl = ctx.socket(zmq.ROUTER)
        ctl.setsockopt(zmq.ROUTER_MANDATORY, 1)
        ctl.setsockopt(zmq.MAXMSGSIZE, frame_cap(max_frame_bytes))
        ctl.bind(endpoints.control)
        # The kernel's topics go through the proxy as every other (so subscribers see them in order) and also
        # out on an endpoint only the kernel binds: a subscriber delivers a proxy copy of ev.kernel, tm.kernel.*
        # or tm.hal.* only when that endpoint (checked by pid) sent the same bytes, so nobody can publish as us.
        self.publisher = Publisher(ctx, endpoints.publish, "kernel", mirror=endpoints.kernel_events)
        self.command = AsyncSocket(cmd)
        """Commands and results (services and clients)."""
        self.control = AsyncSocket(ctl)
        """Ready, heartbeats, vouching and control (services)."""
        self.events = Subscriber(
            ctx, endpoints.subscribe, "kernel:events", kernel=KernelChannel(endpoints.kernel_events, os.getpid())
        )
        """Every event on the bus, for the run record; a forged ev.kernel on the proxy is raised and counted."""
        self.events.rejects.on_report = on_reject
        self.events.subscribe("ev.")

    def close(self) -> None:
        """Close every socket and stop the proxy (the context can then be terminated)."""
        self.events.close()
        self.command.close()
        self.control.close()
        self.publisher.close()
        self.proxy.stop()
