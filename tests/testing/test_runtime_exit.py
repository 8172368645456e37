"""A runtime that cannot start, or dies, says why at once: its exit and last error, not a timeout."""

from __future__ import annotations

import asyncio
import time

import pytest

from flightos.testing import RuntimeProcess
from flightos.testing.runtime import RuntimeStartError
from tests.runtimes import make_runtime


async def test_a_missing_link_key_is_reported_before_the_runtime_is_taken() -> None:
    """No secret key for the board: exit 5 naming the key file; no runtime directory or pid file was made."""
    rt = make_runtime(["test"], ['link.board="obc"', 'link.listen="tcp://127.0.0.1:47123"'])
    t0 = time.monotonic()
    try:
        with pytest.raises(RuntimeStartError) as info:
            await rt.start(timeout=30)
        took = time.monotonic() - t0
        assert "exited with code 5" in str(info.value)
        assert "no secret key for 'obc'" in str(info.value).splitlines()[0]
        assert not (rt.runtime_dir / "kernel.pid").exists() and not rt.runtime_dir.exists()
        assert took < 15, f"the key error took {took:.1f} s to show"
    finally:
        await rt.stop()
        rt.cleanup()


async def test_a_kernel_that_dies_is_reported_by_its_exit_not_a_timeout() -> None:
    """Waiting on a runtime whose kernel has gone raises RuntimeStartError with the exit at once."""
    rt: RuntimeProcess = make_runtime(["test"])
    await rt.start()
    try:
        assert rt.proc is not None and rt.client is not None
        await rt.client.call("kernel", "shutdown")
        await asyncio.get_running_loop().run_in_executor(None, rt.proc.wait)
        t0 = time.monotonic()
        with pytest.raises(RuntimeStartError, match="exited with code 0"):
            await rt.wait_until(lambda st: False, timeout=30, what="never")
        assert time.monotonic() - t0 < 1.0
    finally:
        await rt.stop()
        rt.cleanup()
