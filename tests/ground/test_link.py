"""The ground link end to end over UDP and TCP: every PUS service flightos serves, as ground sees it."""

from __future__ import annotations

import asyncio
import math
import struct
import time
from typing import Any

import msgspec
import pytest

from flightos.ground import mdb, pus
from flightos.ground.codes import Failure
from flightos.groundtools.console import GroundClient, GroundError
from flightos.testing import eventually
from services.ground.reports import decode_hk
from tests.ground.conftest import Link

TABLES = mdb.load()


def fid(name: str) -> int:
    service, command = name.split(".")
    found = TABLES.function_id(service, command)
    assert found is not None
    return found


async def test_are_you_alive_and_verification_reports(link: Link) -> None:
    """TC[17,1] gets TM[17,2]; a function with all ack flags gets acceptance, start and completion."""
    assert await link.ground.ping() < 1000
    out = await link.ground.request(link.ground.build(8, 1, pus.pack_u16(fid("test.ping"))))
    assert [s for s, _ in out.verification] == [1, 3, 7]
    quiet = await link.ground.request(
        link.ground.build(8, 1, pus.pack_u16(fid("test.ping")), ack_flags=0),
        until=lambda o: any(r.service == 8 for r in o.reports),
    )
    assert quiet.verification == []  # success reports honour the ack flags


async def test_functions_map_onto_service_commands(link: Link) -> None:
    """ST[08] runs commands with typed arguments, kernel commands included; errors come back as failures."""
    g = link.ground
    assert await g.function(fid("test.echo"), ["any"], [{"a": [1, 2.5]}]) == {"a": [1, 2.5]}
    assert await g.function(fid("test.record"), ["str"], ["from-ground"]) == 1
    assert (await g.function(fid("kernel.ping"), [], []))["pong"] is True
    with pytest.raises(GroundError) as info:
        await g.function(4242, [], [])
    assert info.value.code == Failure.UNKNOWN_FUNCTION
    out = await g.request(g.build(8, 1, pus.pack_u16(fid("test.sleep")) + b"\x01"))
    assert out.failure() is not None and out.failure()[1] == Failure.BAD_ARGUMENTS  # type: ignore[index]
    with pytest.raises(GroundError, match="COMMAND_FAILED"):
        await g.function(fid("test.fail"), ["str"], ["boom"])


async def test_parameters_report_and_set(link: Link) -> None:
    """ST[20] reads and sets SDK parameters, checked by the owning service."""
    g = link.ground
    pid = TABLES.parameter_id("test", "greeting")
    assert pid is not None
    out = await g.request(g.build(20, 3, pus.pack_u16(1) + pus.pack_u16(pid) + pus.encode_value("str", "hi")))
    assert out.failure() is None
    out = await g.request(g.build(20, 1, pus.pack_u16(1) + pus.pack_u16(pid)))
    data = next(bytes(r.source_data) for r in out.reports if r.service == 20)
    assert pus.u16(data, 0) == 1 and pus.u16(data, 2) == pid and pus.decode_value("str", data, 4)[0] == "hi"
    duty = TABLES.parameter_id("test", "duty_pct")
    assert duty is not None
    out = await g.request(g.build(20, 3, pus.pack_u16(1) + pus.pack_u16(duty) + pus.encode_value("float", 500.0)))
    assert out.failure() is not None and out.failure()[1] == Failure.BAD_PARAMETER_VALUE  # type: ignore[index]
    out = await g.request(g.build(20, 1, pus.pack_u16(1) + pus.pack_u16(9999)))
    assert out.failure() is not None and out.failure()[1] == Failure.UNKNOWN_PARAMETER  # type: ignore[index]


async def test_housekeeping_one_shot_and_interval(link: Link) -> None:
    """ST[03] builds reports from services' telemetry; one-shot and interval changes work."""
    g = link.ground
    structure = TABLES.hk[1]
    out = None

    def ours(o: Any) -> list[Any]:  # structure 1's reports (a periodic report of another may come in between)
        return [
            r
            for r in o.reports
            if r.service == 3 and r.message_subtype == 25 and pus.u16(bytes(r.source_data), 0) == structure.sid
        ]

    def has_report(o: Any) -> bool:  # this request's report, even when it comes after the completion (slow board)
        return bool(ours(o)) or o.failure() is not None

    for _ in range(50):  # the first sample of tm.housekeeping.system arrives within a second or two
        out = await g.request(g.build(3, 27, pus.pack_u16(1) + pus.pack_u16(1)), until=has_report)
        reports = ours(out)
        if reports and not math.isnan(struct.unpack(">d", bytes(reports[0].source_data[2:10]))[0]):
            break
        await asyncio.sleep(0.2)
    assert out is not None
    values = decode_hk(structure, bytes(ours(out)[0].source_data))
    assert 0.0 <= values["memory.used_pct"] <= 100.0 and values["disk.free_mb"] > 0
    out = await g.request(g.build(3, 31, pus.pack_u16(1) + pus.pack_u16(1) + pus.pack_u32(200)))
    assert out.failure() is None
    hk = []
    while len(hk) < 2:
        tm = await g.next_tm(5)
        if tm.service == 3 and tm.message_subtype == 25:
            hk.append(tm)
    out = await g.request(g.build(3, 27, pus.pack_u16(1) + pus.pack_u16(77)))
    assert out.failure() is not None and out.failure()[1] == Failure.UNKNOWN_STRUCTURE  # type: ignore[index]


async def test_events_are_reported_and_can_be_disabled(link: Link) -> None:
    """Bus events become ST[05] reports of their severity; a disabled id is no longer reported."""
    g, c = link.ground, link.rt.client
    assert c is not None
    await g.ping()
    await c.call("test", "announce", {"message": "sun sensor blinded", "severity": 3})
    while True:
        tm = await g.next_tm(5)
        if tm.service == 5 and pus.u16(bytes(tm.source_data), 0) == 17001:
            break
    assert tm.message_subtype == 3
    (source, message), _ = pus.decode_values(["str", "str"], bytes(tm.source_data), 2, exact=False)
    assert (source, message) == ("test", "sun sensor blinded")
    assert (await g.request(g.build(5, 6, pus.pack_u16(1) + pus.pack_u16(17001)))).failure() is None
    await c.call("test", "announce", {"message": "quiet please", "severity": 4})
    # the event reaches the ground service over the bus after the command returns: wait for it to be filtered
    await eventually(
        lambda: c.call("ground", "link_status"),
        until=lambda s: s["counters"].get("events_filtered", 0) >= 1,
        timeout=10,
        interval=0.05,
        what="the disabled event to be filtered",
    )


async def test_time_report(link: Link) -> None:
    """TC[9,1] returns the on-board time as CDS short; it agrees with this machine's clock."""
    out = await link.ground.request(link.ground.build(9, 1))
    t = pus.cds_to_unix(bytes(next(r for r in out.reports if r.service == 9).source_data))
    assert abs(t - time.time()) < 2.0


async def test_schedule_releases_at_its_time_and_survives_a_restart(link: Link) -> None:
    """ST[11]: an activity runs at its release time; the schedule survives a restart of the ground service."""
    g, c = link.ground, link.rt.client
    assert c is not None
    inner = bytes(
        __import__("spacepackets")
        .ecss.PusTc(
            service=8,
            message_subtype=1,
            apid=100,
            seq_count=77,
            app_data=pus.pack_u16(fid("test.record")) + pus.encode_value("str", "scheduled"),
        )
        .pack()
    )
    later = bytes(
        __import__("spacepackets")
        .ecss.PusTc(
            service=8,
            message_subtype=1,
            apid=100,
            seq_count=78,
            app_data=pus.pack_u16(fid("test.record")) + pus.encode_value("str", "much-later"),
        )
        .pack()
    )
    payload = pus.pack_u16(2) + pus.unix_to_cds(time.time() + 1.5) + inner + pus.unix_to_cds(time.time() + 3600) + later
    assert (await g.request(g.build(11, 4, payload))).failure() is None
    out = await g.request(g.build(11, 16))
    summary = bytes(next(r for r in out.reports if r.service == 11).source_data)
    assert pus.u16(summary, 0) == 2
    await c.call("kernel", "kill", {"service": "ground"})
    await link.rt.wait_until(
        lambda s: (
            next(r for r in s["services"] if r["name"] == "ground")["restarts"] >= 1
            and next(r for r in s["services"] if r["name"] == "ground")["state"] == "READY"
        ),
        what="ground restarted",
    )
    await eventually(
        lambda: c.call("test", "executions"),
        until=lambda e: e.get("scheduled") == 1,
        timeout=10,
        interval=0.1,
        what="the scheduled command to run",
    )
    p = {lk["kind"]: lk["port"] for lk in (await c.call("ground", "link_status"))["links"]}
    async with GroundClient("127.0.0.1", p["udp"], 100, link.keys) as g2:
        out = await g2.request(g2.build(11, 16))
        summary = bytes(next(r for r in out.reports if r.service == 11).source_data)
        assert pus.u16(summary, 0) == 1  # the one-hour activity is still there after the restart
        assert (await g2.request(g2.build(11, 3))).failure() is None


async def test_tcp_stream_is_split_into_packets(link: Link) -> None:
    """Two telecommands in one TCP write are both executed; replies come back on the stream."""
    reader, writer = await asyncio.open_connection("127.0.0.1", link.tcp_port)
    try:
        a = link.ground.build(17, 1)
        b = link.ground.build(8, 1, pus.pack_u16(fid("test.record")) + pus.encode_value("str", "via-tcp"))
        writer.write(a + b)
        await writer.drain()
        seen: list[tuple[int, int]] = []
        while (17, 2) not in seen or seen.count((1, 7)) < 2:  # both telecommands completed
            header = await asyncio.wait_for(reader.readexactly(6), 5)
            body = await asyncio.wait_for(reader.readexactly(int.from_bytes(header[4:6], "big") + 1), 5)
            tm = pus.parse_tm(header + body)
            seen.append((tm.service, tm.message_subtype))
        assert link.rt.client is not None
        assert (await link.rt.client.call("test", "executions"))["via-tcp"] == 1
    finally:
        writer.close()


async def test_value_report_is_msgpack(link: Link) -> None:
    """TM[8,130] carries the function id then the value as MessagePack."""
    out = await link.ground.request(
        link.ground.build(8, 1, pus.pack_u16(fid("test.echo")) + pus.encode_value("any", [3, "x"]))
    )
    rep = next(r for r in out.reports if r.service == 8)
    assert pus.u16(bytes(rep.source_data), 0) == fid("test.echo")
    assert msgspec.msgpack.decode(bytes(rep.source_data)[2:]) == [3, "x"]


async def test_long_function_reports_progress(link: Link) -> None:
    """A function running 2.5 s sends progress reports (TM[1,5], steps 1 and 2) before its completion."""
    out = await link.ground.request(
        link.ground.build(8, 1, pus.pack_u16(fid("test.sleep")) + pus.encode_value("float", 2.5)), timeout=10
    )
    subtypes = [s for s, _ in out.verification]
    assert subtypes == [1, 3, 5, 5, 7], subtypes
    steps = [r.source_data[4] for r in out.reports if r.service == 1 and r.message_subtype == 5]
    assert steps == [1, 2]


async def test_service_products_are_downlinked(link: Link) -> None:
    """A service's downlink() arrives at the ground as TM[128,1]: source, name and the data itself."""
    g, c = link.ground, link.rt.client
    assert c is not None
    await g.ping()
    await c.call("test", "product", {"name": "ship-alert", "data": {"ships": 3, "lat": 12.5}, "priority": 7})
    while True:
        tm = await g.next_tm(5)
        if tm.service == 128:
            break
    (source, name, data), _ = pus.decode_values(["str", "str", "any"], bytes(tm.source_data))
    assert (source, name, data) == ("test", "ship-alert", {"ships": 3, "lat": 12.5})
