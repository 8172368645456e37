"""Ground-link figures: TC -> completion latency through the whole stack, TM throughput, store-and-forward drain.

Everything runs against a real runtime on loopback UDP with authenticated telecommands.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from bench.report import Row
from bench.runtime import running
from bench.stats import median, percentile
from flightos.ground import mdb, pus
from flightos.ground.security import KeyStore
from flightos.groundtools.console import GroundClient

DOWNLINK_RATE = 100_000
GROUND = ['services.ground.options.udp_bind="127.0.0.1:0"', "services.ground.heartbeat_period_s=0.5"]


async def _client(rt: object, keys: KeyStore) -> GroundClient:
    status = await rt.client.call("ground", "link_status")  # type: ignore[attr-defined]
    port = next(lk["port"] for lk in status["links"] if lk["kind"] == "udp")
    return await GroundClient("127.0.0.1", port, 100, keys, auto_ack=0.2).open()  # stored TM leaves once acknowledged


async def run_async(quick: bool) -> list[Row]:
    """Latency of TC[8,1] test.ping to TM[1,7]; TM/s of one-shot HK; drain rate of stored events."""
    n = 200 if quick else 1000
    fid = mdb.load().function_id("test", "ping")
    assert fid is not None
    rows: list[Row] = []
    # A 100 kB/s downlink budget (S-band class) with an 8 kB burst: without one the service outruns the
    # console's UDP receive buffer (~300 datagrams) and the excess is lost on the host, not in flightos.
    overrides = [
        *GROUND,
        'services.ground.options.contact={mode = "after_tc", hold_s = 0.5}',
        f"services.ground.options.downlink_rate_bytes_s={DOWNLINK_RATE}",
        "services.ground.options.downlink_burst_bytes=8192",
    ]
    async with running(services=["ground", "test"], overrides=overrides) as rt:
        keys = KeyStore(rt.state_dir / "ground" / "keys.json")
        keys.add(1)
        await rt.client.call("ground", "reload_keys")  # type: ignore[union-attr]
        g = await _client(rt, keys)
        try:
            lat = []
            for _ in range(n):
                t0 = time.perf_counter()
                out = await g.request(g.build(8, 1, pus.pack_u16(fid)))
                lat.append((time.perf_counter() - t0) * 1e6)
                assert out.failure() is None
            rows.append(
                Row(
                    "ground TC[8,1] -> TM[1,7] completion, p50",
                    median(lat),
                    "µs",
                    note=f"{n} authenticated test.ping through UDP, ground, kernel, test; "
                    f"p99 {percentile(lat, 99):.0f} µs",
                )
            )
            t0 = time.perf_counter()
            burst = 50 if quick else 200
            got = 0
            for _ in range(burst):
                out = await g.request(
                    g.build(3, 27, pus.pack_u16(1) + pus.pack_u16(2)),
                    until=lambda o: any(r.service == 3 for r in o.reports) or o.failure() is not None,
                )
                got += sum(1 for r in out.reports)
            dt = time.perf_counter() - t0
            rows.append(
                Row(
                    "ground TM packets/s (requested reports, sequential)",
                    got / dt,
                    "packets/s",
                    note=f"{burst} one-shot HK requests, each with its verification reports",
                )
            )
            # store-and-forward: let contact lapse, raise events on the bus, then drain them
            while (await rt.client.call("ground", "link_status"))["in_contact"]:  # type: ignore[union-attr]
                await asyncio.sleep(0.1)
            stored_n = 200 if quick else 1000
            for i in range(stored_n):
                await rt.client.call("test", "announce", {"message": f"e{i}", "severity": 2})  # type: ignore[union-attr]
            while (await rt.client.call("ground", "link_status"))["downlink"]["stored"] < stored_n:  # type: ignore[union-attr]
                await asyncio.sleep(0.05)
            t0 = time.perf_counter()
            await g.ping()
            seen = pings = 0
            last = t0
            dl: dict[str, Any] = {}
            while seen < stored_n:
                try:
                    tm = await g.next_tm(0.3)
                except asyncio.TimeoutError:
                    dl = (await rt.client.call("ground", "link_status"))["downlink"]  # type: ignore[union-attr]
                    if dl["stored"] == 0:
                        break  # all sent: what did not arrive was lost on the UDP socket
                    # Contact is held 0.5 s after each TC: a pass that ends mid-drain is renewed, as ground would.
                    pings += 1
                    await g.ping()
                    continue
                if tm.service == 5:
                    seen += 1
                    last = time.perf_counter()
            rows.append(
                Row(
                    f"store-and-forward drain (budget {DOWNLINK_RATE / 1e6:g} MB/s)",
                    seen / (last - t0),
                    "packets/s",
                    note=f"{stored_n} stored events sent after contact, by priority "
                    f"(contact renewed {pings} time(s) by a ping); {seen} received, "
                    f"{stored_n - seen} not received; store counters {dl}",
                )
            )
        finally:
            g.close()
    return rows


def run(quick: bool = False) -> list[Row]:
    """Run the ground figures."""
    return asyncio.run(run_async(quick))
