"""Event ids are stable: the code and docs/events.md list the same ids and names, the kernel's and each service's."""

from __future__ import annotations

import enum
import itertools
import re
from pathlib import Path

import pytest

from flightos.kernel.events import EventId
from services.ground import events as ground_events
from services.jobs import events as jobs_events
from services.sar import events as sar_events
from services.test import events as test_events
from services.thermwatch import events as thermwatch_events

DOC = Path(__file__).resolve().parents[2] / "docs" / "events.md"

SERVICE_EVENTS: dict[str, type[enum.IntEnum]] = {
    "ground": ground_events.GroundEvent,
    "jobs": jobs_events.JobsEvent,
    "sar": sar_events.SarEvent,
    "test": test_events.TestEvent,
    "thermwatch": thermwatch_events.ThermwatchEvent,
}
"""Each shipped service that raises events with ids, and its enum."""

RANGES = {
    "ground": (2000, 3000),
    "jobs": (3000, 4000),
    "sar": (7000, 8000),
    "thermwatch": (8000, 9000),
    "test": (17000, 18000),
}
"""The id range each service owns (docs/events.md): no two services share one, none overlaps the kernel's."""


def test_documented_ids_match_the_code() -> None:
    """Every id in the code is documented with the same name, and nothing else is."""
    rows = re.findall(r"^\| (\d+) \| (\w+) \|", DOC.read_text(), flags=re.M)
    assert {int(i): n for i, n in rows} == {e.value: e.name for e in EventId}


def test_ids_are_unique_and_grouped() -> None:
    """No id is used twice; ids are grouped by subsystem from 1001 (kernel) to 19xx (records and stores)."""
    values = [e.value for e in EventId]
    assert len(values) == len(set(values))
    assert all(1000 <= v < 2000 for v in values)


def _documented_service_ids() -> dict[str, dict[int, str]]:
    """The service tables of docs/events.md: service -> {id: name}."""
    out: dict[str, dict[int, str]] = {}
    for service, i, name in re.findall(r"^\| (\w+) \| (\d+) \| (\w+) \|", DOC.read_text(), flags=re.M):
        assert int(i) not in out.setdefault(service, {}), f"{service} {i} documented twice"
        out[service][int(i)] = name
    return out


def test_every_documented_service_has_an_enum() -> None:
    """docs/events.md documents ids only for services that declare them."""
    assert set(_documented_service_ids()) == set(SERVICE_EVENTS)


@pytest.mark.parametrize("service", sorted(SERVICE_EVENTS))
def test_service_ids_match_their_docs(service: str) -> None:
    """Each service's enum and its table in docs/events.md hold the same ids and names, in its own range."""
    ids = SERVICE_EVENTS[service]
    assert _documented_service_ids()[service] == {e.value: e.name for e in ids}
    low, high = RANGES[service]
    assert all(low <= e.value < high for e in ids)


def test_service_ranges_are_disjoint() -> None:
    """No two services (nor a service and the kernel) can raise the same id."""
    spans = sorted([(1000, 2000), *RANGES.values()])
    assert all(a_high <= b_low for (_, a_high), (b_low, _) in itertools.pairwise(spans))
