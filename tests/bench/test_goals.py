"""The goal table of ``make bench``: each of issue 15's goals judged from figures recorded in the same run."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from bench import goals


@pytest.fixture(autouse=True)
def fresh() -> Iterator[None]:
    """Every test starts from a run that recorded nothing."""
    goals.MEASURED.clear()
    yield
    goals.MEASURED.clear()


def by_goal() -> dict[str, goals.Goal]:
    """The judged goals, by their text."""
    return {g.goal: g for g in goals.rows()}


def test_a_run_that_measured_nothing_says_so_for_every_goal() -> None:
    rows = goals.rows()
    assert len(rows) >= 8
    assert {g.verdict for g in rows} == {goals.NO_DATA}
    assert "| goal |" in goals.table(rows)


def test_pubsub_ratios_are_judged_against_raw_direct_of_the_same_run() -> None:
    goals.record(("pubsub", 64, "raw direct"), 1_000_000.0)
    goals.record(("pubsub", 64, "sdk proxy"), 850_000.0)
    goals.record(("pubsub", 1024, "raw direct"), 500_000.0)
    goals.record(("pubsub", 1024, "sdk proxy"), 450_000.0)
    g = by_goal()
    assert g["pub/sub 64 B through the SDK"].verdict == goals.MET
    assert "0.85" in g["pub/sub 64 B through the SDK"].measured
    assert g["pub/sub 1 KiB through the SDK"].verdict == goals.NOT_MET  # 0.9x of a 1.0x goal
    assert g["pub/sub 64 KiB through the SDK"].verdict == goals.NO_DATA


def test_command_round_trip_is_judged_against_asyncio_and_mqtt() -> None:
    goals.record(("rtt", "test"), {"p50": 140.0, "p99": 480.0})
    goals.record(("rtt", "raw asyncio"), {"p50": 100.0, "p99": 200.0})
    goals.record(("rtt", "mqtt"), {"p50": 130.0, "p99": 300.0})
    verdicts = {g.goal: g.verdict for g in goals.rows() if "round trip" in g.goal}
    assert verdicts == {
        "command round trip p50, Client.call test.ping": goals.MET,
        "command round trip p99": goals.MET,
        "command round trip p50 vs MQTT request/reply": goals.NOT_MET,
    }


def test_a_skipped_mqtt_peer_leaves_its_goal_unjudged_with_the_reason() -> None:
    goals.record(("rtt", "test"), {"p50": 140.0, "p99": 480.0})
    goals.record("mqtt_rtt_skipped", "MQTT not measured: the mosquitto broker is not installed")
    g = by_goal()["command round trip p50 vs MQTT request/reply"]
    assert g.verdict == goals.NO_DATA
    assert "mosquitto broker is not installed" in goals.table([g])


def test_the_burst_goal_needs_every_lost_message_counted() -> None:
    run = {"mode": "one frame per message", "publishers": 64, "each": 2000, "sent": 128_000}
    goals.record("burst", [{**run, "delivered": 100_000, "counted": 0}])
    (g,) = [g for g in goals.rows() if "burst" in g.goal]
    assert g.verdict == goals.NOT_MET
    assert "28,000 lost, 0 counted" in g.measured
    goals.record(
        "burst",
        [
            {**run, "delivered": 100_000, "counted": 28_000},
            {**run, "mode": "SDK default (coalesced)", "delivered": 128_000, "counted": 0},
        ],
    )
    assert [g.verdict for g in goals.rows() if "burst" in g.goal] == [goals.MET, goals.MET]


def test_idle_and_latency_limits() -> None:
    goals.record(("idle", 8), 0.6)
    goals.record(("idle", 64), 3.4)
    goals.record(("latency", "raw proxy"), {"p50": 100.0, "p99": 180.0})
    goals.record(("latency", "sdk proxy"), {"p50": 130.0, "p99": 260.0})
    g = by_goal()
    assert g["idle kernel CPU with 8 services"].verdict == goals.MET
    assert g["idle kernel CPU with 64 services"].verdict == goals.NOT_MET
    assert g["isolated-message latency p50 through the SDK"].verdict == goals.MET  # +30 us
    assert g["isolated-message latency p99 through the SDK"].verdict == goals.NOT_MET
