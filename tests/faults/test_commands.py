"""Fault campaign: bounded memory and honest idempotency (issue 12, item 6).

Only executions are remembered against a command id: a refusal that proves the command did not run is
answered and forgotten, so a retry with the same id runs it. ``service_failed`` says whether the command
had started. Frames over ``runtime.max_frame_bytes`` are refused at every hop, and the kernel's result
cache is bounded in bytes and emptied once no retry is possible.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from pathlib import Path
from typing import Any

import psutil
import pytest
import zmq
import zmq.asyncio

from flightos.bus import envelope as wire
from flightos.bus import started
from flightos.bus.commands import command_payload, frame_cap
from flightos.bus.endpoints import Endpoints
from flightos.bus.envelope import Kind, new_id
from flightos.bus.errors import FrameTooLarge, QueueFull, ServiceFailed, ServiceUnavailable
from flightos.client import Client, kernel_pid
from flightos.testing import eventually
from tests.runtimes import kernel_events, kill_at_marks, make_runtime

LIMIT = 65_536


async def _stats(c: Client) -> dict[str, int]:
    return dict((await c.call("kernel", "status"))["bus"]["commands"])


def _pid(status: dict[str, Any], name: str) -> int:
    return int(next(s for s in status["services"] if s["name"] == name)["pid"])


async def test_a_refusal_is_not_remembered_so_the_retry_runs() -> None:
    """Issue 12's row: ``cmd test record --id X`` while test is stopped, then again after it started, runs it.

    The same for a full restart queue. An execution is still remembered: a third try returns the first answer.
    """
    overrides = ["runtime.command_queue=1", "restart.backoff_initial_s=30", "restart.backoff_jitter=0.0"]
    async with make_runtime(["test"], overrides) as rt:
        c = rt.client
        assert c is not None
        await c.call("kernel", "stop", {"service": "test"})
        with pytest.raises(ServiceUnavailable):
            await c.call("test", "record", {"key": "stopped"}, command_id="X")
        await c.call("kernel", "start", {"service": "test"})
        await rt.wait_ready("test")
        assert await c.call("test", "record", {"key": "stopped"}, command_id="X") == 1  # the retry ran
        assert await c.call("test", "record", {"key": "stopped"}, command_id="X") == 1  # and is remembered

        # Queue full: the first restart is at once, the second waits 30 s; one command queues, the next is refused.
        os.kill(_pid(await rt.wait_ready("test"), "test"), signal.SIGKILL)
        await eventually(lambda: _test_is(c, "READY", restarts=1), timeout=20, what="test restarted once")
        os.kill(_pid(await c.call("kernel", "status"), "test"), signal.SIGKILL)
        await eventually(lambda: _test_is(c, "BACKOFF", restarts=2), timeout=20, what="test waiting 30 s to restart")
        queued = asyncio.ensure_future(c.call("test", "record", {"key": "queued"}, command_id="Q1", timeout=60))
        await eventually(lambda: _queued(c), timeout=20, what="one command queued")
        with pytest.raises(QueueFull):
            await c.call("test", "record", {"key": "full"}, command_id="Q2", timeout=60)
        await c.call("kernel", "start", {"service": "test"})  # start now instead of after the backoff
        assert await queued == 1
        assert await c.call("test", "record", {"key": "full"}, command_id="Q2") == 1  # the refused one runs
        assert await c.call("test", "executions") == {"stopped": 1, "queued": 1, "full": 1}
        st = await _stats(c)
        assert st["refused"] >= 2


async def _test_is(c: Client, state: str, restarts: int) -> bool:
    st = await c.call("kernel", "status")
    svc = next(s for s in st["services"] if s["name"] == "test")
    return bool(svc["state"] == state and svc["restarts"] >= restarts)


async def _queued(c: Client) -> bool:
    return (await _stats(c))["queued"] >= 1


async def test_service_failed_says_whether_the_command_had_started() -> None:
    """Commands delivered to a frozen service that is then killed: ``started: false``, not remembered, and the
    store proves they had not run; a retry runs each once. A command that was running: ``started: true``."""
    async with make_runtime(["test"]) as rt:
        c = rt.client
        assert c is not None
        events = await kernel_events(c)
        first = (await _stats(c))["delivered"]
        running = asyncio.ensure_future(c.call("test", "sleep", {"seconds": 30.0}, command_id="S", timeout=40))

        async def sleep_delivered() -> bool:
            return (await _stats(c))["delivered"] >= first + 1

        await eventually(sleep_delivered, timeout=20, what="the sleep delivered")
        # ping goes down the same pipe after the sleep, so its answer means the sleep was taken and started
        assert (await c.call("test", "ping"))["reply"] == "pong"
        pid = _pid(await c.call("kernel", "status"), "test")
        before = (await _stats(c))["delivered"]
        os.kill(pid, signal.SIGSTOP)
        ids = [f"R{i}" for i in range(20)]
        calls = [
            asyncio.ensure_future(c.call("test", "record", {"key": cid}, command_id=cid, timeout=40)) for cid in ids
        ]

        async def delivered() -> bool:
            return (await _stats(c))["delivered"] >= before + len(ids)

        await eventually(delivered, timeout=20, what="20 commands delivered to the frozen service")
        with contextlib.suppress(ProcessLookupError):  # the kernel may already have killed it as hung
            os.kill(pid, signal.SIGKILL)
        answers = await asyncio.gather(*calls, return_exceptions=True)
        assert all(isinstance(a, ServiceFailed) and a.details["started"] is False for a in answers), answers
        with pytest.raises(ServiceFailed) as info:
            await running
        assert info.value.details["started"] is True
        lost = await c.wait_for("ev.kernel", lambda e: e.payload["name"] == "COMMAND_SERVICE_LOST", sub=events)
        assert lost.payload["data"]["count"] == len(ids) + 1 and lost.payload["data"]["not_started"] == len(ids)
        await rt.wait_ready("test")
        assert await c.call("test", "executions", {"prefix": "R"}) == {}  # started: false was the truth
        for cid in ids:
            assert await c.call("test", "record", {"key": cid}, command_id=cid) == 1
        with pytest.raises(ServiceFailed) as again:  # it may have run: remembered, never run twice
            await c.call("test", "sleep", {"seconds": 30.0}, command_id="S")
        assert again.value.details["started"] is True
        assert await c.call("test", "executions", {"prefix": "R"}) == {cid: 1 for cid in ids}
        assert (await _stats(c))["lost_not_started"] == len(ids)


async def test_frames_over_the_limit_are_refused_at_every_hop() -> None:
    """The client refuses locally; the kernel answers a frame between the limit and the cap and drops a peer
    past the cap without buffering it; a result over the limit becomes frame_too_large (the command ran)."""
    async with make_runtime(["test"], [f"runtime.max_frame_bytes={LIMIT}"]) as rt:
        c = rt.client
        assert c is not None
        kpid = kernel_pid(rt.runtime_dir)
        assert kpid is not None
        rss0 = psutil.Process(kpid).memory_info().rss
        for _ in range(20):  # the SDK refuses before sending: nothing reaches the kernel
            with pytest.raises(FrameTooLarge, match="max_frame_bytes"):
                await c.call("test", "echo", {"value": "x" * (4 << 20)})
        st = await _stats(c)
        assert st["too_large"] == 0 and st["delivered"] == 0

        ctx = zmq.asyncio.Context()
        raw = ctx.socket(zmq.DEALER)
        raw.setsockopt(zmq.LINGER, 0)
        raw.connect(Endpoints(rt.runtime_dir).command)
        try:

            def frame(size: int, cid: str) -> bytes:
                return wire.encode(
                    wire.make(
                        Kind.COMMAND, "test", "raw", command_payload("echo", {"value": "y" * size}, 5.0), corr=cid
                    )
                )

            mid = frame(LIMIT + 1000, new_id())
            assert LIMIT < len(mid) < frame_cap(LIMIT)
            await raw.send(mid)
            assert await raw.poll(10_000)
            answer = wire.decode(await raw.recv())
            assert answer.payload["error"]["code"] == "frame_too_large"
            for _ in range(20):  # past the cap: the peer is dropped, nothing is buffered or answered
                await raw.send(frame(4 << 20, new_id()))
            assert await raw.poll(1000) == 0
            assert (await _stats(c))["too_large"] == 1  # only the frame under the cap reached the router
        finally:
            raw.close(0)
            ctx.term()
        assert (await c.call("test", "echo", {"value": "fine"})) == "fine"
        grown = psutil.Process(kpid).memory_info().rss - rss0
        assert grown < 40 << 20, f"kernel RSS grew {grown >> 20} MB"

        for i in range(20):  # 20 keys of 4 kB: executions() answers ~80 kB, over the 64 KiB limit
            await c.call("test", "record", {"key": f"{i:03d}" + "k" * 4000})
        with pytest.raises(FrameTooLarge, match="ran") as info:
            await c.call("test", "executions", command_id="BIG")
        assert info.value.details.get("ran") is True
        with pytest.raises(FrameTooLarge):  # it ran: the answer is remembered, not run again
            await c.call("test", "executions", command_id="BIG")
        assert (await c.call("kernel", "ping"))["max_frame_bytes"] == LIMIT


async def test_the_result_cache_is_bounded_in_bytes_and_emptied_after_the_retry_time() -> None:
    """Issue 12's row: 100 echoes of ~1 MB. The kernel keeps at most result_cache_mb of results (the oldest go
    early, counted), and none once no retry is possible; its RSS comes back down."""
    async with make_runtime(["test"], ["runtime.result_cache_mb=8"]) as rt:
        c = rt.client
        assert c is not None
        kpid = kernel_pid(rt.runtime_dir)
        assert kpid is not None
        rss0 = psutil.Process(kpid).memory_info().rss
        events = await kernel_events(c)
        value = "z" * (900 << 10)
        for _ in range(100):
            assert len(await c.call("test", "echo", {"value": value}, timeout=1.0)) == len(value)
        peak = psutil.Process(kpid).memory_info().rss
        assert (await _stats(c))["results_evicted_early"] > 0  # 8 MB holds 9 of them
        ev = await c.wait_for("ev.kernel", lambda e: e.payload["name"] == "COMMAND_RESULTS_EVICTED", sub=events)
        assert ev.payload["data"]["count"] > 0 and ev.payload["data"]["cache_mb"] == 8

        async def emptied() -> bool:
            s = await _stats(c)
            return s["results_expired"] + s["results_evicted_early"] >= 100

        await eventually(emptied, timeout=30, what="results past their retry time dropped")
        after = psutil.Process(kpid).memory_info().rss
        print(f"kernel RSS {rss0 >> 20} -> {peak >> 20} MB after 100 x 0.9 MB echoes, {after >> 20} MB later")
        assert peak - rss0 < 50 << 20  # the results alone are 90 MB
        assert after - rss0 < 20 << 20


async def test_chaos_every_command_that_did_not_run_is_retried_and_runs_once() -> None:
    """1,000 commands while the service is SIGKILLed 3 times, each retried with its id while the answer proves
    it did not run: every command ends in one execution, or in ``started: true`` (it ran at most once)."""
    async with make_runtime(
        ["test"], ["restart.max_restarts=10", "restart.backoff_initial_s=0.05", "runtime.command_queue=256"]
    ) as rt:
        c = rt.client
        assert c is not None
        total, retried = 1000, 0
        answers: dict[int, object] = {}
        lost: dict[bool, int] = {True: 0, False: 0}
        sem = asyncio.Semaphore(32)

        async def one(i: int) -> None:
            nonlocal retried
            cid = f"chaos-{i}"
            async with sem:
                for attempt in range(20):
                    try:
                        answers[i] = await c.call("test", "record", {"key": str(i)}, command_id=cid, timeout=15)
                        return
                    except ServiceFailed as err:
                        lost[bool(err.details["started"])] += 1
                        answers[i] = err
                        if err.details["started"]:
                            return
                    except (ServiceUnavailable, QueueFull) as err:
                        answers[i] = err
                    retried += 1
                    await asyncio.sleep(0.05 * (attempt + 1))

        kill_task = asyncio.ensure_future(kill_at_marks(rt, answers))
        await asyncio.gather(*(one(i) for i in range(total)))
        await kill_task
        await rt.wait_ready("test")
        executed = await c.call("test", "executions", timeout=15)
        assert max(executed.values()) == 1, "a command ran twice"
        ran_of_started = 0
        for i, a in answers.items():
            if isinstance(a, ServiceFailed):
                assert a.details["started"] is True
                ran_of_started += executed.get(str(i), 0)
            else:
                assert a == 1 and executed[str(i)] == 1, (i, a)
        started = sum(isinstance(a, ServiceFailed) for a in answers.values())
        print(
            f"{total} commands, 3 kills: service_failed {lost[True] + lost[False]} "
            f"(started: true {lost[True]}, of which {ran_of_started} ran; started: false {lost[False]}, "
            f"all retried), {retried} retries, {total - started} ran exactly once"
        )
        assert started <= 3 * 32


def test_the_started_ledger_survives_wrapping_and_proves_only_what_it_holds(tmp_path: Path) -> None:
    """The ring keeps the last SLOTS ids; an id never written, or overwritten, is not in it."""
    path = started.ledger_path(tmp_path, "svc", 3)
    w = started.StartedWriter(path)
    ids = [f"cmd-{i}" for i in range(started.SLOTS + 10)]
    for cid in ids:
        w.record(cid)
    w.close()
    ledger = started.read_started(path)
    assert ledger is not None
    assert started.digest(ids[-1]) in ledger and started.digest(ids[10]) in ledger
    assert started.digest(ids[0]) not in ledger  # overwritten: the kernel counts deliveries to know
    assert started.digest("never") not in ledger
    assert sum(started.digest(c) in ledger for c in ids[-100:]) == 100  # the indexed path agrees
    assert started.read_started(tmp_path / "missing") is None  # never had one: served no direct caller


def test_a_ledger_that_exists_but_cannot_be_read_proves_nothing(tmp_path: Path) -> None:
    """A ledger the kernel cannot read (a symlink planted in its place, a directory, an I/O error) counts every
    command as started: a direct caller's re-send is answered 'ran at most once', never run a second time."""
    target = tmp_path / "elsewhere"
    target.write_bytes(bytes(started.SLOT))
    planted = started.ledger_path(tmp_path, "svc", 1)
    planted.symlink_to(target)
    directory = started.ledger_path(tmp_path, "svc", 2)
    directory.mkdir()
    for path in (planted, directory):
        ledger = started.read_started(path)
        assert isinstance(ledger, started.Unreadable)
        assert started.digest("anything") in ledger and b"short" not in ledger
