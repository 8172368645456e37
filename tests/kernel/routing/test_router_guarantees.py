"""The command router's guarantees, driven deterministically: typed refusals, de-duplication, queueing, deadlines.

Every test asserts what a caller sees (the results it got, what the service was sent) and that each command got
exactly one result.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from flightos.bus.errors import AccessDenied, ServiceUnavailable, UnknownService
from flightos.config.target import Acl
from flightos.kernel.events import EventId
from flightos.kernel.records import State
from flightos.kernel.routing.router import RETRY_GRACE_S, SWEEP_S
from tests.kernel.routing.fakes import Harness, error, make_harness, value


@pytest.fixture
def h(tmp_path: Path) -> Harness:
    harness = make_harness(tmp_path)
    harness.start("svc")
    return harness


def test_a_command_to_a_ready_service_is_delivered_once_and_answered_once(h: Harness) -> None:
    h.send("svc", "c1")
    assert h.delivered("svc") == ["c1"]
    h.answer("svc", "c1", 7)
    assert value(h.only_result("c1")) == 7
    h.clock.advance(60)  # its deadline timer was disarmed: no second answer
    assert len(h.results(cid="c1")) == 1
    assert h.router.pending == {}


def test_unknown_service_is_a_typed_refusal_naming_the_services(h: Harness) -> None:
    h.send("nosuch", "c1")
    with pytest.raises(UnknownService) as exc:
        value(h.only_result("c1"))
    assert exc.value.details["available"] == ["svc"]
    assert "c1" not in h.router.results  # a refusal is not remembered against the id
    assert h.sock.to(h.ident("svc")) == []


def test_acl_denial_is_a_typed_refusal_and_an_event_and_the_command_never_reaches_the_service(tmp_path: Path) -> None:
    h = make_harness(tmp_path, ("svc", "camera"), acl=Acl(commands={"camera": ["svc.status"]}))
    h.start("svc")
    h.start("camera")
    h.send("svc", "c1", "reboot", caller=b"s/camera/1", as_service="camera")
    with pytest.raises(AccessDenied, match=r"may not run svc\.reboot"):
        value(h.only_result("c1", caller=b"s/camera/1"))
    assert [e[0] for e in h.events] == [EventId.ACCESS_DENIED]
    h.send("svc", "c2", "status", caller=b"s/camera/1", as_service="camera")  # what the ACL allows still goes
    h.send("svc", "c3", "reboot")  # and the operator is not restricted
    assert h.delivered("svc") == ["c2", "c3"]
    assert "c1" not in h.router.results


def test_a_duplicate_while_running_joins_the_execution_and_each_caller_gets_one_answer(h: Harness) -> None:
    h.send("svc", "c1", caller=b"op-1")
    h.send("svc", "c1", caller=b"op-2")
    assert h.delivered("svc") == ["c1"]
    h.answer("svc", "c1", "once")
    assert value(h.only_result("c1", caller=b"op-1")) == "once"
    assert value(h.only_result("c1", caller=b"op-2")) == "once"


def test_a_duplicate_within_the_cache_window_gets_the_first_answer_and_does_not_run_again(h: Harness) -> None:
    h.send("svc", "c1", timeout_s=2.0)
    h.answer("svc", "c1", "first")
    first = [frame for who, frame in h.sock.sent if who == b"op-1"]
    h.clock.advance(2.0 + RETRY_GRACE_S - 0.5)  # still inside the deadline + retry grace
    h.send("svc", "c1", caller=b"op-2")
    assert h.delivered("svc") == ["c1"]
    again = h.only_result("c1", caller=b"op-2")
    assert value(again) == "first"
    assert [frame for who, frame in h.sock.sent if who == b"op-2"] == first  # the very bytes the first caller got


def test_past_the_cache_window_the_same_id_runs_again(h: Harness) -> None:
    h.send("svc", "c1", timeout_s=2.0)
    h.answer("svc", "c1", "first")
    h.clock.advance(2.0 + RETRY_GRACE_S + SWEEP_S + 0.1)
    assert "c1" not in h.router.results
    h.send("svc", "c1", caller=b"op-2")
    assert h.delivered("svc") == ["c1", "c1"]


def test_commands_wait_while_the_service_restarts_and_are_delivered_once_in_order(h: Harness) -> None:
    h.killed("svc")
    h.reaped("svc", State.BACKOFF)
    for cid in ("a", "b", "c"):
        h.send("svc", cid)
    assert h.router.stats["queued"] == 3
    h.clock.advance(1.0)
    h.start("svc")
    assert h.delivered("svc") == ["a", "b", "c"]
    for cid in ("a", "b", "c"):
        h.answer("svc", cid, cid)
        assert value(h.only_result(cid)) == cid
    h.clock.advance(60)
    assert h.delivered("svc") == ["a", "b", "c"]


def test_a_full_restart_queue_refuses_with_queue_full_and_forgets_the_id(tmp_path: Path) -> None:
    h = make_harness(tmp_path, queue_cap=1)
    h.spawn("svc")
    h.send("svc", "a")
    h.send("svc", "b")
    code, _ = error(h.only_result("b"))
    assert code == "queue_full"
    assert "b" not in h.router.results
    h.ready("svc")
    assert h.delivered("svc") == ["a"]


@pytest.mark.parametrize("then", [State.FAILED, State.STOPPED])
def test_commands_queued_when_the_service_fails_or_stops_are_refused_as_not_run(h: Harness, then: State) -> None:
    h.killed("svc")
    h.send("svc", "q1")
    h.reaped("svc", then)
    with pytest.raises(ServiceUnavailable, match=f"is {then.value}"):
        value(h.only_result("q1"))
    assert "q1" not in h.router.results  # a retry may run it
    h.send("svc", "q2")  # arriving now: refused at once
    assert error(h.only_result("q2"))[0] == "service_unavailable"
    h.clock.advance(60)
    assert len(h.results()) == 2


def test_a_queued_command_past_its_deadline_is_answered_not_run_and_never_delivered_later(h: Harness) -> None:
    h.killed("svc")
    h.reaped("svc", State.BACKOFF)
    h.send("svc", "q1", timeout_s=1.0)
    h.clock.advance(1.0)
    code, details = error(h.only_result("q1"))
    assert (code, details["delivered"]) == ("deadline_exceeded", False)
    assert "q1" not in h.router.results
    h.start("svc")
    assert h.delivered("svc") == []
    h.clock.advance(60)
    assert len(h.results(cid="q1")) == 1


def test_a_delivered_command_past_its_deadline_is_answered_may_have_run_and_a_late_result_is_dropped(
    h: Harness,
) -> None:
    h.send("svc", "c1", timeout_s=1.0)
    h.clock.advance(1.0)
    code, details = error(h.only_result("c1"))
    assert (code, details["delivered"]) == ("deadline_exceeded", True)
    h.answer("svc", "c1", "late")
    assert len(h.results(cid="c1")) == 1
    h.send("svc", "c1", caller=b"op-2")  # a retry gets the same answer: it may have run, so it does not run again
    assert error(h.only_result("c1", caller=b"op-2"))[0] == "deadline_exceeded"
    assert h.delivered("svc") == ["c1"]


def test_a_service_dying_with_commands_in_flight_says_which_had_started(h: Harness) -> None:
    h.send("svc", "ran")
    h.send("svc", "waiting")
    h.takes("svc", "ran")
    h.dies("svc")
    h.reaped("svc", State.BACKOFF, "was killed by SIGKILL")
    code, details = error(h.only_result("ran"))
    assert (code, details["started"]) == ("service_failed", True)
    code, details = error(h.only_result("waiting"))
    assert (code, details["started"]) == ("service_failed", False)
    assert "waiting" not in h.router.results and "ran" in h.router.results
    h.start("svc")
    h.send("svc", "ran", caller=b"op-2")  # a retry of one that ran gets the failure, not a second run
    h.send("svc", "waiting", caller=b"op-2")  # a retry of one that never started runs it, once
    assert h.delivered("svc") == ["waiting"]
    assert error(h.only_result("ran", caller=b"op-2"))[1]["started"] is True


def test_deliveries_a_full_service_socket_cannot_take_wait_and_go_in_order(h: Harness) -> None:
    h.sock.full.add(h.ident("svc"))
    for cid in ("a", "b", "c"):
        h.send("svc", cid)
    h.clock.advance(0.1)
    assert h.delivered("svc") == []
    h.sock.full.clear()
    h.clock.advance(0.01)
    assert h.delivered("svc") == ["a", "b", "c"]
    for cid in ("a", "b", "c"):
        h.answer("svc", cid)
    assert [len(h.results(cid=cid)) for cid in ("a", "b", "c")] == [1, 1, 1]


def test_a_result_from_another_service_is_refused_as_forged_and_the_real_one_still_answers(tmp_path: Path) -> None:
    h = make_harness(tmp_path, ("svc", "rogue"))
    h.start("svc")
    h.start("rogue")
    h.send("svc", "c1")
    h.answer("rogue", "c1", "forged")
    assert h.results() == []
    assert h.router.stats["identity_forged"] == 1
    h.answer("svc", "c1", "real")
    assert value(h.only_result("c1")) == "real"


def test_oversized_commands_and_results_get_typed_errors_saying_whether_it_ran(tmp_path: Path) -> None:
    h = make_harness(tmp_path)
    h.router.max_frame_bytes = 400
    h.start("svc")
    h.send("svc", "big" + "x" * 400)
    code, details = error(h.results()[0])
    assert (code, details.get("ran")) == ("frame_too_large", None)
    assert h.delivered("svc") == []
    h.send("svc", "c1")
    h.answer("svc", "c1", "y" * 500)
    code, details = error(h.only_result("c1"))
    assert (code, details["ran"]) == ("frame_too_large", True)


def test_a_malformed_command_is_a_bad_request_and_never_routed(h: Harness) -> None:
    h.send("svc", "")
    assert error(h.results()[0])[0] == "bad_request"
    assert h.delivered("svc") == [] and h.router.pending == {}
