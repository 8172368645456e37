"""Fault campaign: stored data is never deleted before the ground has it (issue 12, items 1, 2 and 4 for ground).

Before: a full state disk crash-looped the ground service ("database or disk is full", exit 70) until it
was FAILED; products "sent" into a TCP socket that never read were gone from the store; a corrupt SQLite
header in downlink.sqlite or schedule.sqlite crash-looped it too, and a store truncated to 0 bytes came
back empty without a word. Now telemetry stays in the store until an authenticated TC[15,130] names it,
and is sent again until then; a store that cannot be written degrades to a bounded memory queue (lowest
priority dropped first, counted, one event) and recovers by itself; a damaged or emptied store is kept
aside as ``<name>.corrupt-<UTC time>`` with a HIGH event, and the service starts with a fresh one.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import sqlite3
import subprocess
import time
from collections.abc import Awaitable, Iterator
from pathlib import Path
from typing import Any

import pytest

from flightos.ground import pus
from flightos.groundtools.console import GroundClient
from flightos.testing import RuntimeProcess
from flightos.testing.bus import Bus
from flightos.testing.eventually import eventually
from services.ground.downlink import DownlinkStore, RateLimit, Retention
from services.ground.durable import is_corruption
from tests.ground.conftest import ports, start, tcp_ground

QUIET = ['services.ground.options.contact={mode = "after_tc", hold_s = 1.0}']
"""Contact lapses 1 s after the last TC, so products are kept for later, not sent at once."""


def tm(i: int, size: int = 40) -> bytes:
    """A real PUS TM packet (so it has an identity) with ``size`` bytes of data."""
    return pus.tm(128, 1, f"{i:06d}".encode().ljust(size, b"."), 100, i)


async def status(rt: RuntimeProcess) -> dict[str, Any]:
    assert rt.client is not None
    return dict(await rt.client.call("ground", "link_status"))


async def products(g: GroundClient, names: set[str], want: int, timeout: float) -> None:
    """Receive TM[128,1] until ``want`` distinct product names arrived (duplicates are allowed: at-least-once).

    When nothing arrives for a second the ground pings, as a ground station renews a pass: a new contact
    is when the spacecraft sends again what was not acknowledged.
    """
    deadline = time.monotonic() + timeout
    while len(names) < want:
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"only {len(names)} of {want} products arrived within {timeout} s"
        try:
            got = await g.next_tm(min(remaining, 1.0))
        except asyncio.TimeoutError:
            await g.ping()
            continue
        if got.service == 128:
            (_, name, _), _ = pus.decode_values(["str", "str", "any"], bytes(got.source_data))
            names.add(name)


async def send_products(rt: RuntimeProcess, n: int, size: int = 600) -> None:
    """``n`` products of ``size`` bytes from the test service (p0 .. p<n-1>), 25 commands in flight at a time."""
    assert rt.client is not None
    client = rt.client
    for start_at in range(0, n, 25):
        await asyncio.gather(
            *(
                client.call("test", "product", {"name": f"p{i}", "data": "x" * size, "priority": 5}, timeout=20)
                for i in range(start_at, min(n, start_at + 25))
            )
        )


# ---------------------------------------------------------------------- the store itself


def test_sent_telemetry_stays_until_ground_acknowledges_it(tmp_path: Path) -> None:
    """Sent packets stay (unacknowledged) and are offered again after the timeout; an acknowledgement deletes
    exactly what it names, across a restart; a new contact makes every unacknowledged packet pending again."""
    path = tmp_path / "downlink.sqlite"
    with DownlinkStore(path) as store:
        packets = [tm(i) for i in range(10)]
        for p in packets:
            store.put(p, 3)
        batch = store.peek(10**6)
        assert len(batch) == 10
        store.mark_sent([i for i, _ in batch], now=100.0)
        assert store.peek(10**6) == [] and store.peek(10**6, resend_before=99.0) == []
        assert len(store.peek(10**6, resend_before=100.0)) == 10  # the ack timeout passed: offered again
        stats = store.stats()
        assert (stats["stored"], stats["pending"], stats["unacked"]) == (10, 0, 10)
        identities = [pus.tm_identity(p) for p in packets[:4]]
        assert store.acknowledge([i for i in identities if i is not None] + [b"\x00" * 9]) == 4
    with DownlinkStore(path) as store:
        stats = store.stats()
        assert (stats["stored"], stats["unacked"], stats["delivered"]) == (6, 6, 4)
        assert store.requeue() == 6
        assert [d for _, d in store.peek(10**6)] == packets[4:]
        assert store.stats()["pending"] == 6


def test_a_store_written_by_the_previous_version_keeps_its_packets(tmp_path: Path) -> None:
    """A version-1 store (no identities) is migrated: its packets become pending and can be acknowledged."""
    path = tmp_path / "downlink.sqlite"
    db = sqlite3.connect(path)
    db.execute(
        "CREATE TABLE packets (id INTEGER PRIMARY KEY AUTOINCREMENT, priority INTEGER NOT NULL, "
        "size INTEGER NOT NULL, crc INTEGER NOT NULL, data BLOB NOT NULL)"
    )
    db.execute("CREATE TABLE counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL)")
    import zlib

    old = tm(7)
    db.execute("INSERT INTO packets (priority, size, crc, data) VALUES (5, ?, ?, ?)", (len(old), zlib.crc32(old), old))
    db.execute("PRAGMA user_version = 1")
    db.commit()
    db.close()
    with DownlinkStore(path) as store:
        assert store.stats()["pending"] == 1
        identity = pus.tm_identity(old)
        assert identity is not None and store.acknowledge([identity]) == 1


def big(i: int) -> bytes:
    """A 5000-byte TM packet (larger than a database page, so it needs pages a full database cannot give)."""
    return pus.tm(128, 1, f"{i:06d}".encode().ljust(5000 - 27, b"."), 100, i, timestamp=pus.unix_to_cds(1e9 + i))


def _fill_database(store: DownlinkStore) -> None:
    """Emulate a full disk: the database may not grow by one page more, and its free space is used up."""
    db = store._db
    db.execute("CREATE TABLE filler (b BLOB)")
    db.execute(f"PRAGMA max_page_count = {db.execute('PRAGMA page_count').fetchone()[0]}")
    with contextlib.suppress(sqlite3.OperationalError):
        while True:
            db.execute("INSERT INTO filler VALUES (zeroblob(100))")


def test_a_store_that_cannot_be_written_degrades_to_memory_and_recovers(tmp_path: Path) -> None:
    """SQLITE_FULL: nothing raises; packets wait in memory (the lowest priority dropped first, counted, one
    notice); acknowledgements still work; the next retry moves what memory held into the store."""
    clock = [0.0]
    r = Retention(tmp_path / "downlink.sqlite", 1 << 20, memory_bytes=25_000, retry_s=2.0, clock=lambda: clock[0])
    assert r.store is not None
    _fill_database(r.store)
    kept = [r.put(big(i), 1 if i < 3 else 6) for i in range(7)]  # 5 of these fit in memory
    assert kept == [True] * 7  # two priority-1 packets made room for priority-6 ones
    stats = r.stats()
    assert stats["usable"] is False and "full" in stats["cause"]
    assert stats["memory"]["packets"] == 5 and stats["memory"]["dropped_by_priority"][1] == 2
    assert r.put(big(99), 0) is False  # nothing lower to evict: refused, counted
    assert r.stats()["memory"]["dropped_by_priority"][0] == 1
    kinds = [n.kind for n in r.take_notices()]
    assert kinds.count("unusable") == 1 and kinds.count("dropped") == 3
    batch = r.peek(10**6)
    assert [p for _, p in batch][:1] == [big(3)]  # priority 6 first
    r.mark_sent([i for i, _ in batch], now=5.0)
    first = pus.tm_identity(big(3))
    assert first is not None and r.acknowledge([first]) == 1
    r.retry()
    assert r.store is None  # not yet: retry_s has not passed
    clock[0] = 2.5
    r.retry()  # a fresh connection has no page limit: as if space came back
    assert r.store is not None
    stats = r.stats()
    assert stats["usable"] is True and stats["memory"]["packets"] == 0
    assert (stats["stored"], stats["unacked"]) == (4, 4)  # moved with their sent state
    assert [n.kind for n in r.take_notices()] == ["recovered"]
    r.close()


def test_a_packet_failing_its_checksum_is_dropped_counted_and_told(tmp_path: Path) -> None:
    """A flipped bit in a stored packet: it is not sent, it is counted, and a 'dropped' notice says so."""
    path = tmp_path / "downlink.sqlite"
    r = Retention(path, 1 << 20)
    good = tm(2)
    assert r.put(tm(1), 5) and r.put(good, 5)
    raw = sqlite3.connect(path)
    raw.execute("UPDATE packets SET data = ? WHERE id = 1", (tm(9),))
    raw.commit()
    raw.close()
    assert [p for _, p in r.peek(10**6)] == [good]
    (n,) = r.take_notices()
    assert n.kind == "dropped" and n.count == 1 and "checksum" in n.message
    assert r.stats()["corrupt"] == 1
    r.close()


def test_rate_limit_reports_the_first_at_once_and_sums_the_rest() -> None:
    """One event per kind per interval, with the count of everything held meanwhile."""
    from services.ground.downlink import Notice

    clock = [0.0]
    limit = RateLimit(60.0, clock=lambda: clock[0])
    assert limit.offer(Notice("dropped", "a", 2)) is not None
    assert limit.offer(Notice("dropped", "b", 3)) is None and limit.offer(Notice("dropped", "c", 4)) is None
    assert limit.due() == []
    clock[0] = 61.0
    (held,) = limit.due()
    assert (held.count, held.message) == (7, "c")


def _corrupt_header(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[:16] = b"definitely-not-a"  # SQLite's magic string is the first 16 bytes
    path.write_bytes(bytes(data))


def test_a_corrupt_or_emptied_downlink_store_is_kept_aside(tmp_path: Path) -> None:
    """Corrupt header, then truncated to 0 bytes: each time the file is kept as .corrupt-<time>, a notice
    names it and the cause, and a fresh store works."""
    path = tmp_path / "downlink.sqlite"
    with DownlinkStore(path) as store:
        store.put(tm(1), 5)
    _corrupt_header(path)
    r = Retention(path, 1 << 20)
    (n,) = r.take_notices()
    assert n.kind == "quarantined" and str(path) in n.message and "not a database" in n.message
    assert r.put(tm(2), 5) and r.stats()["stored"] == 1
    r.close()
    path.write_bytes(b"")
    for side in tmp_path.glob("downlink.sqlite-*"):
        side.unlink()
    r = Retention(path, 1 << 20)
    (n,) = r.take_notices()
    assert n.kind == "quarantined" and "truncated to 0 bytes" in n.message
    assert len(list(tmp_path.glob("downlink.sqlite.corrupt-*"))) == 2
    r.close()
    assert Retention(path, 1 << 20).take_notices() == []  # a fresh, empty store that never held data is quiet


def test_a_store_used_after_its_close_is_not_taken_for_damage(tmp_path: Path) -> None:
    """A status or a packet racing the service's stop reaches a closed store: the file and its packet stay
    where they are (once this moved a good downlink.sqlite aside as corrupt at every shutdown)."""
    path = tmp_path / "downlink.sqlite"
    r = Retention(path, 1 << 20)
    assert r.put(tm(1), 5)
    r.close()
    assert r.stats()["stored"] == 1  # the last known counts
    r.put(tm(2), 5)  # held in memory: it could not be written
    r.retry()
    assert r.take_notices() == [] and not list(tmp_path.glob("*.corrupt-*"))
    again = Retention(path, 1 << 20)
    assert again.take_notices() == [] and again.stats()["stored"] == 1
    again.close()
    closed = sqlite3.connect(":memory:")
    closed.close()
    with pytest.raises(sqlite3.ProgrammingError) as exc:
        closed.execute("SELECT 1")
    assert not is_corruption(exc.value) and not is_corruption(sqlite3.IntegrityError("UNIQUE constraint failed"))
    assert is_corruption(sqlite3.DatabaseError("file is not a database"))


# ---------------------------------------------------------------------- end to end


@contextlib.contextmanager
def small_disk(where: Path, size: str = "2m") -> Iterator[Path]:
    """A tmpfs of ``size`` at ``where`` (needs root, as on the bench and CI); skip the test when not permitted."""
    where.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs to fill (needs root): {done.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], capture_output=True, check=False)


def fill(directory: Path) -> Path:
    """Write a file until the file system is full; the file (delete it to free the space)."""
    filler = directory / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        for size in (1 << 16, 512, 1):  # big writes, then the last few bytes
            with contextlib.suppress(OSError):
                while True:
                    os.write(fd, b"\0" * size)
    finally:
        os.close(fd)
    fd = os.open(filler, os.O_WRONLY | os.O_APPEND)
    try:
        with pytest.raises(OSError) as info:
            os.write(fd, b"\0")
    finally:
        os.close(fd)  # an open file keeps its space after the unlink
    assert info.value.errno == errno.ENOSPC
    return filler


async def answered(g: GroundClient) -> str:
    """TC[17,1]: "ok" for TM[17,2], the failure code's name for a failure report, "" for no answer in 5 s."""
    try:
        out = await g.request(g.build(17, 1), 5.0, until=lambda o: bool(o.reports))
    except Exception:
        return ""
    failed = out.failure()
    return "ok" if failed is None else failed[1].name


async def test_full_state_disk_ground_answers_and_recovers_by_itself(tmp_path: Path) -> None:
    """The ground's disk fills up, and ground restarts on it: ground stays READY and answers every TC; 500
    products wait in memory; when the space returns the store recovers without help, ground is commandable,
    every product reaches the ground and leaves the store once acknowledged."""
    from flightos.ground.security import KeyStore
    from tests.ground.conftest import GROUND
    from tests.runtimes import make_runtime

    rt = make_runtime(["ground", "test"], [*GROUND, *QUIET, "services.ground.options.store_memory_kb=2048"])
    with small_disk(rt.state_dir / "ground") as disk:
        keys = KeyStore(disk / "keys.json")
        keys.add(1)
        await rt.start()
        assert rt.client is not None
        bus = Bus(rt.client)
        counters = tmp_path / "counters.json"  # the ground station's own counter file lives off the full disk
        answers: list[str] = []
        try:
            p = await ports(rt)
            async with GroundClient("127.0.0.1", p["udp"], 100, keys, counter_file=counters) as g:
                assert await answered(g) == "ok"
                filler = fill(disk)
                answers.append(await answered(g))
            await rt.client.call("kernel", "restart", {"service": "ground"})  # it must start on a full disk
            await rt.wait_ready("ground", timeout=30)
            p = await ports(rt)
            async with GroundClient("127.0.0.1", p["udp"], 100, keys, counter_file=counters) as g:  # acks nothing
                answers.append(await answered(g))
                await eventually(lambda: _not(status(rt), "in_contact"), timeout=10, what="contact to lapse")
                await send_products(rt, 500)

                async def held() -> bool:
                    return int((await status(rt))["downlink"]["memory"]["packets"]) >= 500

                await eventually(held, timeout=20, what="the products to wait in memory")
                st = await status(rt)
                assert st["downlink"]["usable"] is False and "full" in st["downlink"]["cause"], st["downlink"]
                assert st["downlink"]["memory"]["dropped"] == 0
                await bus.wait_for(
                    "ev.ground", lambda e: e.get("id") == 2020, timeout=10, what="the store-unusable event"
                )
                for _ in range(5):
                    answers.append(await answered(g))
                filler.unlink()
                freed = time.monotonic()
                await bus.wait_for(
                    "ev.ground", lambda e: e.get("id") == 2021, timeout=30, what="the store-recovered event"
                )
                recovered_s = time.monotonic() - freed
                while (answer := await answered(g)) != "ok":
                    assert time.monotonic() - freed < 30, f"not commandable 30 s after space returned: {answer}"
                commandable_s = time.monotonic() - freed
            names: set[str] = set()
            async with GroundClient("127.0.0.1", p["udp"], 100, keys, counter_file=counters, auto_ack=0.2) as g:
                await g.ping()  # a new ground address: everything not acknowledged goes again
                await products(g, names, 500, timeout=40)

                async def emptied() -> bool:
                    d = (await status(rt))["downlink"]
                    return bool(d["usable"]) and d["stored"] == 0 and d["memory"]["packets"] == 0

                await eventually(emptied, timeout=30, what="every product to be acknowledged and leave the store")
            st = await rt.service("ground")
            assert st["state"] == "READY"
            assert all(answers), answers  # every TC was answered (a failure report counts: it is an answer)
            assert len(names) == 500
            print(
                f"\nfull disk: ground restarted on it and stayed READY; {len(answers)} of {len(answers)} TCs "
                f"answered ({answers}); store usable {recovered_s:.1f} s and commandable "
                f"{commandable_s:.1f} s after space returned; 500 of 500 products delivered and acknowledged"
            )
        finally:
            bus.close()
            await rt.stop()
            rt.cleanup()


async def _not(st: Awaitable[dict[str, Any]], key: str) -> bool:
    return not (await st)[key]


async def test_products_sent_into_a_stalled_tcp_peer_stay_until_acknowledged() -> None:
    """500 products go to a TCP ground that never reads: none leaves the store; a UDP ground that then talks
    gets all 500 (resent after the ack timeout) and, once it acknowledged them, the store is empty."""
    rt, keys = await start(
        [
            "services.ground.options.ack_timeout_s=2",
            "services.ground.options.tcp_stall_s=1",
            "services.ground.options.tcp_buffer_bytes=8192",
        ],
        services=["ground", "test"],
    )
    try:
        assert rt.client is not None
        p = await ports(rt)
        peer = await tcp_ground(rt, keys)
        await send_products(rt, 500)

        async def all_in() -> bool:
            return int((await status(rt))["counters"].get("products", 0)) == 500

        await eventually(all_in, timeout=30, what="the 500 products to reach ground")
        st = await status(rt)
        taken = next(lk for lk in st["links"] if lk["kind"] == "tcp")["sent"]
        assert taken > 0 and st["downlink"]["stored"] >= 500, st  # taken by the socket or not, all are kept
        peer.close()
        async with GroundClient("127.0.0.1", p["udp"], 100, keys, auto_ack=0.2) as g2:
            await g2.ping()
            names: set[str] = set()
            t0 = time.monotonic()
            await products(g2, names, 500, timeout=40)
            took = time.monotonic() - t0

            async def emptied() -> bool:
                return int((await status(rt))["downlink"]["stored"]) == 0

            await eventually(emptied, timeout=30, what="the acknowledged products to leave the store")
        st = await status(rt)
        assert st["downlink"]["delivered"] >= 500 and st["counters"]["tm_acknowledged"] >= 500
        print(
            f"\nstalled TCP peer: {taken} packets taken by its socket, 500 of 500 products kept; all reached a UDP "
            f"ground {took:.1f} s after it talked, and left the store once acknowledged"
        )
    finally:
        await rt.stop()
        rt.cleanup()


async def test_unacknowledged_telemetry_goes_again_after_the_ack_timeout() -> None:
    """Within one contact, to the same ground: what is not acknowledged within ack_timeout_s is sent again
    (the same packets, same identities); once acknowledged it leaves the store and is not sent again."""
    rt, keys = await start(["services.ground.options.ack_timeout_s=1"], services=["ground", "test"])
    try:
        assert rt.client is not None
        p = await ports(rt)
        async with GroundClient("127.0.0.1", p["udp"], 100, keys) as g:
            await g.ping()
            await send_products(rt, 20, size=50)

            async def receive(n: int) -> list[bytes]:
                got: list[bytes] = []
                while len(got) < n:
                    tm = await g.next_tm(10)
                    if tm.service == 128:
                        got.append(bytes(tm.pack()))
                return got

            first = await receive(20)
            t0 = time.monotonic()
            again = await receive(20)
            waited = time.monotonic() - t0
            assert sorted(again) == sorted(first) and waited >= 0.5  # the same packets, after the timeout
            assert (await status(rt))["downlink"]["unacked"] >= 20
            g.acknowledge()

            async def emptied() -> bool:
                return int((await status(rt))["downlink"]["stored"]) == 0

            await eventually(emptied, timeout=30, what="acknowledged products to leave the store")
            await asyncio.sleep(0)
            while not g.received.empty():
                g.received.get_nowait()
            with pytest.raises(asyncio.TimeoutError):
                while True:  # nothing acknowledged comes back (housekeeping and events may still come)
                    tm = await g.next_tm(2.5)
                    assert tm.service != 128, "an acknowledged product was sent again"
        print(
            f"\nack timeout 1 s: 20 of 20 unacknowledged products sent again after {waited:.1f} s; "
            "none after the acknowledgement"
        )
    finally:
        await rt.stop()
        rt.cleanup()


async def test_corrupt_and_truncated_ground_stores_are_quarantined_loudly() -> None:
    """schedule.sqlite with a corrupt header and downlink.sqlite truncated to 0 bytes: ground starts READY
    with fresh stores, one HIGH event per file names it and the cause, the damaged files are kept."""
    rt, keys = await start(QUIET, services=["ground", "test"])
    try:
        assert rt.client is not None
        p = await ports(rt)
        async with GroundClient("127.0.0.1", p["udp"], 100, keys) as g:
            await g.ping()
            out = await g.request(
                g.build(11, 4, pus.pack_u16(1) + pus.unix_to_cds(time.time() + 3600) + g.build(17, 1))
            )
            assert out.failure() is None
        await eventually(lambda: _not(status(rt), "in_contact"), timeout=10, what="contact to lapse")
        await rt.client.call("test", "product", {"name": "kept", "data": "x", "priority": 5})
        await eventually(lambda: _stored(rt), timeout=30, what="the product to be stored")
        assert await rt.stop() == 0
        ground = rt.state_dir / "ground"
        _corrupt_header(ground / "schedule.sqlite")
        (ground / "downlink.sqlite").write_bytes(b"")
        for side in [*ground.glob("downlink.sqlite-*"), *ground.glob("schedule.sqlite-*")]:
            side.unlink()
        await rt.start()
        bus = Bus(rt.client)
        try:
            st = await rt.service("ground")
            assert st["state"] == "READY" and st["restarts"] == 0
            p = await ports(rt)
            async with GroundClient("127.0.0.1", p["udp"], 100, keys) as g:
                assert await g.ping() > 0
                out = await g.request(g.build(11, 16))
                assert out.failure() is None  # a fresh, empty schedule
            ls = await status(rt)
            assert ls["schedule"] == 0
            kept = sorted(
                x.name.split(".corrupt-")[0]
                for x in ground.glob("*.corrupt-*")
                if "-wal" not in x.name and "-shm" not in x.name
            )
            assert kept == ["downlink.sqlite", "schedule.sqlite"], [e["message"] for e in _events(rt)]
            assert (await rt.client.call("ground", "link_status"))["downlink"]["usable"] is True
        finally:
            bus.close()
        events = [e for e in _events(rt) if e.get("id") == 2023]
        assert len(events) == 2, events
        text = " | ".join(e["message"] for e in events)
        assert "schedule.sqlite cannot be used (" in text and "not a database" in text
        assert "downlink.sqlite was truncated to 0 bytes" in text
        assert all(e["severity"] == "HIGH" for e in events)
    finally:
        await rt.stop()
        rt.cleanup()


async def _stored(rt: RuntimeProcess) -> bool:
    return int((await status(rt))["downlink"]["stored"]) >= 1


def _events(rt: RuntimeProcess) -> list[dict[str, Any]]:
    """Ground's events from the run record of the latest run."""
    import json

    out = []
    for f in sorted((rt.state_dir / "runs").glob("*/events.jsonl")) if (rt.state_dir / "runs").exists() else []:
        for line in f.read_text().splitlines():
            rec = json.loads(line)
            if rec.get("topic") == "ev.ground":
                out.append(rec)
    return out
