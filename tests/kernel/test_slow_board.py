"""The slow-board profile: the whole runtime on a fraction of one CPU comes up NOMINAL, with no false alarm.

The kernel and every service it starts are confined (a cgroup CPU quota, or CPU-hog neighbours on one
CPU where no quota can be had), so Python runs several times slower than on this machine, as on a
Pi Zero 2 or a throttled board. Start-up, supervision (a killed service comes back) and the ground link
(are-you-alive and a function over UDP) must all work with no service declared hung, no core
declared DEGRADED and no SAFE. Timeouts are derived from the fraction, not fixed.
"""

from __future__ import annotations

import os
import signal
import time

import pytest

from flightos.ground import mdb
from flightos.ground.security import KeyStore
from flightos.groundtools.console import GroundClient
from flightos.kernel.events import EventId
from flightos.testing import RuntimeProcess
from flightos.testing.slowboard import CannotConfine, confine
from tests.runtimes import FAST, base

FRACTION = 0.15
"""Of one CPU: interpreter start ~1.1 s instead of ~0.17 s here (6-7x), the issue's emulated arm64 board."""
SLOWDOWN = 1 / FRACTION
GROUND = ['services.ground.options.udp_bind="127.0.0.1:0"', 'services.ground.options.tcp_bind="127.0.0.1:0"']
PROFILE = [
    *FAST,
    *GROUND,
    "cores.boot_grace_s=0",  # no grace: self-tests timed from the worker's readiness must hold alone
    "cores.selftest_period_s=1",
]  # several self-test rounds within the test

pytestmark = [pytest.mark.slow, pytest.mark.timeout(int(30 * SLOWDOWN))]


def _events(log: str, event: EventId) -> list[str]:
    return [line for line in log.splitlines() if f"event_id={int(event)}" in line]


async def test_a_board_on_a_fraction_of_one_cpu_comes_up_nominal_with_no_false_alarm() -> None:
    """Start, self-tests, a killed service's restart and ground commands under the quota: no hang, DEGRADED or SAFE."""
    try:
        confinement = confine(FRACTION)
        conf = confinement.__enter__()
    except CannotConfine as exc:
        pytest.skip(f"cannot confine a runtime to {FRACTION} of a CPU here: {exc}")
    rt = RuntimeProcess(
        "sim-radhard",
        services=["housekeeping", "test", "ground", "jobs", "sar"],
        overrides=PROFILE,
        base_dir=base(),
        preexec=conf.preexec,
    )
    KeyStore(rt.state_dir / "ground" / "keys.json").add(1)
    t0 = time.monotonic()
    try:
        await rt.start(timeout=8 * SLOWDOWN)
        up_s = time.monotonic() - t0
        st = await rt.status()
        ticks = st["health"]["monitor"]["ticks"]
        # five self-test rounds (1 s apart) with the monitor ticking every 0.5 s
        st = await rt.wait_until(
            lambda s: s["health"]["monitor"]["ticks"] >= ticks + 10, timeout=4 * SLOWDOWN, what="ten monitoring periods"
        )
        assert st["health"]["speed_factor"] > 1, f"the {conf.how} confinement was not measured as a slower board"

        pid = (await rt.service("test"))["pid"]
        os.kill(pid, signal.SIGKILL)
        await rt.wait_until(
            lambda s: any(r["name"] == "test" and r["state"] == "READY" and r["pid"] != pid for r in s["services"]),
            timeout=5 * SLOWDOWN,
            what="test restarted",
        )

        assert rt.client is not None
        links = (await rt.client.call("ground", "link_status", timeout=2 * SLOWDOWN))["links"]
        udp = next(lk["port"] for lk in links if lk["kind"] == "udp")
        echo = mdb.load().function_id("test", "echo")
        assert echo is not None
        async with GroundClient("127.0.0.1", udp, 100, KeyStore(rt.state_dir / "ground" / "keys.json")) as g:
            await g.ping(timeout=2 * SLOWDOWN)
            assert await g.function(echo, ["any"], ["slow"], timeout=2 * SLOWDOWN) == "slow"

        st = await rt.wait_ready(timeout=2 * SLOWDOWN)
        assert st["health"]["mode"] == "NOMINAL"
        assert all(c["state"] == "HEALTHY" for c in st["cores"]), st["cores"]
        log = rt.log_tail(100_000)
        assert not _events(log, EventId.SERVICE_HUNG), "a service was declared hung on the slow board"
        assert not _events(log, EventId.SERVICE_START_TIMEOUT)
        assert not [e for e in _events(log, EventId.CORE_STATE_CHANGED) if "new=HEALTHY" not in e], (
            "a core was declared unhealthy on the slow board"
        )
        assert not _events(log, EventId.MODE_CHANGED), "the mode changed on the slow board"
        print(
            f"slow board ({conf.how}, {conf.fraction:.2f} CPU): all READY after {up_s:.1f} s, "
            f"speed factor {st['health']['speed_factor']}"
        )
    finally:
        await rt.stop(timeout=10 * SLOWDOWN)
        rt.cleanup()
        confinement.__exit__(None, None, None)
