"""Commands through the kernel router: exactly one result each, queues, retries, deadlines."""

from __future__ import annotations

import asyncio
import os
import signal

import pytest

from flightos.bus.envelope import new_id
from flightos.bus.errors import (
    BadArguments,
    CommandError,
    DeadlineExceeded,
    QueueFull,
    ServiceFailed,
    UnknownCommand,
    UnknownService,
)
from flightos.testing import RuntimeProcess
from flightos.testing.eventually import eventually
from tests.runtimes import kernel_events, kill_at_marks, make_runtime


async def test_typed_errors_name_the_problem(runtime: RuntimeProcess) -> None:
    """Unknown service, unknown command, bad arguments and handler failures are typed errors."""
    c = runtime.client
    assert c is not None
    with pytest.raises(UnknownService, match="nosuch"):
        await c.call("nosuch", "ping")
    with pytest.raises(UnknownCommand, match="nope"):
        await c.call("test", "nope")
    with pytest.raises(BadArguments, match="seconds"):
        await c.call("test", "sleep", {"seconds": "soon"})
    with pytest.raises(BadArguments, match="unexpected argument"):
        await c.call("test", "ping", {"extra": 1})
    with pytest.raises(CommandError, match="boom") as info:
        await c.call("test", "fail", {"message": "boom"})
    assert info.value.code == "command_failed"
    assert await c.call("test", "echo", {"value": {"a": [1, 2.5, "x", None]}}) == {"a": [1, 2.5, "x", None]}


async def test_deadline_exceeded_is_answered_once(runtime: RuntimeProcess) -> None:
    """A command that outlives its deadline gets deadline_exceeded, and the service keeps serving."""
    c = runtime.client
    assert c is not None
    with pytest.raises(DeadlineExceeded):
        await c.call("test", "sleep", {"seconds": 5.0}, timeout=0.3)
    assert (await c.call("test", "ping"))["reply"] == "pong"


async def test_the_service_cancels_a_handler_at_its_deadline(runtime: RuntimeProcess) -> None:
    """Past its deadline a handler is cancelled in the service itself (counted failed), not left to run on."""
    c = runtime.client
    assert c is not None
    before = (await c.call("test", "stats"))["cmd_errors"]
    with pytest.raises(DeadlineExceeded):
        await c.call("test", "sleep", {"seconds": 30.0}, timeout=0.3)
    await eventually(
        lambda: c.call("test", "stats"),
        until=lambda s: s["cmd_errors"] == before + 1,
        timeout=5.0,
        what="the sleeping handler cancelled at its 0.3 s deadline, not after 30 s",
    )


async def test_retry_with_same_id_never_executes_twice(runtime: RuntimeProcess) -> None:
    """Retries of one id, sequential or concurrent, run the handler once and share its result."""
    c = runtime.client
    assert c is not None
    cid = new_id()
    first = await c.call("test", "record", {"key": "retry"}, command_id=cid)
    second = await c.call("test", "record", {"key": "retry"}, command_id=cid)
    assert first == second == 1
    cid2 = new_id()
    results = await asyncio.gather(
        *(c.call("test", "record", {"key": "concurrent"}, command_id=cid2) for _ in range(5))
    )
    assert results == [1] * 5
    assert await c.call("test", "executions") == {"concurrent": 1, "retry": 1}


async def test_commands_wait_while_restarting_and_full_queue_is_refused() -> None:
    """During a restart backoff, commands queue (bounded) and run once the service is back."""
    overrides = ["runtime.command_queue=5", "restart.backoff_initial_s=1.0", "restart.backoff_jitter=0.0"]
    async with make_runtime(["test"], overrides) as rt:
        c = rt.client
        assert c is not None
        events = await kernel_events(c)
        await c.call("kernel", "ping")
        for expected_delay in (0.0, 1.0):  # first restart at once, the second after a backoff
            pid = next(s for s in (await rt.wait_ready("test"))["services"] if s["name"] == "test")["pid"]
            os.kill(pid, signal.SIGKILL)
            ev = await c.wait_for(
                "ev.kernel", lambda e: e.payload["name"] == "SERVICE_RESTART_SCHEDULED", timeout=10, sub=events
            )
            assert ev.payload["data"]["delay_s"] == expected_delay
        calls = [asyncio.ensure_future(c.call("test", "record", {"key": f"q{i}"}, timeout=10)) for i in range(8)]
        done = await asyncio.gather(*calls, return_exceptions=True)
        assert sum(isinstance(r, QueueFull) for r in done) == 3
        assert sorted(r for r in done if isinstance(r, int)) == [1] * 5
        assert len(await c.call("test", "executions", {"prefix": "q"})) == 5


async def test_thousand_commands_across_three_kills_answered_exactly_once() -> None:
    """1,000 commands while the service is SIGKILLed 3 times: all answered, none lost, none run twice."""
    async with make_runtime(
        ["test"], ["restart.max_restarts=10", "restart.backoff_initial_s=0.05", "runtime.command_queue=256"]
    ) as rt:
        c = rt.client
        assert c is not None
        total = 1000
        answers: dict[int, object] = {}
        sem = asyncio.Semaphore(32)

        async def one(i: int) -> None:
            async with sem:
                try:
                    answers[i] = await c.call("test", "record", {"key": str(i)}, timeout=15)
                except CommandError as err:
                    answers[i] = err

        kill_task = asyncio.ensure_future(kill_at_marks(rt, answers))
        await asyncio.gather(*(one(i) for i in range(total)))
        await kill_task
        assert len(answers) == total
        failed = {i: a for i, a in answers.items() if isinstance(a, CommandError)}
        assert all(isinstance(a, ServiceFailed) for a in failed.values()), failed
        assert len(failed) <= 3 * 32  # only commands in flight at a kill may fail, never queued ones
        await rt.wait_ready("test")
        executed = await c.call("test", "executions", timeout=15)
        assert max(executed.values()) == 1, "a command ran twice"
        for i, a in answers.items():
            if not isinstance(a, CommandError):
                assert a == 1 and executed[str(i)] == 1
        assert (await rt.service("test"))["restarts"] == 3
