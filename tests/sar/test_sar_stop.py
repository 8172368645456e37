"""Stopping sar mid-scene is a graceful stop: the detector checks for the stop between tiles, so the service
exits within the kernel's stop grace instead of being SIGKILLed at its end."""

from __future__ import annotations

import asyncio
import contextlib
import time

from tests.runtimes import make_runtime

BIG = [
    "services.sar.params.scene_px=6144",
    "services.sar.params.interval_s=86400",
    "services.sar.params.memory_mb=16",
]  # a scene that takes many seconds here, in many tiles


async def test_a_stop_mid_scene_ends_within_the_grace_without_sigkill() -> None:
    """A scene in detection when `kernel stop sar` comes: sar is STOPPED well within the 5 s grace, no SIGKILL."""
    async with make_runtime(["sar", "housekeeping"], BIG) as rt:
        assert rt.client is not None
        scene = asyncio.ensure_future(rt.client.call("sar", "process_scene", timeout=120))
        await asyncio.sleep(0)
        try:
            await rt.wait_until(
                lambda st: "sar.detecting" in rt.log_tail(2000) or scene.done(),
                timeout=60,
                what="sar to start detecting",
            )
            assert not scene.done(), "the scene finished before the stop could be tested"
            t0 = time.monotonic()
            await rt.client.call("kernel", "stop", {"service": "sar"}, timeout=30)
            took = time.monotonic() - t0
        finally:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(scene, 10)
        row = await rt.service("sar")
        log = rt.log_tail(5000)
        assert row["state"] == "STOPPED"
        assert "stop_grace_expired" not in log, "sar outlived the stop grace and was SIGKILLed"
        assert took < 4.0, f"the stop took {took:.1f} s"
        print(f"sar stopped mid-scene in {took:.2f} s")
