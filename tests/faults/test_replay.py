"""Security state fails secure: lost, empty or corrupt anti-replay state never lets a captured TC run again.

Fault catalogue (issue 12, item 3): an authenticated TC captured in flight, the anti-replay database
deleted, the runtime restarted, the TC replayed -> it ran a second time. Now the key is locked until
ground resyncs over a fresh on-board nonce, and the captured TC is refused before and after.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from pathlib import Path

import pytest

from flightos.ground import pus
from flightos.ground.codes import Failure
from flightos.ground.security import RESYNC_PADDING, RESYNC_SERVICE, AuthError, KeyStore, ReplayGuard
from flightos.groundtools.console import GroundClient, GroundError
from tests.ground.conftest import ports, start
from tests.ground.test_console_cli import cli

RECORD = 3  # test.record in the shipped mission database
CALM = ["cores.selftest_period_s=0"]
"""Core self-tests off: on a saturated test host they can take the board to SAFE, which sheds ``test``."""


def record_tc(g: GroundClient, key: str) -> bytes:
    return g.build(8, 1, pus.pack_u16(RECORD) + pus.encode_value("str", key))


def code(out: object) -> Failure | None:
    failed = out.failure()  # type: ignore[attr-defined]
    return None if failed is None else failed[1]


async def test_captured_tc_never_runs_twice_after_the_replay_database_is_deleted() -> None:
    """Delete replay.sqlite and restart: the captured TC, every counter TC and a replayed resync are refused."""
    rt, keys = await start(CALM, services=["ground", "test"])
    try:
        p = await ports(rt)
        async with GroundClient("127.0.0.1", p["udp"], 100, keys) as g:
            captured = record_tc(g, "captured")
            assert code(await g.request(captured)) is None
        assert await rt.stop() == 0
        db = rt.state_dir / "ground" / "replay.sqlite"
        for side in db.parent.glob("replay.sqlite*"):
            side.unlink()
        t0 = time.monotonic()
        await rt.start()
        p = await ports(rt)
        async with GroundClient("127.0.0.1", p["udp"], 100, keys) as g:
            assert code(await g.request(captured)) == Failure.AUTH_RESYNC_REQUIRED
            with pytest.raises(GroundError, match="AUTH_RESYNC_REQUIRED"):
                await g.ping()  # a fresh counter too: nothing counter-based until the resync
            t1 = time.monotonic()
            res = await asyncio.to_thread(
                cli, "--json", "ground", "resync", "--to", f"127.0.0.1:{p['udp']}", "--key-file", str(keys.path)
            )  # what the operator runs
            resync_ms = (time.monotonic() - t1) * 1000
            unlocked_s = time.monotonic() - t0
            assert res.returncode == 0, res.stderr
            floors = json.loads(res.stdout)["floors"]
            assert set(floors) == {"1"} and floors["1"] > 10**12  # a time-based floor, past anything ground used
            assert code(await g.request(captured)) == Failure.AUTH_REPLAY
            assert await g.ping() > 0
        log = rt.log_path.read_text()
        assert "event_id=2030" in log and f"{db} missing" in log and "event_id=2031" in log
        assert rt.client is not None
        assert (await rt.client.call("test", "executions"))["captured"] == 1
        print(f"locked; `flightos ground resync` {resync_ms:.0f} ms; commandable {unlocked_s:.2f} s after restart")
    finally:
        await rt.stop()
        rt.cleanup()


async def test_a_captured_resync_cannot_be_replayed_and_a_new_key_starts_fresh() -> None:
    """The resync TC is single-use (its nonce is spent); a key added after the loss works at once, old ones stay
    locked until a resync under any key."""
    rt, keys = await start(CALM, services=["ground", "test"])
    try:
        p = await ports(rt)
        async with GroundClient("127.0.0.1", p["udp"], 100, keys) as g:
            assert await g.ping() > 0
            ask = g.build(RESYNC_SERVICE, 1, bytes(RESYNC_PADDING), ack_flags=0, counter=0)
            nonce_out = await g.request(ask, until=lambda o: any(r.service == RESYNC_SERVICE for r in o.reports))
            nonce = next(bytes(r.source_data[:16]) for r in nonce_out.reports if r.service == RESYNC_SERVICE)
            assert all(len(r.pack()) <= len(ask) for r in nonce_out.reports)  # a replayed ask is no reflector
            resync = g.build(RESYNC_SERVICE, 3, nonce + (2 * 10**12).to_bytes(8, "big"), ack_flags=0, counter=0)
            assert (
                code(await g.request(resync, until=lambda o: any(r.service in (1, RESYNC_SERVICE) for r in o.reports)))
                is None
            )
            replayed = await g.request(resync)
            assert code(replayed) == Failure.AUTH_BAD_NONCE  # the same bytes again: the nonce is spent
            assert all(len(r.pack()) <= len(resync) for r in replayed.reports)
        assert await rt.stop() == 0
        (rt.state_dir / "ground" / "replay.sqlite").write_bytes(b"")  # an empty file, as a truncation leaves it
        for side in ("replay.sqlite-wal", "replay.sqlite-shm"):
            (rt.state_dir / "ground" / side).unlink(missing_ok=True)
        keys.add(2)  # rotation while the board is down: a new key has no counters to lose
        await rt.start()
        p = await ports(rt)
        async with GroundClient("127.0.0.1", p["udp"], 100, keys, key_id=2) as g2:
            assert await g2.ping() > 0  # the new key works without a resync
            assert code(await g2.request(resync)) == Failure.AUTH_BAD_NONCE  # the captured resync, after restart
        async with GroundClient("127.0.0.1", p["udp"], 100, keys, key_id=1) as g1:
            with pytest.raises(GroundError, match="AUTH_RESYNC_REQUIRED"):
                await g1.ping()
        async with GroundClient("127.0.0.1", p["udp"], 100, keys, key_id=2) as g2:
            floors = await g2.resync()  # under the new key: unlocks key 1 too
        assert set(floors) == {1, 2}
        async with GroundClient("127.0.0.1", p["udp"], 100, keys, key_id=1) as g1:
            assert await g1.ping() > 0
        assert "empty (0 bytes)" in rt.log_path.read_text()
    finally:
        await rt.stop()
        rt.cleanup()


def test_corrupt_database_is_kept_renamed_and_locks_started_keys(tmp_path: Path) -> None:
    """A corrupt replay.sqlite is renamed, never silently recreated; started keys are locked, new keys are not."""
    keys = KeyStore(tmp_path / "keys.json")
    keys.add(1)
    db = tmp_path / "replay.sqlite"
    guard = ReplayGuard(db, 1000, keys)
    assert guard.loss is None and guard.locked_ids() == []  # a new board with a new key: nothing lost
    guard.accept(1, 5)
    assert KeyStore(keys.path).started(1)
    wal = Path(f"{db}-wal").read_bytes()  # a power cut: the counter is still in the WAL
    damaged = b"NOT A DATABASE" + db.read_bytes()[14:]
    db.write_bytes(damaged)
    keys.add(2)  # a key that never had a counter
    before, guard = guard, ReplayGuard(db, 1000, keys)  # (the old connection plays the board that lost power)
    kept = {k.name.split("-")[-1]: k.read_bytes() for k in tmp_path.glob("replay.sqlite.corrupt-*")}
    assert kept.get("wal") == wal and damaged in kept.values()  # kept whole, WAL included, for inspection
    assert guard.loss is not None and guard.loss.startswith("corrupt") and guard.locked_ids() == [1]
    with pytest.raises(AuthError) as refused:
        guard.accept(1, 6)
    assert refused.value.code == Failure.AUTH_RESYNC_REQUIRED
    guard.accept(2, 1)  # rotation: the new key starts fresh
    guard.close()
    before.close()


def test_nonce_is_single_use_and_expires(tmp_path: Path) -> None:
    """A resync needs the current nonce, once, before it expires; floors are never lowered."""
    keys = KeyStore(tmp_path / "keys.json")
    keys.add(1)
    guard = ReplayGuard(tmp_path / "replay.sqlite", 1000, keys, nonce_s=30.0)
    guard.accept(1, 500)
    nonce, valid = guard.nonce(now=100.0)
    assert guard.nonce(now=110.0)[0] == nonce and valid == 30.0  # asking again (or a replayed ask) changes nothing
    with pytest.raises(AuthError) as late:
        guard.resync(nonce, 10**6, now=131.0)
    assert late.value.code == Failure.AUTH_BAD_NONCE
    nonce, _ = guard.nonce(now=200.0)
    with pytest.raises(AuthError):
        guard.resync(b"\x00" * 16, 10**6, now=201.0)  # a wrong nonce does not spend the right one
    assert guard.resync(nonce, 100, now=202.0) == {1: 500}  # a floor below the counter does not lower it
    with pytest.raises(AuthError) as again:
        guard.resync(nonce, 100, now=203.0)
    assert again.value.code == Failure.AUTH_BAD_NONCE
    guard.close()


def test_counter_is_committed_durably_before_accept_returns(tmp_path: Path) -> None:
    """WAL with synchronous=FULL; the counter is visible to another connection when accept returns (committed)."""
    keys = KeyStore(tmp_path / "keys.json")
    keys.add(1)
    guard = ReplayGuard(tmp_path / "replay.sqlite", 1000, keys)
    assert guard._live().execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    assert guard._live().execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    guard.accept(1, 7)
    other = sqlite3.connect(str(tmp_path / "replay.sqlite"))
    assert other.execute("SELECT highest FROM counters WHERE key_id = 1").fetchone()[0] == 7
    other.close()
    guard.close()


def test_key_file_writers_keep_each_others_changes(tmp_path: Path) -> None:
    """The CLI adding a key from a stale view keeps the board's "started" mark (witness of lost counters)."""
    cli = KeyStore(tmp_path / "keys.json")
    cli.add(1)
    board = KeyStore(tmp_path / "keys.json")
    guard = ReplayGuard(tmp_path / "replay.sqlite", 1000, board)
    guard.accept(1, 1)
    cli.add(2)  # cli's in-memory view predates the mark
    after = KeyStore(tmp_path / "keys.json")
    assert after.started(1) and not after.started(2)
    guard.close()


def test_an_unavailable_database_refuses_every_counter_and_recovers_by_itself(tmp_path: Path) -> None:
    """A database that cannot be opened (not corrupt: here its directory is a file) is not quarantined; counter
    TCs are refused with a clear reason, and the guard reopens it once it can."""
    keys = KeyStore(tmp_path / "keys.json")
    keys.add(1)
    blocked = tmp_path / "ground"
    blocked.write_text("not a directory")
    guard = ReplayGuard(blocked / "replay.sqlite", 1000, keys)
    assert guard.unavailable is not None and guard.loss is not None and guard.loss.startswith("unavailable")
    with pytest.raises(AuthError) as refused:
        guard.accept(1, 1)
    assert refused.value.code == Failure.INTERNAL and "unavailable" in refused.value.message
    blocked.unlink()
    guard._retry_at = 0.0  # the next TC retries at once (normally at most once a second)
    guard.accept(1, 1)
    assert guard.unavailable is None and guard.highest(1) == 1
    guard.close()
