"""Fault campaign: corrupt or lost files are loud (issue 12, item 4) — service stores and the run record."""

from __future__ import annotations

from pathlib import Path

import pytest

from flightos.kernel.recorder import RunRecorder
from flightos.sdk.store import Store
from tests.runtimes import kernel_events, make_runtime


def _corrupt_header(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[:16] = b"definitely-not-a"  # SQLite's magic string is the first 16 bytes
    path.write_bytes(bytes(data))


def test_a_corrupt_store_is_kept_aside_and_replaced(tmp_path: Path) -> None:
    """Corrupt header: the file is kept under a .corrupt- name, the store opens empty, the incident names the file."""
    path = tmp_path / "store.sqlite"
    s = Store(path)
    s.set("frames", 41)
    s.close()
    _corrupt_header(path)
    s = Store(path)
    assert s.get("frames") is None
    assert len(s.incidents) == 1 and str(path) in s.incidents[0] and "not a database" in s.incidents[0]
    kept = list(tmp_path.glob("store.sqlite.corrupt-*"))
    assert len(kept) == 1 and kept[0].read_bytes().startswith(b"definitely-not-a")
    s.set("frames", 1)
    s.close()
    assert Store(path).get("frames") == 1


def test_a_store_truncated_to_zero_bytes_is_an_incident(tmp_path: Path) -> None:
    """A store that held data and is now 0 bytes (or gone) is reported, never taken for a fresh one."""
    path = tmp_path / "store.sqlite"
    s = Store(path)
    s.set("k", "v")
    s.close()
    path.write_bytes(b"")
    for side in tmp_path.glob("store.sqlite-*"):
        side.unlink()
    s = Store(path)
    assert len(s.incidents) == 1 and "truncated to 0 bytes" in s.incidents[0]
    s.set("k", "again")
    s.close()
    path.unlink()
    s = Store(path)
    assert len(s.incidents) == 1 and "missing" in s.incidents[0]
    s.close()


def test_a_new_store_is_not_an_incident(tmp_path: Path) -> None:
    """A first start is quiet."""
    s = Store(tmp_path / "store.sqlite")
    assert s.incidents == []
    s.close()
    assert Store(tmp_path / "store.sqlite").incidents == []


def test_run_record_losses_on_a_full_disk_are_counted_and_reported_once_per_interval(tmp_path: Path) -> None:
    """Writes that fail (ENOSPC from /dev/full) are counted and reported as one event with a count."""
    if not Path("/dev/full").exists():
        pytest.skip("/dev/full is not available on this system")
    rec = RunRecorder(tmp_path / "runs", {"target": "t"})
    reports: list[tuple[int, int, str]] = []
    rec.on_drop = lambda lost, total, why: reports.append((lost, total, why))
    rec.start()
    rec._events = open("/dev/full", "a", buffering=1, encoding="utf-8")  # noqa: SIM115 - the disk is full
    for i in range(500):
        rec.event("ev.kernel", "kernel", i, {"id": 1, "severity": 1, "message": "x" * 40})
    assert rec.dropped == 500
    assert len(reports) == 1 and reports[0][0] == 1 and "No space left" in reports[0][2]
    rec.close()


async def test_a_service_with_a_corrupt_store_starts_and_raises_a_high_event() -> None:
    """End to end: the test service's store is corrupted while it is stopped; it starts, says so, and serves."""
    async with make_runtime(["test"]) as rt:
        assert rt.client is not None
        await rt.client.call("test", "set_param", {"name": "greeting", "value": "hello"})
        await rt.client.call("kernel", "stop", {"service": "test"})
        store = rt.state_dir / "test" / "store.sqlite"
        _corrupt_header(store)
        events = await kernel_events(rt.client)
        await rt.client.call("kernel", "ping")
        await rt.client.call("kernel", "start", {"service": "test"})
        ev = await rt.client.wait_for(
            "ev.kernel", lambda e: e.payload.get("name") == "STORE_QUARANTINED", timeout=20, sub=events
        )
        assert ev.payload["severity_name"] == "HIGH" and ev.payload["data"]["service"] == "test"
        assert str(store) in ev.payload["message"] and "not a database" in ev.payload["message"]
        assert (await rt.client.call("test", "ping"))["reply"] == "pong"  # the lost parameter is back to default
        assert list(store.parent.glob("store.sqlite.corrupt-*"))
