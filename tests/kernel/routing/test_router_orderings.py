"""Every order of the events around a direct caller's re-send, checked for the router's promises.

A service ran ``d1`` for a direct caller (its ledger says so) and never took ``d2``; its connection dropped and the
caller re-sends both through the kernel. The events, in every order the world allows:

- ``A`` the re-sends arrive; ``D`` the process dies (crash) or is told to stop (SIGTERM: STOPPING, its direct
  socket closed); ``C`` the copy of d1's result reaches the kernel; ``R`` the kernel reaps the process;
  ``S`` the next incarnation starts and is ready; ``T`` the re-sends' deadline passes.

Whatever the order: each caller gets exactly one answer per id; d1 never reaches the next incarnation and is never
answered with a refusal (which says it did not run), and once the copy of its result is in, that is its answer;
d2 reaches the next incarnation at most once, and a refusal for it means it was not delivered there.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from flightos.kernel.records import State
from flightos.kernel.routing.router import is_refusal
from tests.kernel.routing.fakes import Harness, make_harness

EVENTS = "ADCRST"
DEADLINE_S = 1.0


def possible(order: str) -> bool:
    """Orders the world allows: the copy comes from a process not yet reaped, which dies before it is reaped."""
    at = order.index
    return at("D") < at("R") < at("S") and at("C") < at("R")


ORDERS = ["".join(p) for p in itertools.permutations(EVENTS) if possible("".join(p))]


def play(h: Harness, order: str, how: str) -> None:
    for event in order:
        if event == "A":
            h.send("svc", "d1", resent=True, timeout_s=DEADLINE_S)
            h.send("svc", "d2", resent=True, timeout_s=DEADLINE_S)
        elif event == "D":
            if how == "crash":
                h.dies("svc")
            else:
                h.stopping("svc")
        elif event == "C":
            h.answer("svc", "d1", "d1 ran directly", direct_ms=int(DEADLINE_S * 1000))
        elif event == "R":
            if how == "stop":
                h.dies("svc")
            h.reaped("svc", State.BACKOFF if how == "crash" else State.STOPPED)
        elif event == "S":
            h.start("svc")
        elif event == "T":
            h.clock.advance(DEADLINE_S)
        h.clock.advance(0.01)  # the router's own timers (its delivery retries) run between events


@pytest.mark.parametrize("how", ["crash", "stop"])
@pytest.mark.parametrize("order", ORDERS)
def test_every_order_keeps_the_promises(tmp_path: Path, order: str, how: str) -> None:
    h = make_harness(tmp_path)
    h.start("svc")
    h.takes("svc", "d1")
    play(h, order, how)
    for cid in h.delivered("svc", 2):  # the next incarnation answers whatever it was given
        h.takes("svc", cid)
        h.answer("svc", cid, f"{cid} ran in incarnation 2")
    h.clock.advance(60)

    d1, d2 = h.only_result("d1"), h.only_result("d2")  # exactly one answer each
    assert "d1" not in h.delivered("svc", 2), "d1 had started in incarnation 1: it must not run again"
    assert not is_refusal(d1), f"d1 had started, but its answer says it did not run: {d1}"
    if order.index("C") < order.index("T"):  # the kernel had d1's real result before anything else could answer it
        assert d1.get("value") == "d1 ran directly", d1
    assert h.delivered("svc", 2).count("d2") <= 1
    if is_refusal(d2):
        assert "d2" not in h.delivered("svc", 2), f"d2 ran in incarnation 2, but its answer says it did not run: {d2}"
    assert h.router.pending == {} and not h.rec("svc").queue
