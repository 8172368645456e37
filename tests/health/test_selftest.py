"""The pinned known-answer self-test: the constant is right and a real worker answers from each CPU."""

from __future__ import annotations

import asyncio
import hashlib
import os

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
        await eventually(lambda: all(st.latest[c].answered is not None for c in cpus), timeout=10, interval=0.01,
                         what="the self-test worker to answer on every CPU")
        assert all(st.verdict(c, 1.0) is None for c in cpus)
        assert all(st.latest[c].digest == KNOWN_ANSWER for c in cpus)
        st.latest[999] = type(st.latest[min(cpus)])(999, 0, sent=loop.time() - 5)  # never answered
        assert "no answer" in (st.verdict(999, 1.0) or "")
    finally:
        st.stop()
