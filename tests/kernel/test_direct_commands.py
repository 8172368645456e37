"""Operators' commands one hop to the service (flightos.bus.direct), with the kernel's guarantees kept."""

from __future__ import annotations

import asyncio
import os
import signal
from typing import Any

import pytest

from flightos.bus import envelope, started
from flightos.bus.direct import in_runtime
from flightos.bus.errors import BadArguments, CommandError, ServiceFailed, UnknownCommand
from flightos.client import Client
from flightos.testing import RuntimeProcess, eventually
from tests.runtimes import kill_at_marks, make_runtime


async def _kernel_stats(c: Client) -> dict[str, int]:
    return dict((await c.call("kernel", "status"))["bus"]["commands"])


async def _direct(c: Client) -> None:
    """Wait until the client's direct connection to the test service carries commands."""

    async def sent() -> int:
        await c.call("test", "ping")
        return c.commands.direct_stats["sent"]

    await eventually(sent, until=lambda n: n > 0, timeout=10, what="a command sent one hop to the service")


def _pid(status: dict[str, Any], name: str) -> int:
    return int(next(s for s in status["services"] if s["name"] == name)["pid"])


async def test_direct_commands_answer_as_through_the_kernel_and_run_once_under_retry(
    runtime: RuntimeProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Same values and typed errors one hop away; the kernel keeps each result, so a retry does not run it again."""
    c = runtime.client
    assert c is not None
    await _direct(c)
    before = c.commands.direct_stats["sent"]
    assert (await c.call("test", "echo", {"value": [1, "x"]})) == [1, "x"]
    with pytest.raises(UnknownCommand, match="nope"):
        await c.call("test", "nope")
    with pytest.raises(BadArguments, match="seconds"):
        await c.call("test", "sleep", {"seconds": "soon"})
    with pytest.raises(CommandError, match="boom") as info:
        await c.call("test", "fail", {"message": "boom"})
    assert info.value.code == "command_failed"
    assert c.commands.direct_stats["sent"] == before + 4

    cid = "d" * 32
    monkeypatch.setattr(envelope, "new_id", lambda: cid)  # the id the client generates
    assert await c.call("test", "record", {"key": "direct-retry"}) == 1  # a fresh id: one hop
    monkeypatch.undo()
    assert c.commands.direct_stats["sent"] == before + 5
    await eventually(
        lambda: _kernel_stats(c),
        until=lambda s: s["direct"] >= 5,
        timeout=5,
        what="the kernel holding copies of the direct results",
    )
    assert await c.call("test", "record", {"key": "direct-retry"}, command_id=cid) == 1  # the retry: via the kernel
    assert await c.call("test", "executions", {"prefix": "direct-"}) == {"direct-retry": 1}


async def test_a_direct_command_whose_service_dies_is_answered_once_and_held_commands_run_after() -> None:
    """The connection drops with a command running: the kernel answers it started (no second run in the next
    incarnation); commands sent during the restart are held by the kernel and run once the service is back."""
    overrides = ["restart.backoff_initial_s=0.5", "restart.backoff_jitter=0.0"]
    async with make_runtime(["test"], overrides) as rt:
        c = rt.client
        assert c is not None
        await _direct(c)
        pid = _pid(await c.call("kernel", "status"), "test")
        running = asyncio.ensure_future(c.call("test", "sleep", {"seconds": 3.0}, timeout=8.0))
        await eventually(lambda: c.commands._direct, until=bool, timeout=5, what="the sleep in flight directly")
        entry = started.digest(next(iter(c.commands._direct)))

        def taken() -> bool:
            return any(entry in (started.read_started(p) or ()) for p in rt.runtime_dir.glob("started-test-*"))

        await eventually(taken, until=bool, timeout=5, what="the service's started ledger holding the sleep")
        os.kill(pid, signal.SIGKILL)
        with pytest.raises(ServiceFailed) as info:
            await running
        assert info.value.details["started"] is True
        assert c.commands.direct_stats["resent"] >= 1
        during = [asyncio.ensure_future(c.call("test", "record", {"key": f"held-{i}"}, timeout=10.0)) for i in range(5)]
        assert await asyncio.gather(*during) == [1] * 5
        assert await c.call("test", "executions", {"prefix": "held-"}) == {f"held-{i}": 1 for i in range(5)}
        assert _pid(await c.call("kernel", "status"), "test") != pid
        await _direct(c)  # and one hop again to the new incarnation


def test_a_caller_inside_the_runtime_is_sent_to_the_kernel() -> None:
    """Below the kernel, in a service's cgroup, gone or without credentials: the kernel judges (and applies the ACL)."""
    tree = {300: 200, 200: 100, 100: 1, 1: 0, 400: 1, 500: 1}
    grouped = {500}

    def judge(pid: int) -> bool:
        return in_runtime(pid, 100, parent=tree.get, grouped=lambda p: p in grouped)

    assert judge(300) and judge(200) and judge(100)  # a service, a child of it, the kernel itself
    assert not judge(400)  # an operator's process
    assert judge(500)  # left the tree but still in a service's group
    assert judge(999)  # gone: cannot tell
    assert judge(0)  # no peer credentials


async def test_chaos_direct_commands_across_kills_run_at_most_once_and_answer_once() -> None:
    """600 one-hop commands while the service is SIGKILLed 3 times: each gets one answer, and what it says holds
    (a value: ran once; started: true: at most once; started: false, unavailable or queue full: not at all)."""
    async with make_runtime(
        ["test"], ["restart.max_restarts=10", "restart.backoff_initial_s=0.05", "runtime.command_queue=256"]
    ) as rt:
        c = rt.client
        assert c is not None
        await _direct(c)
        answers: dict[int, object] = {}
        sem = asyncio.Semaphore(32)

        async def one(i: int) -> None:
            async with sem:
                try:
                    answers[i] = await c.call("test", "record", {"key": f"chaos-{i}"}, timeout=15)
                except CommandError as err:
                    answers[i] = err

        kill_task = asyncio.ensure_future(kill_at_marks(rt, answers, (150, 300, 450)))
        await asyncio.gather(*(one(i) for i in range(600)))
        await kill_task
        await rt.wait_ready("test")
        executed = await c.call("test", "executions", {"prefix": "chaos-"}, timeout=15)
        assert len(answers) == 600
        assert max(executed.values()) == 1, "a command ran twice"
        for i, a in answers.items():
            ran = executed.get(f"chaos-{i}", 0)
            if isinstance(a, ServiceFailed):
                assert ran <= 1 if a.details["started"] else ran == 0, (i, a.details, ran)
            elif isinstance(a, CommandError):
                assert a.code in ("service_unavailable", "queue_full") and ran == 0, (i, a.code, ran)
            else:
                assert a == 1 and ran == 1, (i, a, ran)
        failed = [a for a in answers.values() if isinstance(a, ServiceFailed)]
        print(
            f"600 direct commands, 3 kills: {c.commands.direct_stats}; service_failed started: true "
            f"{sum(bool(a.details['started']) for a in failed)}, started: false "
            f"{sum(not a.details['started'] for a in failed)}; ran once {sum(executed.values())}"
        )
        # Both paths were exercised (how many took which depends on the machine's speed, not on correctness).
        assert c.commands.direct_stats["sent"] > 0 and c.commands.direct_stats["via_kernel"] > 0
