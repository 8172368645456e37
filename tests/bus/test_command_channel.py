"""A caller stops waiting at its own deadline plus the grace, whatever other calls are in flight."""

from __future__ import annotations

import asyncio
import gc
import time
from pathlib import Path
from typing import Any

import pytest
import zmq

from flightos.bus import commands
from flightos.bus import envelope as wire
from flightos.bus.aiozmq import AsyncSocket
from flightos.bus.commands import CommandChannel, ok_payload
from flightos.bus.errors import DeadlineExceeded
from flightos.testing.eventually import eventually

GRACE_S = 0.05


class Kernel:
    """A stand-in for the kernel's ROUTER that answers only the commands it is told to."""

    def __init__(self, ctx: zmq.Context[zmq.Socket[bytes]], endpoint: str) -> None:
        self.sock = ctx.socket(zmq.ROUTER)
        self.sock.bind(endpoint)
        self.asock = AsyncSocket(self.sock)
        self.waiting: dict[str, tuple[bytes, wire.Envelope]] = {}
        self.asock.on_messages(self._on, multipart=True)

    def _on(self, batch: list[list[Any]]) -> None:
        for route, frame in batch:
            env = wire.decode(frame)
            self.waiting[env.payload["name"]] = (route, env)

    def answer(self, name: str, value: Any) -> None:
        route, env = self.waiting.pop(name)
        result = wire.make(wire.Kind.RESULT, "", "kernel", ok_payload(value), corr=env.corr)
        self.asock.send_routed_nowait(route, wire.encode(result))

    def close(self) -> None:
        self.asock.close(0)


@pytest.fixture
def grace(monkeypatch: pytest.MonkeyPatch) -> float:
    monkeypatch.setattr(commands, "LOCAL_GRACE_S", GRACE_S)
    return GRACE_S


async def test_an_unanswered_call_gives_up_at_its_deadline_and_others_still_get_answers(
    tmp_path: Path, grace: float
) -> None:
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    kernel = Kernel(ctx, f"ipc://{tmp_path}/k.sock")
    channel = CommandChannel(ctx, f"ipc://{tmp_path}/k.sock", "c/test/1", "test")
    try:
        long_call = asyncio.ensure_future(channel.call("svc", "long", timeout=5.0))
        t0 = time.monotonic()
        with pytest.raises(DeadlineExceeded, match=r"svc\.short"):
            await channel.call("svc", "short", timeout=0.1)
        waited = time.monotonic() - t0
        assert 0.1 + grace <= waited < 3.0, f"gave up after {waited:.3f} s"
        assert not long_call.done(), "the other caller still waits for its answer"
        await eventually(lambda: "long" in kernel.waiting, until=bool, interval=0.01, what="the long call arrives")
        kernel.answer("long", 42)
        assert await asyncio.wait_for(long_call, 5) == 42
        short_again = asyncio.ensure_future(channel.call("svc", "again", timeout=0.05))
        with pytest.raises(DeadlineExceeded):  # the next call's give-up is armed afresh
            await asyncio.wait_for(short_again, 5)
    finally:
        channel.close()
        kernel.close()
        ctx.term()


async def test_a_cancelled_caller_leaves_no_error_behind(tmp_path: Path, grace: float) -> None:
    loop = asyncio.get_running_loop()
    errors: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _loop, context: errors.append(context))
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    kernel = Kernel(ctx, f"ipc://{tmp_path}/k.sock")
    channel = CommandChannel(ctx, f"ipc://{tmp_path}/k.sock", "c/test/2", "test")
    try:
        call = asyncio.ensure_future(channel.call("svc", "slow", timeout=0.05))
        await asyncio.sleep(0.01)
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
        await asyncio.sleep(0.05 + grace + 0.1)  # time passes beyond its give-up time (what is tested)
        gc.collect()
        assert errors == []
        assert await asyncio.wait_for(_answered(channel, kernel), 5) == "ok"
    finally:
        loop.set_exception_handler(None)
        channel.close()
        kernel.close()
        ctx.term()


async def _answered(channel: CommandChannel, kernel: Kernel) -> Any:
    call = asyncio.ensure_future(channel.call("svc", "after", timeout=5.0))
    await eventually(lambda: "after" in kernel.waiting, until=bool, interval=0.01, what="the call arrives")
    kernel.answer("after", "ok")
    return await call
