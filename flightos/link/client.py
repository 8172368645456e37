"""A client that calls commands on a board over its link endpoint, with a service's own CURVE key.

For programs off the board's bus (a payload computer without flightos, a bench tool): the kernel
admits the key only if it is in ``authorized/``, treats the caller as that service, and applies
the target's ``[acl]`` to it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import zmq

from flightos.bus import envelope as wire
from flightos.bus.commands import command_payload, result_value
from flightos.bus.envelope import Kind
from flightos.bus.errors import DeadlineExceeded
from flightos.link import keys, protocol


class LinkClient:
    """Blocking command calls to a kernel's ``[link] listen`` endpoint as service ``name``."""

    def __init__(self, endpoint: str, server_public_key: bytes, keys_dir: Path, name: str) -> None:
        pair = keys.load_secret(keys_dir, name)
        self.name = name
        self.ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
        self.sock = self.ctx.socket(zmq.DEALER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.setsockopt(zmq.CURVE_PUBLICKEY, pair.public)
        self.sock.setsockopt(zmq.CURVE_SECRETKEY, pair.secret)
        self.sock.setsockopt(zmq.CURVE_SERVERKEY, server_public_key)
        self.sock.connect(endpoint)

    def call(
        self,
        service: str,
        command: str,
        args: dict[str, Any] | None = None,
        timeout: float = 5.0,
        command_id: str | None = None,
    ) -> Any:
        """Run ``service.command`` and return its value; raise its typed CommandError, or DeadlineExceeded."""
        cid = command_id or wire.new_id()
        env = wire.make(Kind.COMMAND, service, self.name, command_payload(command, args or {}, timeout), corr=cid)
        self.sock.send_multipart([protocol.COMMAND, wire.encode(env)])
        deadline_ms = int(timeout * 1000)
        while self.sock.poll(deadline_ms):
            tag, frame = self.sock.recv_multipart()
            res = wire.decode(frame)
            if tag == protocol.RESULT and res.corr == cid:
                return result_value(res.payload)
        raise DeadlineExceeded(
            f"{service}.{command}: no answer over the link within {timeout:g} s (is this key authorized on that board?)"
        )

    def close(self) -> None:
        """Close the socket and its context."""
        self.sock.close(linger=0)
        self.ctx.term()

    def __enter__(self) -> LinkClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
