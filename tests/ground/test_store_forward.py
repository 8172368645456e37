"""Store-and-forward: telemetry survives lost contact and a kernel restart, then goes out by priority within budget."""

from __future__ import annotations

import time

from flightos.ground import pus
from flightos.groundtools.console import GroundClient
from flightos.testing import eventually
from tests.ground.conftest import ports, start

SAF = [
    'services.ground.options.contact={mode = "after_tc", hold_s = 0.5}',
    "services.ground.options.downlink_rate_bytes_s=3000",
    "services.ground.options.downlink_burst_bytes=600",
]


async def stored(rt: object) -> int:
    return int((await rt.client.call("ground", "link_status"))["downlink"]["stored"])  # type: ignore[attr-defined]


async def test_no_contact_then_restart_then_contact_delivers_everything_by_priority() -> None:
    """Events raised out of contact survive a kernel restart and arrive HIGH first, within the byte budget."""
    rt, keys = await start(SAF, services=["ground", "test"])
    try:
        c = rt.client
        assert c is not None
        p = await ports(rt)
        async with GroundClient("127.0.0.1", p["udp"], 100, keys) as g:
            assert (
                await g.request(g.build(3, 6, pus.pack_u16(2) + pus.pack_u16(1) + pus.pack_u16(2)))
            ).failure() is None  # no housekeeping, so only our events are stored
        await rt.wait_until(lambda s: True, what="status")
        await eventually(
            lambda: c.call("ground", "link_status"),
            until=lambda s: not s["in_contact"],
            timeout=10,
            interval=0.1,
            what="contact to lapse",
        )
        base = await stored(rt)
        sent = []
        for i in range(12):
            severity = 1 + i % 4
            await c.call("test", "announce", {"message": f"event {i}", "severity": severity})
            sent.append((severity, i))
        await eventually(
            lambda: stored(rt), until=lambda n: n >= base + 12, timeout=20, what="the 12 events to be stored"
        )
        assert await rt.stop() == 0  # a kernel restart with telemetry waiting on disk
        await rt.start()
        p = await ports(rt)
        assert await stored(rt) >= 12
        async with GroundClient("127.0.0.1", p["udp"], 100, keys) as g:
            t0 = time.monotonic()
            await g.ping()
            got: list[tuple[int, str]] = []
            nbytes = 0
            while len(got) < 12:
                tm = await g.next_tm(10)
                if tm.service == 5 and pus.u16(bytes(tm.source_data), 0) == 17001:
                    (_, message), _ = pus.decode_values(["str", "str"], bytes(tm.source_data), 2, exact=False)
                    got.append((int(tm.message_subtype), message))
                    nbytes += len(tm.pack())
            elapsed = time.monotonic() - t0
        expected = [f"event {i}" for sev, i in sorted(sent, key=lambda x: (-x[0], x[1]))]
        assert [m for _, m in got] == expected, "not delivered by priority (then in order)"
        assert nbytes <= 3000 * elapsed + 600 + 200, f"{nbytes} bytes in {elapsed:.2f} s exceeds the budget"
        assert elapsed >= (nbytes - 600) / 3000 - 0.2
    finally:
        await rt.stop()
        rt.cleanup()
