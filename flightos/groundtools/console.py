"""A ground client for the bench and for hardware-in-the-loop tests: PUS telecommands out, telemetry in, over UDP.

It keeps its own anti-replay counter per key (a small file next to the key file), so each
telecommand it signs is fresh. It remembers the identity of every telemetry packet it received and
acknowledges them with TC[15,130] (``acknowledge``, or every ``auto_ack`` seconds): the spacecraft keeps
telemetry until it is acknowledged.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from spacepackets.ecss import PusTc, PusTm

from flightos.ground import pus
from flightos.ground.codes import Failure
from flightos.ground.security import NONCE_LEN, RESYNC_PADDING, RESYNC_SERVICE, KeyStore, secure_tc

RCVBUF = 4 << 20
"""Receive buffer asked for: a contact drains the spacecraft's store in bursts."""


class GroundError(Exception):
    """The spacecraft refused or failed a telecommand, or did not answer; the message says which."""

    def __init__(self, message: str, code: Failure | None = None) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class Outcome:
    """Everything the spacecraft said about one telecommand."""

    request_id: int
    reports: list[PusTm] = field(default_factory=list)

    @property
    def verification(self) -> list[tuple[int, int | None]]:
        """(subtype, failure code or None) of each ST[01] report, in order."""
        out = []
        for r in self.reports:
            if r.service == 1:
                code = int.from_bytes(r.source_data[4:6], "big") if r.message_subtype % 2 == 0 else None
                out.append((int(r.message_subtype), code))
        return out

    def failure(self) -> tuple[int, Failure, str] | None:
        """(subtype, code, reason) of the failure report, if any."""
        for r in self.reports:
            if r.service == 1 and r.message_subtype % 2 == 0:
                code = int.from_bytes(r.source_data[4:6], "big")
                reason = bytes(r.source_data[6:]).decode(errors="replace")
                return (
                    int(r.message_subtype),
                    Failure(code) if code in Failure._value2member_map_ else Failure.INTERNAL,
                    reason,
                )
        return None


class _Proto(asyncio.DatagramProtocol):
    def __init__(self, sink: Callable[[bytes], None]) -> None:
        self.sink = sink

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.sink(bytes(data))


class GroundClient:
    """Speaks PUS to one spacecraft over UDP."""

    def __init__(
        self,
        host: str,
        port: int,
        apid: int = 100,
        keys: KeyStore | None = None,
        key_id: int | None = None,
        counter_file: Path | None = None,
        source_id: int = 1,
        auto_ack: float | None = None,
    ) -> None:
        self.addr = (host, port)
        self.apid = apid
        self.keys = keys
        self.key_id = key_id if key_id is not None else (keys.ids()[0] if keys and keys.ids() else None)
        if keys is not None and self.key_id is None:
            raise GroundError(f"no key in {keys.path}: provision one with `flightos keys add`")
        self.counter_file = counter_file or (keys.path.with_name("ground-counters.json") if keys else None)
        self.source_id = source_id
        self.seq = 0
        self.received: asyncio.Queue[PusTm] = asyncio.Queue()
        self.garbage = 0
        self.transport: asyncio.DatagramTransport | None = None
        self.unacked: list[bytes] = []
        """Identities of telemetry received and not yet acknowledged (TC[15,130])."""
        self._ack_requests: set[int] = set()  # reports about our own acknowledgements are not acknowledged
        self.acknowledged = 0
        self.auto_ack = auto_ack
        self._acker: asyncio.Task[None] | None = None

    async def open(self) -> GroundClient:
        """Open the UDP socket."""
        loop = asyncio.get_running_loop()
        self.transport, _ = await loop.create_datagram_endpoint(
            lambda: _Proto(self._on_datagram), remote_addr=self.addr
        )
        sock = self.transport.get_extra_info("socket")
        with contextlib.suppress(OSError, AttributeError):  # absorb a drained store; capped at net.core.rmem_max
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)
        if self.auto_ack is not None:
            self._acker = loop.create_task(self._ack_loop(self.auto_ack))
        return self

    def _on_datagram(self, data: bytes) -> None:
        try:
            tm = pus.parse_tm(data)
        except Exception:
            self.garbage += 1
            return
        identity = pus.tm_identity(data)
        if identity is not None and not (
            tm.service == 1 and pus.u32(bytes(tm.source_data).ljust(4, b"\0"), 0) in self._ack_requests
        ):
            self.unacked.append(identity)
        self.received.put_nowait(tm)

    def close(self) -> None:
        """Close the socket (what was not acknowledged yet, the spacecraft sends again)."""
        if self._acker is not None:
            self._acker.cancel()
        if self.transport is not None:
            self.transport.close()

    async def _ack_loop(self, period: float) -> None:
        while True:
            await asyncio.sleep(period)
            if self.unacked and self.transport is not None and not self.transport.is_closing():
                self.acknowledge()

    def acknowledge(self) -> int:
        """Acknowledge every telemetry packet received so far (TC[15,130], no success reports); how many."""
        out, self.unacked = self.unacked, []
        for start in range(0, len(out), pus.ACK_MAX):
            packet = self.build(15, 130, pus.ack_data(out[start : start + pus.ACK_MAX]), ack_flags=0)
            rid = pus.request_id_of(packet)
            if rid is not None:
                if len(self._ack_requests) > 10_000:
                    self._ack_requests.clear()
                self._ack_requests.add(rid.as_u32())
            self.send_raw(packet)
        self.acknowledged += len(out)
        return len(out)

    async def __aenter__(self) -> GroundClient:
        return await self.open()

    async def __aexit__(self, *exc: object) -> None:
        self.close()

    # ---- telecommands -----------------------------------------------------------------------------------
    def _next_counter(self) -> int:
        assert self.key_id is not None and self.counter_file is not None
        try:
            counters = json.loads(self.counter_file.read_text())
        except (OSError, ValueError):
            counters = {}
        value = int(counters.get(str(self.key_id), 0)) + 1
        counters[str(self.key_id)] = value
        tmp = self.counter_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(counters))
        os.replace(tmp, self.counter_file)
        return value

    def build(
        self, service: int, subtype: int, payload: bytes = b"", ack_flags: int = 0b1111, counter: int | None = None
    ) -> bytes:
        """A telecommand packet, signed when this client has a key."""
        self.seq = (self.seq + 1) & 0x3FFF
        if self.keys is None or self.key_id is None:
            return bytes(
                PusTc(
                    service=service,
                    message_subtype=subtype,
                    apid=self.apid,
                    seq_count=self.seq,
                    app_data=payload,
                    source_id=self.source_id,
                    ack_flags=ack_flags,
                ).pack()
            )
        key = self.keys.get(self.key_id)
        assert key is not None
        return secure_tc(
            service,
            subtype,
            payload,
            key_id=self.key_id,
            key=key,
            counter=counter if counter is not None else self._next_counter(),
            apid=self.apid,
            seq_count=self.seq,
            source_id=self.source_id,
            ack_flags=ack_flags,
        )

    def send_raw(self, packet: bytes) -> None:
        """Send bytes as they are (for tests of malformed input)."""
        assert self.transport is not None, "open() first"
        self.transport.sendto(packet)

    async def request(
        self, packet: bytes, timeout: float = 5.0, until: Callable[[Outcome], bool] | None = None
    ) -> Outcome:
        """Send a telecommand; collect reports until completion (or failure) or the timeout."""
        request_id = pus.request_id_of(packet)
        if request_id is None:
            raise GroundError(f"{len(packet)} bytes are not a packet: nothing to wait for")
        rid = request_id.as_u32()
        outcome = Outcome(rid)
        try:
            flags = PusTc.unpack(packet).pus_tc_sec_header.ack_flags
        except Exception:  # a deliberately broken packet: only its failure report will come
            flags = 0
        done = until or (
            lambda o: (
                any(s in (2, 4, 6, 8) for s, _ in o.verification)
                or (bool(flags & 0b1000) and any(s == 7 for s, _ in o.verification))
            )
        )
        self.send_raw(packet)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not done(outcome):
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise GroundError(
                    f"no completion for request 0x{rid:08x} within {timeout} s (reports so far: {outcome.verification})"
                )
            with contextlib.suppress(asyncio.TimeoutError):
                tm = await asyncio.wait_for(self.received.get(), remaining)
                if tm.service != 1 or int.from_bytes(tm.source_data[0:4], "big") == rid:
                    outcome.reports.append(tm)
        return outcome

    async def ping(self, timeout: float = 5.0) -> float:
        """TC[17,1]; the round trip in milliseconds to TM[17,2]."""
        t0 = time.perf_counter()
        out = await self.request(
            self.build(17, 1),
            timeout,
            until=lambda o: (
                any(r.service == 17 and r.message_subtype == 2 for r in o.reports) or o.failure() is not None
            ),
        )
        self._raise(out)
        return (time.perf_counter() - t0) * 1000

    async def function(self, fid: int, types: list[str], values: list[Any], timeout: float = 10.0) -> Any:
        """TC[8,1] of function ``fid``; return the value of TM[8,130] (None if the command returned nothing)."""
        out = await self.request(self.build(8, 1, pus.pack_u16(fid) + pus.encode_values(types, values)), timeout)
        self._raise(out)
        import msgspec

        for r in out.reports:
            if r.service == 8 and r.message_subtype == 130:
                return msgspec.msgpack.decode(bytes(r.source_data[2:]))
        return None

    # ---- replay-protection resync (docs/ground.md) ------------------------------------------------------
    def resync_floor(self) -> int:
        """A counter floor above anything this ground used: milliseconds since the epoch, or past its counters."""
        try:
            used = (
                max((int(v) for v in json.loads(self.counter_file.read_text()).values()), default=0)
                if self.counter_file is not None
                else 0
            )
        except (OSError, ValueError):
            used = 0
        return max(int(time.time() * 1000), used + 1)

    def _raise_counters(self, floors: dict[int, int]) -> None:
        """Every key's next counter starts above its on-board floor (written durably: a lost file means reuse)."""
        if self.counter_file is None:
            return
        try:
            counters = json.loads(self.counter_file.read_text())
        except (OSError, ValueError):
            counters = {}
        for kid, floor in floors.items():
            counters[str(kid)] = max(int(counters.get(str(kid), 0)), floor)
        tmp = self.counter_file.with_suffix(".tmp")
        with open(tmp, "w") as f:
            f.write(json.dumps(counters))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.counter_file)

    async def resync(self, timeout: float = 5.0, floor: int | None = None) -> dict[int, int]:
        """Unlock the anti-replay counters: TC[129,1] for a fresh nonce, then TC[129,3] with nonce and floor.

        Neither uses a counter (the board may have lost them); the resync is fresh because the nonce is
        single-use. Returns each key's floor on board; this client's counters continue above them.
        """
        if self.keys is None:
            raise GroundError("resync needs a key (the anti-replay counters belong to keys)")

        def answered(subtype: int) -> Callable[[Outcome], bool]:
            return lambda o: (
                o.failure() is not None
                or any(r.service == RESYNC_SERVICE and r.message_subtype == subtype for r in o.reports)
            )

        # no success reports asked for (ack flags 0), padding: a captured copy replayed is no reflector
        out = await self.request(
            self.build(RESYNC_SERVICE, 1, bytes(RESYNC_PADDING), ack_flags=0, counter=0), timeout, until=answered(2)
        )
        self._raise(out)
        nonce = next(bytes(r.source_data[:NONCE_LEN]) for r in out.reports if r.service == RESYNC_SERVICE)
        floor = floor if floor is not None else self.resync_floor()
        packet = self.build(RESYNC_SERVICE, 3, nonce + floor.to_bytes(8, "big"), ack_flags=0, counter=0)
        try:
            out = await self.request(packet, timeout, until=answered(4))
        except GroundError:  # no answer: the board may have applied it; never reuse a counter below the floor
            self._raise_counters(dict.fromkeys(self.keys.ids(), floor))
            raise
        self._raise(out)
        data = next(bytes(r.source_data) for r in out.reports if r.service == RESYNC_SERVICE)
        floors = {
            pus.u16(data, 2 + 10 * i): int.from_bytes(data[4 + 10 * i : 12 + 10 * i], "big")
            for i in range(pus.u16(data, 0))
        }
        self._raise_counters(floors)
        return floors

    @staticmethod
    def _raise(out: Outcome) -> None:
        failed = out.failure()
        if failed is not None:
            subtype, code, reason = failed
            raise GroundError(f"TM[1,{subtype}] {code.name}: {reason}", code)

    async def next_tm(self, timeout: float) -> PusTm:
        """The next telemetry packet received."""
        return await asyncio.wait_for(self.received.get(), timeout)
