"""ST[11] schedule: release order, enable/disable, persistence, delete, reset, time shift, refusals, atomic release."""

from __future__ import annotations

import math
import sqlite3
from pathlib import Path

import pytest

from services.ground.schedule import Activity, Schedule, ScheduleError

NOW = 1_700_000_000.0


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "ground" / "schedule.db"


def is_enabled(s: Schedule) -> bool:
    """The flag, read through a call so the type checker does not narrow it across set_enabled."""
    return s.enabled


def tcs(activities: list[Activity]) -> list[bytes]:
    return [a.tc for a in activities]


def test_insert_and_due_in_release_order(db: Path) -> None:
    """Activities come out at their time, in release order (insertion order for equal times), once."""
    with Schedule(db) as s:
        s.insert(NOW + 30, b"c", request_id=3, source="ground", now_utc=NOW)
        s.insert(NOW + 10, b"a", request_id=1, source="ground", now_utc=NOW)
        s.insert(NOW + 20, b"b1", request_id=2, source="ground", now_utc=NOW)
        s.insert(NOW + 20, b"b2", request_id=4, source="ops", now_utc=NOW + 1)
        assert s.next_release() == NOW + 10
        assert s.due(NOW + 9.999) == []
        first = s.due(NOW + 10)
        assert tcs(first) == [b"a"]
        a = first[0]
        assert (a.release_utc, a.request_id, a.source, a.inserted_utc) == (NOW + 10, 1, "ground", NOW)
        assert tcs(s.due(NOW + 25)) == [b"b1", b"b2"]
        assert s.next_release() == NOW + 30
        assert tcs(s.due(NOW + 1000)) == [b"c"]
        assert s.due(NOW + 2000) == []
        assert s.next_release() is None
        assert s.summary() == []


def test_release_exactly_now_is_accepted_and_due_at_once(db: Path) -> None:
    with Schedule(db) as s:
        s.insert(NOW, b"now", 1, "ground", now_utc=NOW)
        assert tcs(s.due(NOW)) == [b"now"]


def test_due_only_when_enabled(db: Path) -> None:
    """A disabled schedule releases nothing but keeps its activities; re-enabled, the overdue ones come out."""
    with Schedule(db) as s:
        assert is_enabled(s)  # a new schedule releases
        s.insert(NOW + 10, b"x", 1, "ground", now_utc=NOW)
        s.set_enabled(False)
        assert s.due(NOW + 100) == []
        assert len(s.summary()) == 1
        assert not is_enabled(s)
        s.enabled = True  # the property persists too
        assert is_enabled(s)
        assert [(a.tc, a.release_utc) for a in s.due(NOW + 100)] == [(b"x", NOW + 10)]


def test_activities_and_enabled_flag_survive_reopen(db: Path) -> None:
    with Schedule(db) as s:
        ids = [s.insert(NOW + i, b"tc%d" % i, 100 + i, "ground", now_utc=NOW) for i in (3, 1, 2)]
        s.set_enabled(False)
        before = s.summary()
    with Schedule(db) as s:
        assert not s.enabled
        assert s.summary() == before
        assert [a.id for a in before] == [ids[1], ids[2], ids[0]]
        assert s.due(NOW + 10) == []
        s.set_enabled(True)
    with Schedule(db) as s:
        assert s.enabled
        assert tcs(s.due(NOW + 10)) == [b"tc1", b"tc2", b"tc3"]


def test_delete_by_request_id(db: Path) -> None:
    """Every activity carrying a given request id goes (ground tools may reuse sequence counts)."""
    with Schedule(db) as s:
        s.insert(NOW + 1, b"a", 7, "ground", now_utc=NOW)
        s.insert(NOW + 2, b"b", 8, "ground", now_utc=NOW)
        s.insert(NOW + 3, b"c", 7, "ground", now_utc=NOW)
        s.insert(NOW + 4, b"d", 9, "ground", now_utc=NOW)
        assert s.delete([7, 42]) == 2
        assert tcs(s.summary()) == [b"b", b"d"]
        assert s.delete([]) == 0
        assert s.delete(iter([9, 9])) == 1
        assert tcs(s.summary()) == [b"b"]
        assert s.delete(range(1000)) == 1  # more ids than fit one SQL statement
        assert s.summary() == []


def test_reset_deletes_everything_and_keeps_the_flag(db: Path) -> None:
    with Schedule(db) as s:
        for i in range(5):
            s.insert(NOW + i, b"x", i, "ground", now_utc=NOW)
        s.set_enabled(False)
        assert s.reset() == 5
        assert s.summary() == [] and s.next_release() is None
        assert not s.enabled
        assert s.reset() == 0


def test_time_shift_moves_everything(db: Path) -> None:
    with Schedule(db) as s:
        s.insert(NOW + 100, b"a", 1, "ground", now_utc=NOW)
        s.insert(NOW + 200, b"b", 2, "ground", now_utc=NOW)
        assert s.time_shift(50.0, now_utc=NOW) == 2
        assert [a.release_utc for a in s.summary()] == [NOW + 150, NOW + 250]
        assert s.time_shift(-150.0, now_utc=NOW) == 2  # exactly to now is allowed
        assert [a.release_utc for a in s.summary()] == [NOW, NOW + 100]
    with Schedule(db) as s:  # shifted times persisted, checksums still good
        assert tcs(s.due(NOW)) == [b"a"]
        assert s.corrupt == 0
        assert s.time_shift(10, now_utc=NOW) == 1


def test_time_shift_into_the_past_is_refused_and_moves_nothing(db: Path) -> None:
    with Schedule(db) as s:
        s.insert(NOW + 100, b"a", 1, "ground", now_utc=NOW)
        s.insert(NOW + 200, b"b", 2, "ground", now_utc=NOW)
        with pytest.raises(ValueError, match="past"):
            s.time_shift(-150.0, now_utc=NOW)
        assert [a.release_utc for a in s.summary()] == [NOW + 100, NOW + 200]
        with pytest.raises(ValueError):
            s.time_shift(math.nan, now_utc=NOW)
    with Schedule(db.with_name("empty.db")) as empty:
        assert empty.time_shift(-1e9, now_utc=NOW) == 0


def test_a_release_time_in_the_past_is_refused(db: Path) -> None:
    with Schedule(db) as s:
        with pytest.raises(ValueError, match="in the past"):
            s.insert(NOW - 0.001, b"late", 1, "ground", now_utc=NOW)
        for bad in (math.nan, math.inf):
            with pytest.raises(ValueError):
                s.insert(bad, b"x", 1, "ground", now_utc=NOW)
        with pytest.raises(ValueError, match="request_id"):
            s.insert(NOW + 1, b"x", 2**64, "ground", now_utc=NOW)
        with pytest.raises(TypeError):
            s.insert(NOW + 1, "text", 1, "ground", now_utc=NOW)  # type: ignore[arg-type]
        assert s.summary() == []


def test_a_full_schedule_is_refused(db: Path) -> None:
    with Schedule(db, max_activities=3) as s:
        for i in range(3):
            s.insert(NOW + i, b"x", i, "ground", now_utc=NOW)
        with pytest.raises(ValueError, match="full"):
            s.insert(NOW + 10, b"y", 9, "ground", now_utc=NOW)
        assert len(s.summary()) == 3
        s.due(NOW)  # one released: room again
        s.insert(NOW + 10, b"y", 9, "ground", now_utc=NOW)
        assert len(s.summary()) == 3


def test_due_is_atomic_an_activity_is_released_once_also_across_reopen(db: Path) -> None:
    """What due returns is gone from disk in the same transaction: neither a second call nor a reboot repeats it."""
    with Schedule(db) as s:
        for i in range(10):
            s.insert(NOW + i, b"%d" % i, i, "ground", now_utc=NOW)
        released = s.due(NOW + 4)
        assert tcs(released) == [b"0", b"1", b"2", b"3", b"4"]
        assert s.due(NOW + 4) == []
    with Schedule(db) as s:
        assert s.due(NOW + 4) == []
        assert tcs(s.due(NOW + 100)) == [b"5", b"6", b"7", b"8", b"9"]
    with Schedule(db) as s:
        assert s.due(NOW + 100) == [] and s.summary() == []


def test_two_handles_never_release_the_same_activity(db: Path) -> None:
    """Even two openers of one file (say, a restarted service racing its predecessor) split, never duplicate."""
    with Schedule(db) as a, Schedule(db) as b:
        for i in range(6):
            a.insert(NOW + i, b"%d" % i, i, "ground", now_utc=NOW)
        first = a.due(NOW + 2)
        second = b.due(NOW + 10)
        assert tcs(first) == [b"0", b"1", b"2"]
        assert tcs(second) == [b"3", b"4", b"5"]


def test_a_corrupt_activity_is_never_released(db: Path) -> None:
    """An activity failing its checksum (a flipped TC byte or release time) is dropped and counted, not run."""
    with Schedule(db) as s:
        s.insert(NOW + 1, b"good", 1, "ground", now_utc=NOW)
        bad_tc = s.insert(NOW + 2, b"flip", 2, "ground", now_utc=NOW)
        bad_time = s.insert(NOW + 3, b"late", 3, "ground", now_utc=NOW)
    raw = sqlite3.connect(db)
    raw.execute("UPDATE activities SET tc = ? WHERE id = ?", (b"flop", bad_tc))
    raw.execute("UPDATE activities SET release_utc = release_utc + 1 WHERE id = ?", (bad_time,))
    raw.commit()
    raw.close()
    with Schedule(db) as s:
        assert tcs(s.due(NOW + 100)) == [b"good"]
        assert s.corrupt == 2
        assert s.summary() == []
    with Schedule(db) as s:
        assert s.corrupt == 2


def test_a_corrupt_file_is_a_clear_error_naming_the_path(db: Path) -> None:
    db.parent.mkdir(parents=True)
    db.write_bytes(b"\x00garbage" * 1000)
    with pytest.raises(ScheduleError, match=str(db)):
        Schedule(db)


def test_database_is_wal_with_full_sync(db: Path) -> None:
    with Schedule(db) as s:
        assert s._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert s._db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL


def test_time_shift_does_not_re_sign_a_corrupt_activity(db: Path) -> None:
    """A shift moves (and re-checksums) only intact activities: corruption is never laundered into a valid record."""
    with Schedule(db) as s:
        s.insert(NOW + 10, b"good", 1, "ground", now_utc=NOW)
        bad = s.insert(NOW + 5, b"flip", 2, "ground", now_utc=NOW)
    raw = sqlite3.connect(db)
    raw.execute("UPDATE activities SET tc = ? WHERE id = ?", (b"flop", bad))
    raw.commit()
    raw.close()
    with Schedule(db) as s:
        assert s.time_shift(-10.0, now_utc=NOW) == 1  # the corrupt one (NOW + 5 -> past) neither blocks nor moves
        assert [(a.tc, a.release_utc) for a in s.due(NOW + 100)] == [(b"good", NOW)]
        assert s.corrupt == 1
