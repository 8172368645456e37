"""Fault campaign: the ground link is the last thing to die (issue 12, items 1 and 2's TCP part).

Before: 7 zero bytes from an unknown address made it the downlink destination (it got the stored
events, the store was emptied); 3,000 one-byte TCP connections were held forever; a TCP peer that never
read had products "sent" into its socket; a flood of forged TCs raised one HIGH event per packet and
was answered with more bytes than it sent. Now nothing about the link changes before a TC is
authenticated, answers to untrusted input are rate-limited and never larger than it, rejections are
reported once per reason per interval with exact counts, and TCP peers are capped, timed out and cut off
when they stop reading, with nothing counted as sent that the socket did not take.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
from typing import Any

import pytest

from flightos.bus.pubsub import Subscriber
from flightos.ground import pus
from flightos.ground.security import RESYNC_PADDING, RESYNC_SERVICE, secure_tc
from flightos.groundtools.console import GroundClient
from flightos.sdk.options import OptionsError, check_options
from flightos.testing import RuntimeProcess
from flightos.testing.eventually import eventually
from services.ground.options import GroundOptions
from tests.ground.conftest import ports, start, tcp_ground

RECORD = 3  # test.record in the shipped mission database
FORGED_KEY = b"\x05" * 32


def forged(counter: int) -> bytes:
    """A well-formed TC (valid CRC) signed with a key the spacecraft does not have: 48 bytes."""
    return secure_tc(
        8,
        1,
        pus.pack_u16(RECORD) + pus.encode_value("str", "flood"),
        key_id=1,
        key=FORGED_KEY,
        counter=counter,
        apid=100,
        seq_count=counter & 0x3FFF,
    )


async def status(rt: RuntimeProcess) -> dict[str, Any]:
    assert rt.client is not None
    return dict(await rt.client.call("ground", "link_status"))


async def subscribed(rt: RuntimeProcess, sub: Subscriber) -> None:
    """Return once ``sub`` (subscribed to ev.test too) receives a vouched event: both its connections are live."""
    client = rt.client
    assert client is not None

    async def heard() -> bool:
        await client.call("test", "announce", {"message": "joined"})
        with contextlib.suppress(asyncio.TimeoutError):
            for env in await asyncio.wait_for(sub.batches(), 0.5):
                if env.topic == "ev.test" and env.payload.get("message") == "joined":
                    return True
        return False

    await eventually(heard, timeout=20, what="the subscription to reach the bus")


def udp_socket() -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    s.setblocking(False)
    return s


def drain(s: socket.socket) -> list[bytes]:
    """Every datagram waiting on a non-blocking socket."""
    out = []
    while True:
        try:
            out.append(s.recv(70000))
        except BlockingIOError:
            return out


def fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


async def test_unknown_sender_gets_nothing_and_changes_nothing() -> None:
    """7 zero bytes, a forged TC and a replayed (signed, counter-free) nonce request from an unknown address: no
    contact, no destination, the store stays full; the next authenticated ground gets every stored event, the
    stranger only the answers to its own packets (the failure report no larger than the forged TC)."""
    rt, keys = await start(services=["ground", "test"])
    try:
        assert rt.client is not None
        p = await ports(rt)
        for i in range(9):
            await rt.client.call("test", "announce", {"message": f"stored {i}", "severity": 3})

        async def stored_nine() -> bool:
            return int((await status(rt))["downlink"]["stored"]) >= 9

        await eventually(stored_nine, timeout=30, what="9 events stored for the ground")
        before = await status(rt)
        stranger = udp_socket()
        bad = forged(1)
        # signed, replayable (no counter); carries the padding a nonce request needs
        captured = GroundClient("127.0.0.1", p["udp"], 100, keys).build(RESYNC_SERVICE, 1, bytes(RESYNC_PADDING))
        stranger.sendto(b"\0" * 7, ("127.0.0.1", p["udp"]))
        stranger.sendto(bad, ("127.0.0.1", p["udp"]))
        stranger.sendto(captured, ("127.0.0.1", p["udp"]))

        async def all_handled() -> bool:
            c = (await status(rt))["counters"]
            return (
                int(c.get("tc_dropped", 0)) + int(c.get("tc_rejected", 0)) >= 1
                and int(c.get("tc_auth_rejected", 0)) >= 1
                and int(c.get("tc_completed", 0)) >= 1
            )

        await eventually(all_handled, timeout=30, what="the stranger's three packets handled")
        after = await status(rt)
        assert after["in_contact"] is False and after["peer"] is None
        assert after["downlink"]["stored"] >= before["downlink"]["stored"]  # nothing was drained to the stranger
        assert after["counters"].get("tm_forwarded", 0) == 0
        async with GroundClient("127.0.0.1", p["udp"], 100, keys) as g:
            await g.ping()
            seen: set[str] = set()
            while len(seen) < 9:  # the stored events go to the authenticated ground
                tm = await g.next_tm(15)
                if tm.service == 5 and pus.u16(bytes(tm.source_data), 0) == 17001:
                    (_, message), _ = pus.decode_values(["str", "str"], bytes(tm.source_data), 2, exact=False)
                    seen.add(message)
        assert seen == {f"stored {i}" for i in range(9)}
        got = drain(stranger)  # anything sent to it would have been sent before the ground's copy arrived
        kinds = [(pus.parse_tm(d).service, pus.parse_tm(d).message_subtype) for d in got]
        assert kinds[0] == (1, 2) and len(got[0]) <= len(bad)  # the 7 zero bytes got nothing: a report is 28 bytes
        assert {k[0] for k in kinds[1:]} <= {1, RESYNC_SERVICE}  # answers to the captured TC, no telemetry
        stranger.close()
    finally:
        await rt.stop()
        rt.cleanup()


async def test_flood_of_forged_tcs_is_counted_exactly_reported_once_per_interval_and_not_reflected() -> None:
    """3,000 forged TCs: every one counted, one HIGH event per second (the interval here) whose counts add
    up to 3,000, answers within the reply budget and never larger than a TC, the log barely grows, and
    the ground still answers."""
    rt, keys = await start(["services.ground.options.reject_report_s=1"], services=["ground", "test"])
    try:
        assert rt.client is not None
        p = await ports(rt)
        sub = rt.client.subscriber("ev.ground", "ev.test")
        await subscribed(rt, sub)
        log0 = rt.log_path.stat().st_size
        flooder = udp_socket()
        flooder.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        n, size = 3000, len(forged(1))
        t0 = time.monotonic()
        for start_at in range(0, n, 250):  # bursts the receive buffer holds, so every datagram is counted
            for i in range(start_at, start_at + 250):
                flooder.sendto(forged(i + 1), ("127.0.0.1", p["udp"]))

            async def caught_up(target: int = start_at + 250) -> bool:
                return int((await status(rt))["counters"].get("tc_auth_rejected", 0)) >= target

            await eventually(caught_up, timeout=30, what=f"{start_at + 250} rejections counted")
        elapsed = time.monotonic() - t0
        counters = (await status(rt))["counters"]
        assert counters["tc_auth_rejected"] == n and counters.get("tc_completed", 0) == 0
        reported: list[dict[str, Any]] = []

        async def all_reported() -> bool:
            with contextlib.suppress(asyncio.TimeoutError):  # nothing new yet: ask again
                for env in await asyncio.wait_for(sub.batches(), 0.5):
                    if env.topic == "ev.ground" and isinstance(env.payload, dict) and env.payload.get("id") == 2001:
                        reported.append(env.payload)
            return sum(int(e["data"]["count"]) for e in reported) >= n

        await eventually(all_reported, timeout=30, what="rejection reports adding up to the flood")
        total_s = time.monotonic() - t0
        assert sum(int(e["data"]["count"]) for e in reported) == n
        assert all(e["severity"] == 4 and e["data"]["reason"] == "AUTH_BAD_MAC" for e in reported)
        assert len(reported) <= 2 + total_s / 1.0, (len(reported), total_s)  # one per interval, not 3,000
        replies = drain(flooder)
        assert all(len(r) <= size for r in replies)
        assert len(replies) <= 20 + 10 * elapsed + 1  # burst + rate x time (the defaults)
        assert int(counters.get("replies_rate_limited", 0)) >= n - len(replies) - 1
        log_growth = rt.log_path.stat().st_size - log0
        assert log_growth < 30 * len(reported) * 20, log_growth  # a few lines per report, not one per packet
        async with GroundClient("127.0.0.1", p["udp"], 100, keys) as g:
            assert await g.ping() > 0
        print(
            f"\n{n} forged TCs of {size} B in {elapsed:.1f} s: {len(reported)} events 2001, "
            f"{len(replies)} replies ({sum(map(len, replies))} B), log +{log_growth} B"
        )
        flooder.close()
    finally:
        await rt.stop()
        rt.cleanup()


async def test_tcp_connections_are_capped_and_idle_ones_closed() -> None:
    """200 one-byte connections against a cap of 8: 192 closed at once, the 8 closed when idle; the
    ground's file descriptors come back to where they were; a new TCP ground is served."""
    rt, keys = await start(
        ["services.ground.options.tcp_max_connections=8", "services.ground.options.tcp_idle_s=2"],
        services=["ground", "test"],
    )
    try:
        p = await ports(rt)
        pid = int((await rt.service("ground"))["pid"])
        base = fds(pid)
        loop = asyncio.get_running_loop()
        conns = []
        for _ in range(200):
            s = socket.create_connection(("127.0.0.1", p["tcp"]))
            s.send(b"\x18")
            s.setblocking(False)
            conns.append(s)
        closed: set[int] = set()

        async def eof_on(count: int) -> bool:
            for i, s in enumerate(conns):
                if i in closed:
                    continue
                try:
                    if await asyncio.wait_for(loop.sock_recv(s, 1), 0.001) == b"":
                        closed.add(i)
                except (asyncio.TimeoutError, BlockingIOError):
                    pass
                except OSError:
                    closed.add(i)
            return len(closed) >= count

        await eventually(lambda: eof_on(192), timeout=30, what="192 connections over the cap closed")
        held = fds(pid)
        assert held <= base + 8 + 2, (base, held)
        t_idle = time.monotonic()
        await eventually(lambda: eof_on(200), timeout=30, what="the 8 admitted connections closed when idle")
        idle_s = time.monotonic() - t_idle
        for s in conns:
            s.close()
        st = await status(rt)
        assert st["counters"]["tcp_refused"] == 192 and st["counters"]["tcp_idle_closed"] == 8
        assert next(lk for lk in st["links"] if lk["kind"] == "tcp")["connections"] == 0
        assert fds(pid) <= base + 1
        reader, writer = await asyncio.open_connection("127.0.0.1", p["tcp"])
        try:
            g = GroundClient("127.0.0.1", p["udp"], 100, keys)
            writer.write(g.build(17, 1))
            header = await asyncio.wait_for(reader.readexactly(6), 10)
            body = await asyncio.wait_for(reader.readexactly(int.from_bytes(header[4:6], "big") + 1), 10)
            assert pus.parse_tm(header + body).service in (1, 17)
        finally:
            writer.close()
        print(
            f"\n200 connections, cap 8: ground fds {base} -> {held} -> {fds(pid)}; idle ones closed after "
            f"{idle_s:.1f} s more"
        )
    finally:
        await rt.stop()
        rt.cleanup()


def read_stream(s: socket.socket, timeout: float) -> bytes:
    """Everything a socket delivers until EOF (or reset)."""
    s.settimeout(timeout)
    data = b""
    try:
        while chunk := s.recv(1 << 16):
            data += chunk
    except (ConnectionError, TimeoutError):
        pass
    return data


def whole_packets(data: bytes) -> int:
    """Complete space packets at the start of a byte stream (a cut-off last one is not counted)."""
    n = i = 0
    while i + 6 <= len(data):
        end = i + 6 + int.from_bytes(data[i + 4 : i + 6], "big") + 1
        if end > len(data):
            break
        n, i = n + 1, end
    return n


async def test_tcp_peer_that_never_reads_is_cut_off_and_nothing_untaken_counts_as_sent() -> None:
    """An authenticated TCP ground stops reading while 40 products of 4 kB are downlinked: sends are refused
    instead of piling up, the connection is closed after tcp_stall_s, every packet counted as sent reached
    the peer, and the ground still answers."""
    rt, keys = await start(
        ["services.ground.options.tcp_buffer_bytes=8192", "services.ground.options.tcp_stall_s=1"],
        services=["ground", "test"],
    )
    try:
        assert rt.client is not None
        p = await ports(rt)
        peer = await tcp_ground(rt, keys)
        for i in range(40):
            await rt.client.call("test", "product", {"name": f"p{i}", "data": "x" * 4000, "priority": 5})

        async def cut_off() -> bool:
            return int((await status(rt))["counters"].get("tcp_stalled_closed", 0)) == 1

        await eventually(cut_off, timeout=30, what="the stalled peer to be disconnected")
        st = await status(rt)
        tcp = next(lk for lk in st["links"] if lk["kind"] == "tcp")
        assert tcp["connections"] == 0 and st["counters"]["tcp_send_refused"] >= 1
        delivered = whole_packets(await asyncio.to_thread(read_stream, peer, 10))
        peer.close()
        partial = int(st["counters"].get("tcp_send_partial", 0))  # taken in part: finished later, or never
        assert tcp["sent"] <= delivered <= tcp["sent"] + partial, (delivered, tcp["sent"], partial)
        assert delivered < 40  # the stall was real: most products were not taken
        async with GroundClient("127.0.0.1", p["udp"], 100, keys) as g2:
            assert await g2.ping() > 0
        print(
            f"\nstalled TCP peer: {tcp['sent']} packets counted as sent, {delivered} arrived, "
            f"{st['counters']['tcp_send_refused']} sends refused, disconnected after tcp_stall_s = 1 s"
        )
    finally:
        await rt.stop()
        rt.cleanup()


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        ({"apid": "x"}, "apid"),
        ({"apid": 2048}, "apid"),
        ({"udp_bind": "nonsense"}, "udp_bind"),
        ({"udp_bind": "127.0.0.1:70000"}, "udp_bind"),
        ({"tcp_bind": "bad host:1"}, "tcp_bind"),
        ({"ground_addr": ["127.0.0.1:9", "x"]}, "ground_addr[1]"),
        ({"replay_window": -1}, "replay_window"),
        ({"replay_window": 0}, "replay_window"),
        ({"command_timeout_s": float("nan")}, "command_timeout_s"),
        ({"tcp_idle_s": float("inf")}, "tcp_idle_s"),
        ({"tcp_max_connections": 0}, "tcp_max_connections"),
        ({"reject_reply_rate_hz": -1}, "reject_reply_rate_hz"),
        ({"contact": {"mode": "after_tc", "hold_s": -5}}, "contact.hold_s"),
        ({"contact": {"hold_s": 5}}, "contact.mode"),
        ({"contact": {"mode": "windows", "windows": [[20, 10]]}}, "contact.windows[0]"),
    ],
)
def test_ground_options_are_typed_and_checked(raw: dict[str, Any], key: str) -> None:
    """Each bad value is an error naming its key (the kernel refuses the target: exit 5, tests/faults/test_config)."""
    err = check_options(GroundOptions, raw, "ground")
    assert isinstance(err, OptionsError) and err.key == f"services.ground.options.{key}", err


def test_ground_options_defaults_and_lists() -> None:
    ok = check_options(
        GroundOptions,
        {"ground_addr": ["127.0.0.1:9000", "[::1]:9001"], "downlink_burst_bytes": 600, "contact": {"mode": "always"}},
        "ground",
    )
    assert isinstance(ok, GroundOptions)
    assert ok.ground_addrs() == [("127.0.0.1", 9000), ("::1", 9001)] and ok.downlink_burst_bytes == 600.0
    assert check_options(GroundOptions, {}, "ground") == GroundOptions(contact=GroundOptions().contact)
