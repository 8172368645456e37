"""Kernel event ids are stable: the code and docs/events.md list the same ids and names."""

from __future__ import annotations

import re
from pathlib import Path

from flightos.kernel.events import EventId

DOC = Path(__file__).resolve().parents[2] / "docs" / "events.md"


def test_documented_ids_match_the_code() -> None:
    """Every id in the code is documented with the same name, and nothing else is."""
    rows = re.findall(r"^\| (\d+) \| (\w+) \|", DOC.read_text(), flags=re.M)
    assert {int(i): n for i, n in rows} == {e.value: e.name for e in EventId}


def test_ids_are_unique_and_grouped() -> None:
    """No id is used twice; ids are grouped by subsystem from 1001 (kernel) to 19xx (records and stores)."""
    values = [e.value for e in EventId]
    assert len(values) == len(set(values))
    assert all(1000 <= v < 2000 for v in values)
