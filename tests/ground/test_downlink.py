"""Store-and-forward: priority order, bounded eviction, durability across reopen and crash, the byte budget."""

from __future__ import annotations

import math
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from services.ground.downlink import DownlinkStore, DownlinkStoreError, TokenBucket

REPO = Path(__file__).resolve().parents[2]


def pkt(tag: str, size: int = 100) -> bytes:
    """A packet of ``size`` bytes starting with a readable tag."""
    head = tag.encode()
    return head + b"." * (size - len(head))


def drain(store: DownlinkStore, budget: int = 10**9) -> list[bytes]:
    """Peek and ack until empty; the packets in the order they were handed out."""
    out: list[bytes] = []
    while batch := store.peek(budget):
        out.extend(data for _, data in batch)
        store.ack(i for i, _ in batch)
    return out


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self, t: float = 1000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "tm" / "downlink.db"


def test_highest_priority_first_and_fifo_within_a_priority(db: Path) -> None:
    """Packets come out by priority, oldest first inside one priority."""
    with DownlinkStore(db) as store:
        for tag, prio in [("a1", 1), ("b5", 5), ("c1", 1), ("d7", 7), ("e5", 5), ("f0", 0), ("g7", 7)]:
            assert store.put(pkt(tag), prio) is not None
        got = [data[:2].decode() for _, data in store.peek(10**6)]
    assert got == ["d7", "g7", "b5", "e5", "a1", "c1", "f0"]


def test_put_returns_increasing_ids_never_reused(db: Path) -> None:
    """Row ids grow and are not reused after an ack, so a stale ack can never delete a newer packet."""
    with DownlinkStore(db) as store:
        first = store.put(pkt("a"), 3)
        assert first is not None
        store.ack([first])
        second = store.put(pkt("b"), 3)
        assert second is not None and second > first
        store.ack([first])  # stale: must not touch the new packet
        assert [i for i, _ in store.peek(10**6)] == [second]


def test_bad_arguments_are_refused(db: Path) -> None:
    with DownlinkStore(db, max_bytes=1000) as store:
        for prio in (-1, 8, True, 2.0):
            with pytest.raises(ValueError, match="priority"):
                store.put(pkt("x"), prio)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="empty"):
            store.put(b"", 1)
        with pytest.raises(ValueError, match="never fit"):
            store.put(b"x" * 1001, 7)
        with pytest.raises(TypeError):
            store.put("text", 1)  # type: ignore[arg-type]
        assert store.stats()["stored"] == 0
    with pytest.raises(ValueError):
        DownlinkStore(db, max_bytes=0)


def test_eviction_by_bytes_lowest_priority_oldest_first(db: Path) -> None:
    """When the bytes bound is reached, the lowest priority goes first, the oldest of it first."""
    with DownlinkStore(db, max_bytes=300) as store:
        store.put(pkt("a0"), 0)
        store.put(pkt("b1"), 1)
        store.put(pkt("c0"), 0)
        assert store.stats()["bytes"] == 300
        store.put(pkt("d2"), 2)  # evicts a0 (priority 0, oldest)
        assert sorted(d[:2].decode() for _, d in store.peek(10**6)) == ["b1", "c0", "d2"]
        store.put(pkt("e2"), 2)  # evicts c0
        store.put(pkt("f2"), 2)  # evicts b1
        assert [d[:2].decode() for _, d in store.peek(10**6)] == ["d2", "e2", "f2"]
        stats = store.stats()
        assert stats["evicted_by_priority"][:3] == [2, 1, 0]
        assert stats["evicted"] == 3
        assert (stats["stored"], stats["bytes"]) == (3, 300)


def test_one_large_packet_evicts_several_small_ones(db: Path) -> None:
    with DownlinkStore(db, max_bytes=300) as store:
        for tag in ("a", "b", "c"):
            store.put(pkt(tag), 0)
        assert store.put(pkt("big", 250), 4) is not None
        assert [d[:3] for _, d in store.peek(10**6)] == [b"big"]
        assert store.stats()["evicted_by_priority"][0] == 3


def test_eviction_by_count(db: Path) -> None:
    """The packet-count bound evicts the same way as the bytes bound."""
    with DownlinkStore(db, max_packets=3) as store:
        store.put(pkt("a3", 10), 3)
        store.put(pkt("b1", 10), 1)
        store.put(pkt("c1", 10), 1)
        store.put(pkt("d2", 10), 2)  # evicts b1
        store.put(pkt("e6", 10), 6)  # evicts c1
        assert [d[:2].decode() for _, d in store.peek(10**6)] == ["e6", "a3", "d2"]
        assert store.stats()["evicted_by_priority"][1] == 2


def test_lowest_priority_packet_refused_when_full_and_counted(db: Path) -> None:
    """A new packet is refused (None) if nothing of strictly lower priority can make room; it counts as evicted."""
    with DownlinkStore(db, max_packets=2) as store:
        store.put(pkt("a2", 10), 2)
        store.put(pkt("b5", 10), 5)
        assert store.put(pkt("c2", 10), 2) is None  # equal priority: the stored one stays
        assert store.put(pkt("d0", 10), 0) is None
        assert [d[:2].decode() for _, d in store.peek(10**6)] == ["b5", "a2"]
        stats = store.stats()
        assert stats["evicted_by_priority"] == [1, 0, 1, 0, 0, 0, 0, 0]
        assert stats["evicted"] == 2 and stats["stored"] == 2


def test_refusal_evicts_nothing_when_room_cannot_be_made(db: Path) -> None:
    """Eviction is all or nothing: if lower priorities cannot free enough, they are kept and the packet refused."""
    with DownlinkStore(db, max_bytes=300) as store:
        store.put(pkt("low", 50), 0)
        store.put(pkt("high", 250), 5)
        assert store.put(pkt("mid", 200), 3) is None
        assert [d[:4] for _, d in store.peek(10**6)] == [b"high", b"low."]
        assert store.stats()["evicted_by_priority"] == [0, 0, 0, 1, 0, 0, 0, 0]


def test_put_many_is_put_in_one_transaction(db: Path) -> None:
    """put_many behaves as a sequence of put calls, including eviction and refusal."""
    with DownlinkStore(db, max_packets=2) as store:
        ids = store.put_many([(pkt("a1", 10), 1), (pkt("b1", 10), 1), (pkt("c4", 10), 4), (pkt("d0", 10), 0)])
        assert ids[0] is not None and ids[1] is not None and ids[2] is not None and ids[3] is None
        assert [i for i, _ in store.peek(10**6)] == [ids[2], ids[1]]
        assert store.put_many([]) == []


def test_everything_put_survives_close_and_reopen_in_order(db: Path) -> None:
    """Put N, close without acknowledging (even after a peek): all N are there after reopening, in order."""
    packets = [(pkt(f"p{i}", 20 + i % 7), i % 8) for i in range(200)]
    with DownlinkStore(db) as store:
        for data, prio in packets:
            store.put(data, prio)
        before = store.peek(10**9)
        assert len(before) == 200
    with DownlinkStore(db) as store:
        after = store.peek(10**9)
        assert after == before
        expected = sorted(range(200), key=lambda i: (-packets[i][1], i))
        assert [d for _, d in after] == [packets[i][0] for i in expected]
        assert store.stats()["stored"] == 200
        assert store.stats()["bytes"] == sum(len(d) for d, _ in packets)


def test_put_is_durable_without_close_across_a_process_crash(db: Path) -> None:
    """A packet is on disk when put returns: a process that dies right after (no close) loses nothing."""
    script = textwrap.dedent(
        f"""
        import os
        from pathlib import Path
        from services.ground.downlink import DownlinkStore
        store = DownlinkStore(Path({str(db)!r}))
        for i in range(50):
            store.put(b"crash-%03d" % i, i % 3)
        os._exit(0)
        """
    )
    subprocess.run([sys.executable, "-c", script], cwd=REPO, check=True, timeout=30)
    with DownlinkStore(db) as store:
        got = drain(store)
    assert sorted(got) == [b"crash-%03d" % i for i in range(50)]
    assert [int(p[-3:]) % 3 for p in got] == sorted((i % 3 for i in range(50)), reverse=True)


def test_ack_removes_and_counts_delivered(db: Path) -> None:
    with DownlinkStore(db) as store:
        ids = [i for i in (store.put(pkt(str(n)), 1) for n in range(5)) if i is not None]
        assert len(ids) == 5
        store.ack([ids[0], ids[2]])
        store.ack([ids[0]])  # twice: counted once
        store.ack([])
        store.ack([987654])  # unknown: ignored
        left = [i for i, _ in store.peek(10**6)]
        assert left == [ids[1], ids[3], ids[4]]
        stats = store.stats()
        assert stats["delivered"] == 2
        assert (stats["stored"], stats["bytes"]) == (3, 300)


def test_peek_honours_the_budget_and_the_limit(db: Path) -> None:
    """Whole packets within the budget; at least one if it fits; the scan never skips ahead of a bigger packet."""
    with DownlinkStore(db) as store:
        assert store.peek(10**6) == []
        store.put(pkt("a", 100), 5)
        store.put(pkt("b", 100), 5)
        store.put(pkt("c", 100), 5)
        assert len(store.peek(250)) == 2
        assert len(store.peek(300)) == 3
        assert len(store.peek(100)) == 1
        assert store.peek(99) == []
        assert store.peek(0) == []
        assert len(store.peek(10**6, limit=2)) == 2
        store.put(pkt("huge", 500), 7)
        store.put(pkt("tiny", 10), 0)
        assert store.peek(300) == []  # strict order: the big priority-7 packet is next
        assert [d[:4] for _, d in store.peek(700)] == [b"huge", b"a...", b"b..."]
        assert store.stats()["stored"] == 5  # peek removes nothing


def test_stats_survive_reopen(db: Path) -> None:
    with DownlinkStore(db, max_packets=2) as store:
        a = store.put(pkt("a", 10), 1)
        store.put(pkt("b", 10), 3)
        store.put(pkt("c", 10), 6)  # evicts a
        store.put(pkt("d", 10), 0)  # refused
        assert a is not None
        ids = [i for i, _ in store.peek(10**6)]
        store.ack(ids[:1])
        expected = store.stats()
    assert expected["evicted_by_priority"] == [1, 1, 0, 0, 0, 0, 0, 0]
    assert expected["delivered"] == 1
    with DownlinkStore(db, max_packets=2) as store:
        assert store.stats() == expected


def test_ten_thousand_packet_round(db: Path) -> None:
    """10,000 packets in, drained in budgeted batches: all out, each once, in priority then FIFO order."""
    n = 10_000
    with DownlinkStore(db) as store:
        ids = store.put_many((b"%05d" % i + b"x" * 60, i % 8) for i in range(n))
        assert None not in ids
        got: list[bytes] = []
        while batch := store.peek(65_000, limit=1000):
            got.extend(d for _, d in batch)
            store.ack(i for i, _ in batch)
        stats = store.stats()
    order = [int(d[:5]) for d in got]
    assert order == sorted(range(n), key=lambda i: (-(i % 8), i))
    assert (stats["stored"], stats["bytes"], stats["delivered"], stats["evicted"]) == (0, 0, n, 0)


def test_a_corrupt_packet_is_dropped_and_counted(db: Path) -> None:
    """A record failing its checksum is never downlinked; it is counted and removed."""
    with DownlinkStore(db) as store:
        store.put(pkt("good-1"), 3)
        bad = store.put(pkt("bad"), 5)
        store.put(pkt("good-2"), 1)
    raw = sqlite3.connect(db)
    raw.execute("UPDATE packets SET data = ? WHERE id = ?", (pkt("bAd"), bad))
    raw.commit()
    raw.close()
    with DownlinkStore(db) as store:
        assert [d[:6] for _, d in store.peek(10**6)] == [b"good-1", b"good-2"]
        stats = store.stats()
        assert (stats["corrupt"], stats["stored"], stats["bytes"]) == (1, 2, 200)


def test_a_corrupt_file_is_a_clear_error_naming_the_path(db: Path) -> None:
    db.parent.mkdir(parents=True)
    db.write_bytes(b"this is not an SQLite database" * 100)
    with pytest.raises(DownlinkStoreError, match=str(db)):
        DownlinkStore(db)


def test_an_unopenable_path_is_a_clear_error_naming_the_path(tmp_path: Path) -> None:
    where = tmp_path / "a-directory"
    where.mkdir()
    with pytest.raises(DownlinkStoreError, match=str(where)):
        DownlinkStore(where)


def test_an_unknown_schema_version_is_refused(db: Path) -> None:
    DownlinkStore(db).close()
    raw = sqlite3.connect(db)
    raw.execute("PRAGMA user_version = 99")
    raw.close()
    with pytest.raises(DownlinkStoreError, match="schema version 99"):
        DownlinkStore(db)


def test_database_is_wal_with_full_sync(db: Path) -> None:
    with DownlinkStore(db) as store:
        assert store._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert store._db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL


# ---------------------------------------------------------------------- TokenBucket


def test_bucket_starts_full_and_take_deducts() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate_bytes_s=100, burst_bytes=500, clock=clock)
    assert bucket.available() == 500
    assert bucket.take(300)
    assert bucket.available() == 200
    assert not bucket.take(201)  # refused: nothing deducted
    assert bucket.available() == 200
    assert bucket.take(200)
    assert not bucket.take(1)


def test_bucket_refills_at_rate_up_to_the_burst() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate_bytes_s=100, burst_bytes=500, clock=clock)
    assert bucket.take(500)
    clock.t += 1.5
    assert bucket.available() == pytest.approx(150)
    assert not bucket.take(151)
    assert bucket.take(150)
    clock.t += 3600
    assert bucket.available() == 500  # capped at the burst
    clock.t -= 10  # a clock going backwards refills nothing and breaks nothing
    assert bucket.available() == 500


def test_bucket_time_until() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate_bytes_s=100, burst_bytes=500, clock=clock)
    assert bucket.time_until(400) == 0.0
    bucket.take(500)
    assert bucket.time_until(250) == pytest.approx(2.5)
    clock.t += 2.5
    assert bucket.take(250)
    assert bucket.time_until(501) == math.inf  # larger than the burst: never
    assert TokenBucket(0, 10, clock=clock).time_until(5) == 0.0
    stalled = TokenBucket(0, 10, clock=clock)
    stalled.take(10)
    assert stalled.time_until(1) == math.inf


def test_bucket_rejects_bad_parameters() -> None:
    for rate, burst in [(-1, 10), (10, 0), (math.nan, 10), (10, math.inf)]:
        with pytest.raises(ValueError):
            TokenBucket(rate, burst, clock=FakeClock())
    with pytest.raises(ValueError):
        TokenBucket(1, 1, clock=FakeClock()).take(-1)
