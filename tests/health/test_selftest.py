"""The pinned known-answer self-test: the constant is right and a real worker answers from each CPU."""

from __future__ import annotations

import asyncio
import hashlib
import os
import signal

from flightos.kernel.health.selftest import BUFFER, KNOWN_ANSWER, SelfTester
from flightos.testing import eventually


def test_known_answer_is_the_digest_of_the_buffer() -> None:
    """The hard-coded answer is what hashlib computes (no typo can pass)."""
    assert hashlib.sha256(BUFFER).hexdigest() == KNOWN_ANSWER


async def test_worker_answers_from_every_cpu_and_flags_overdue() -> None:
    """Each CPU answers correctly; a test never answered is reported after the timeout."""
    st = SelfTester()
    st.start()
    try:
        cpus = os.sched_getaffinity(0)
        st.request(set(cpus))
        loop = asyncio.get_running_loop()
        await eventually(
            lambda: all(st.latest[c].answered is not None for c in cpus),
            timeout=10,
            interval=0.01,
            what="the self-test worker to answer on every CPU",
        )
        assert all(st.verdict(c, 1.0) is None for c in cpus)
        assert all(st.latest[c].digest == KNOWN_ANSWER for c in cpus)
        st.latest[999] = type(st.latest[min(cpus)])(999, 0, sent=loop.time() - 5)  # never answered
        assert "no answer" in (st.verdict(999, 1.0) or "")
    finally:
        st.stop()


async def test_tests_are_timed_from_the_workers_readiness() -> None:
    """A worker whose interpreter is held before it is ready blames no CPU; its answers count once it runs."""
    st = SelfTester()
    st.start()
    assert st.proc is not None
    os.kill(st.proc.pid, signal.SIGSTOP)  # an interpreter that starts very slowly
    try:
        cpus = os.sched_getaffinity(0)
        st.request(set(cpus))
        await asyncio.sleep(0.3)  # longer than the timeout below: time passing is what is tested
        assert st.ready_at is None
        assert all(st.verdict(c, 0.1) is None for c in cpus)
        assert st.worker_fault(0.1, start_limit_s=30) is None
        os.kill(st.proc.pid, signal.SIGCONT)
        await eventually(
            lambda: all(st.latest[c].answered is not None for c in cpus),
            timeout=10,
            interval=0.01,
            what="answers once the worker is ready",
        )
        assert st.start_s is not None and st.start_s >= 0.3
        assert all(st.verdict(c, 0.1) is None for c in cpus)
    finally:
        os.kill(st.proc.pid, signal.SIGCONT)
        st.stop()


async def test_a_worker_that_answers_for_no_cpu_is_a_worker_fault() -> None:
    """A silent worker blames no core; it is named as the fault, and a restarted one answers again."""
    st = SelfTester()
    st.start()
    try:
        await eventually(
            lambda: (st._on_output(), st.ready_at)[1] is not None,
            timeout=10,
            interval=0.01,
            what="the worker to be ready",
        )
        assert st.proc is not None
        os.kill(st.proc.pid, signal.SIGSTOP)
        cpus = os.sched_getaffinity(0)
        st.request(set(cpus))
        await eventually(
            lambda: st.worker_fault(0.1, 30) is not None, timeout=5, interval=0.02, what="the silent worker to be named"
        )
        assert "answered for no CPU" in (st.worker_fault(0.1, 30) or "")
        assert all(st.verdict(c, 0.1) is None for c in cpus)
        st.restart()
        assert st.restarts == 1
        st.request(set(cpus))
        await eventually(
            lambda: all(st.latest[c].answered is not None for c in cpus),
            timeout=10,
            interval=0.01,
            what="the restarted worker to answer",
        )
        assert st.worker_fault(0.1, 30) is None
    finally:
        st.stop()


async def test_a_worker_that_exits_is_a_worker_fault() -> None:
    """A worker that died is reported as such, not as every core failing."""
    st = SelfTester()
    st.start()
    try:
        assert st.proc is not None
        st.proc.kill()
        st.proc.wait()
        assert "exited" in (st.worker_fault(1.0, 30) or "")
    finally:
        st.stop()
