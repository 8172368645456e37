"""A direct caller's re-send through the kernel (``resent: true``), in each order its service's death can be learnt.

The caller had sent the command straight to the service's own socket; the connection dropped, so it re-sends
through the kernel with the same id. The kernel must answer an id the dead incarnation had started (its started
ledger) ``service_failed`` with ``started: true`` and never deliver it again; an id it never started is delivered
once to the next incarnation. Each case is a race the end-to-end chaos tests hit only by chance.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from flightos.bus import started
from flightos.kernel.records import State
from flightos.kernel.routing.router import DEAD_LEDGER_S
from tests.kernel.routing.fakes import FakeLink, Harness, error, make_harness, value


@pytest.fixture
def h(tmp_path: Path) -> Harness:
    harness = make_harness(tmp_path)
    harness.start("svc")
    return harness


def ran_at_most_once(h: Harness, cid: str, caller: bytes = b"op-1") -> None:
    """The caller got exactly one answer for ``cid``: it had started in a dead incarnation and ran at most once."""
    code, details = error(h.only_result(cid, caller))
    assert (code, details["started"]) == ("service_failed", True), h.only_result(cid, caller)


def direct_run_then_crash(h: Harness, *cids: str) -> None:
    """The service took these commands from direct callers (its ledger says so), then died; not reaped yet."""
    for cid in cids:
        h.takes("svc", cid)
    h.dies("svc")


def test_resend_after_the_death_is_known_of_an_id_that_ran_is_answered_started_and_never_delivered(h: Harness) -> None:
    direct_run_then_crash(h, "d1")
    h.reaped("svc", State.BACKOFF)
    h.send("svc", "d1", resent=True)
    ran_at_most_once(h, "d1")
    h.start("svc")
    h.send("svc", "d1", resent=True, caller=b"op-2")  # a second re-send within the window: the same answer
    ran_at_most_once(h, "d1", b"op-2")
    h.clock.advance(60)
    assert h.delivered("svc") == []
    assert len(h.results(cid="d1")) == 1


def test_resend_of_an_id_that_never_started_is_delivered_once_to_the_next_incarnation(h: Harness) -> None:
    direct_run_then_crash(h, "other")  # the dead incarnation ran something else, not d1
    h.reaped("svc", State.BACKOFF)
    h.send("svc", "d1", resent=True)
    assert h.results() == []
    h.start("svc")
    assert h.delivered("svc") == ["d1"]
    h.answer("svc", "d1", "ran once")
    assert value(h.only_result("d1")) == "ran once"
    h.clock.advance(60)
    assert h.delivered("svc") == ["d1"]


def test_resend_before_the_death_is_known_waits_and_is_answered_from_the_ledger_when_it_is_reaped(h: Harness) -> None:
    """ZeroMQ dropped the dead process's pipe (EHOSTUNREACH) but the kernel has not reaped it: still READY."""
    direct_run_then_crash(h, "d1")
    h.send("svc", "d1", resent=True)
    h.send("svc", "d2", resent=True)  # never started: it must reach the next incarnation
    h.clock.advance(0.05)  # the router keeps retrying delivery to the unreachable incarnation
    assert h.results() == []
    h.reaped("svc", State.BACKOFF)
    ran_at_most_once(h, "d1")
    h.clock.advance(0.5)
    h.start("svc")
    assert h.delivered("svc") == ["d2"]
    h.answer("svc", "d2")
    assert value(h.only_result("d2")) == "done"
    h.clock.advance(60)
    assert len(h.results(cid="d1")) == 1 and h.delivered("svc") == ["d2"]


def test_resend_delivered_to_the_dying_incarnation_is_answered_from_its_ledger(h: Harness) -> None:
    """ZeroMQ still had the pipe: the re-send went to the incarnation that had taken it directly, and it died."""
    h.takes("svc", "d1")
    h.send("svc", "d1", resent=True)
    h.send("svc", "d2", resent=True)
    assert h.delivered("svc") == ["d1", "d2"]
    h.dies("svc")
    h.reaped("svc", State.BACKOFF)
    ran_at_most_once(h, "d1")
    code, details = error(h.only_result("d2"))  # it proves d2 never started: a retry may run it
    assert (code, details["started"]) == ("service_failed", False)


def test_resend_while_the_kernel_is_killing_the_service_never_reaches_the_next_incarnation(h: Harness) -> None:
    """Asserted only once the next incarnation is up: whichever guard answers it, d1 runs at most once."""
    h.takes("svc", "d1")
    h.killed("svc")  # RESTARTING until reaped
    h.send("svc", "d1", resent=True)
    h.send("svc", "d2", resent=True)
    assert h.results() == []
    h.reaped("svc", State.BACKOFF)
    h.start("svc")
    assert h.delivered("svc") == ["d2"]
    ran_at_most_once(h, "d1")


@pytest.mark.parametrize("then", [State.FAILED, State.STOPPED])
def test_resend_queued_before_the_death_is_known_and_the_service_then_fails_or_stops(h: Harness, then: State) -> None:
    """The 15e760c race: the queue is failed as unavailable, but what the dead incarnation started is said so."""
    direct_run_then_crash(h, "d1")
    h.send("svc", "d1", resent=True)
    h.send("svc", "d2", resent=True)
    h.reaped("svc", then)
    ran_at_most_once(h, "d1")
    code, _ = error(h.only_result("d2"))
    assert code == "service_unavailable"
    h.clock.advance(60)
    assert len(h.results()) == 2


@pytest.mark.parametrize("then", [State.FAILED, State.STOPPED])
def test_resend_arriving_when_the_service_has_failed_or_stopped(h: Harness, then: State) -> None:
    """The _route refusal: an id the dead incarnation started is not answered 'unavailable' (which says not run)."""
    direct_run_then_crash(h, "d1")
    h.reaped("svc", then)
    h.send("svc", "d1", resent=True)
    h.send("svc", "d2", resent=True)
    ran_at_most_once(h, "d1")
    assert error(h.only_result("d2"))[0] == "service_unavailable"


def test_resend_queued_while_restarting_past_its_deadline_is_not_run_and_never_delivered(h: Harness) -> None:
    direct_run_then_crash(h, "other")
    h.reaped("svc", State.BACKOFF)
    h.send("svc", "d1", resent=True, timeout_s=0.5)
    h.clock.advance(0.5)
    code, details = error(h.only_result("d1"))
    assert (code, details["delivered"]) == ("deadline_exceeded", False)
    h.start("svc")
    h.clock.advance(60)
    assert h.delivered("svc") == []
    assert len(h.results(cid="d1")) == 1


def test_resend_that_ran_and_expires_before_it_is_answered_is_never_called_not_run(h: Harness) -> None:
    """The 2aa562f race: a re-send with little time left, queued behind the unreaped death, then its deadline."""
    direct_run_then_crash(h, "d1")
    h.send("svc", "d1", resent=True, timeout_s=0.2)
    h.reaped("svc", State.BACKOFF)
    h.clock.advance(0.2)
    ran_at_most_once(h, "d1")
    h.start("svc")
    h.clock.advance(60)
    assert h.delivered("svc") == []


def test_a_resend_is_checked_against_every_kept_dead_incarnation_until_the_ledgers_expire(h: Harness) -> None:
    direct_run_then_crash(h, "d1")
    h.reaped("svc", State.BACKOFF)
    h.start("svc")  # incarnation 2 runs, then dies too
    direct_run_then_crash(h, "d2")
    h.reaped("svc", State.BACKOFF)
    h.start("svc")
    h.send("svc", "d1", resent=True)
    ran_at_most_once(h, "d1")
    h.clock.advance(DEAD_LEDGER_S + 1)
    h.send("svc", "d2", resent=True)  # too late: the ledger is gone, the new incarnation runs it
    assert h.delivered("svc") == ["d2"]


def test_resend_while_the_service_is_stopping_waits_for_the_reap(h: Harness) -> None:
    """On SIGTERM a service host closes its direct socket first, so its callers re-send while it is STOPPING.

    What the stopping process had started must not be answered 'unavailable' (which says it did not run).
    """
    h.takes("svc", "d1")
    h.stopping("svc")
    h.send("svc", "d1", resent=True)
    h.send("svc", "d2", resent=True)
    h.send("svc", "c3")  # an ordinary command is refused at once: it cannot have run
    assert error(h.only_result("c3"))[0] == "service_unavailable"
    h.dies("svc")
    h.reaped("svc", State.STOPPED, "stopped on request")
    ran_at_most_once(h, "d1")
    assert error(h.only_result("d2"))[0] == "service_unavailable"
    h.clock.advance(60)
    assert len(h.results()) == 3


@pytest.mark.parametrize("reachable", [False, True], ids=["unreaped-death", "live-at-hwm"])
def test_resend_expiring_before_its_incarnation_is_reaped_is_not_called_not_run(h: Harness, reachable: bool) -> None:
    """A re-send carries what is left of the caller's deadline, which can be less than the time to reap the process.

    Until the incarnation it was sent to is reaped, the kernel cannot prove it did not start it, so the deadline's
    answer must not say 'it was not run' (a refusal, which invites a retry that runs it again).
    """
    h.takes("svc", "d1")
    if not reachable:
        h.dies("svc")
    else:  # alive, still running it for the direct caller, but its socket is at the high-water mark
        h.sock.full.add(h.ident("svc"))
    h.send("svc", "d1", resent=True, timeout_s=0.05)
    h.clock.advance(0.05)
    code, details = error(h.only_result("d1"))
    assert code in ("deadline_exceeded", "service_failed")
    assert details.get("delivered") is not False and details.get("started") is not False
    assert "d1" in h.router.results  # remembered: a retry gets this answer and does not run it
    if not reachable:
        h.reaped("svc", State.BACKOFF)
        h.start("svc")
    else:
        h.sock.full.clear()
    h.send("svc", "d1", caller=b"op-2")  # a retry gets the same answer
    assert h.only_result("d1", b"op-2") == h.only_result("d1")
    h.clock.advance(60)
    assert h.delivered("svc") == []
    assert len(h.results(cid="d1")) == 1


def test_resend_the_reaped_incarnation_never_started_expiring_before_the_next_is_ready_is_not_run(h: Harness) -> None:
    """Once the incarnation it was sent to is reaped, its ledger proves a re-send never started: 'not run' is true."""
    h.takes("svc", "other")
    h.dies("svc")
    h.send("svc", "d1", resent=True, timeout_s=0.5)
    h.reaped("svc", State.BACKOFF)
    h.spawn("svc")  # STARTING, not ready before the deadline
    h.clock.advance(0.5)
    code, details = error(h.only_result("d1"))
    assert (code, details["delivered"]) == ("deadline_exceeded", False)
    assert "d1" not in h.router.results
    h.ready("svc")
    assert h.delivered("svc") == []


@pytest.mark.parametrize("how", ["crash", "stop"])
def test_the_result_of_a_direct_run_answers_its_queued_resend(h: Harness, how: str) -> None:
    """The service ran d1 for its direct caller and sends the kernel a copy of the result (batched, so later); the
    direct connection dropped first (the process died, or on SIGTERM closed its direct socket), and the caller's
    re-send reached the kernel before the copy, while the process was not yet reaped."""
    h.takes("svc", "d1")
    if how == "crash":
        h.dies("svc")
    else:
        h.stopping("svc")
    h.send("svc", "d1", resent=True)
    assert h.results() == []
    h.answer("svc", "d1", "the real result", direct_ms=5000)
    assert value(h.only_result("d1")) == "the real result"
    if how == "stop":
        h.dies("svc")
    h.reaped("svc", State.BACKOFF if how == "crash" else State.STOPPED)
    h.start("svc")
    h.send("svc", "d1", caller=b"op-2")  # a retry gets the same result
    assert value(h.only_result("d1", b"op-2")) == "the real result"
    h.clock.advance(60)
    assert len(h.results(cid="d1")) == 1
    assert h.delivered("svc") == []


def test_resend_after_the_service_moved_to_another_board_is_answered_from_the_ledger_here(tmp_path: Path) -> None:
    """The link stopped the service here for a board that also runs it (REMOTE): a late re-send of what the stopped
    incarnation had started is answered here, not forwarded to run again there; one it never started is forwarded."""
    link = FakeLink({})
    h = make_harness(tmp_path, link=link)
    h.start("svc")
    h.takes("svc", "d1")
    h.stopping("svc")
    h.dies("svc")
    h.reaped("svc", State.STOPPED, "runs on board b")
    h.rec("svc").state = State.REMOTE
    link.where["svc"] = "b"
    h.send("svc", "d1", resent=True)
    h.send("svc", "d2", resent=True)
    ran_at_most_once(h, "d1")
    assert [cmd.cid for cmd in link.forwarded] == ["d2"]


def test_resend_after_a_death_whose_ledger_cannot_be_read_is_answered_started_not_run_again(h: Harness) -> None:
    """The dead incarnation's ledger is there but cannot be read (here a directory took its place): it proves
    nothing, so a direct caller's re-send may have run there and is answered 'started', never delivered again."""
    direct_run_then_crash(h, "d1")
    ledger = started.ledger_path(h.runtime_dir, "svc", h.rec("svc").incarnation)
    ledger.unlink()
    ledger.mkdir()
    h.reaped("svc", State.BACKOFF)
    h.send("svc", "d1", resent=True)
    ran_at_most_once(h, "d1")
    h.start("svc")
    h.clock.advance(60)
    assert h.delivered("svc") == []
