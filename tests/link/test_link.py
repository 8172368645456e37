"""Two kernels linked over loopback TCP with CURVE: commands, telemetry, security and failover across boards."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import zmq

from flightos import AccessDenied, CommandError, ServiceUnavailable, Store
from flightos.kernel.events import EventId
from flightos.link import keys
from flightos.link.client import LinkClient
from flightos.testing import eventually
from flightos.testing.linked import LinkedSystem, write_system
from flightos.testing.runtime import RuntimeProcess
from tests.runtimes import kernel_events

FAST = {"heartbeat_s": 0.2, "dead_after_s": 1.0, "join_timeout_s": 2.0, "retry_s": 0.5, "replicate_s": 0.2}
BOARDS = {"obc": {"probe": {"plugin": "test"}}, "payload": {"test": {"criticality": "critical"}}}


def _base(tmp_path: Path) -> Path:
    return Path(os.environ.get("FLIGHTOS_TEST_BASE", tmp_path)) / f"link-{os.urandom(3).hex()}"


@contextlib.asynccontextmanager
async def boards(system: LinkedSystem, *names: str) -> AsyncIterator[dict[str, RuntimeProcess]]:
    """Start the named boards' kernels together; stop and clean them up afterwards."""
    rts = {n: RuntimeProcess(target=str(system.targets[n])) for n in names}
    try:
        await asyncio.gather(*(rt.start() for rt in rts.values()))
        yield rts
    except BaseException:
        for n, rt in rts.items():
            print(f"--- {n} log ---\n{rt.log_tail(80)}")
        raise
    finally:
        for rt in rts.values():
            await rt.stop()
            rt.cleanup()
        system.cleanup()


async def link_of(rt: RuntimeProcess) -> dict[str, Any]:
    """The link section of a kernel's status."""
    return dict((await rt.status())["link"])


async def test_command_goes_to_the_board_that_runs_the_service_and_back(tmp_path: Path) -> None:
    """A service on one board calls a service on another by name, and so does the operator's CLI client."""
    system = write_system(_base(tmp_path), BOARDS, link=FAST)
    async with boards(system, "obc", "payload") as rt:
        a, b = rt["obc"], rt["payload"]
        assert a.client is not None and b.client is not None
        assert await a.client.call("test", "echo", {"value": [1, "two"]}) == [1, "two"]
        # probe (on obc) calls test (on payload) through both kernels and the link
        assert (
            await a.client.call("probe", "relay", {"service": "test", "command": "record", "args": {"key": "k"}}) == 1
        )
        assert await b.client.call("test", "executions") == {"k": 1}
        assert (await b.client.call("probe", "ping"))["reply"] == "pong"
        assert (await a.client.call("kernel@payload", "ping"))["pid"] == b.proc.pid  # type: ignore[union-attr]
        with pytest.raises(CommandError) as err:
            await a.client.call("nosuch", "ping")
        assert err.value.code == "unknown_service" and "test" in str(err.value.details)


async def test_telemetry_crosses_only_when_a_service_on_the_other_board_subscribes(tmp_path: Path) -> None:
    """Nothing is sent until probe watches tm.test.; then every message arrives, in order, with its source."""
    system = write_system(_base(tmp_path), BOARDS, link=FAST)
    async with boards(system, "obc", "payload") as rt:
        a, b = rt["obc"], rt["payload"]
        assert a.client is not None and b.client is not None
        await b.client.call("test", "emit", {"name": "early", "count": 20})
        assert (await link_of(b))["stats"]["telemetry_out"] == 0
        await a.client.call("probe", "watch", {"prefix": "tm.test."})
        await a.client.call("probe", "watch", {"prefix": "tm.test.wanted"})  # counted apart from the warm-up
        await b.wait_until(
            lambda st: "tm.test." in st["link"]["peers"]["obc"]["interest"], 5, "payload to learn obc's interest"
        )

        async def seen(prefix: str = "tm.test.") -> dict[str, Any]:
            assert a.client is not None
            return dict(await a.client.call("probe", "seen", {"prefix": prefix}))

        async def warm() -> dict[str, Any]:  # the export tap's subscription reaches payload's proxy asynchronously
            assert b.client is not None
            await b.client.call("test", "emit", {"name": "warm"})
            return await seen()

        await eventually(warm, until=lambda g: g["count"] > 0, timeout=10, what="a first crossing")
        out = (await link_of(b))["stats"]["telemetry_out"]
        await b.client.call("test", "emit", {"name": "wanted", "payload": "x", "count": 50})
        got = await eventually(
            lambda: seen("tm.test.wanted"), until=lambda g: g["count"] >= 50, timeout=10, what="50 messages"
        )
        assert got["count"] == 50 and got["sources"] == ["test"]
        assert got["last"]["payload"] == {"i": 49, "value": "x"} and got["last"]["seq"] == 50  # numbered end to end
        # frames: the 50 messages of one command crossed in a few batches, as published (and sequence marks)
        assert 1 <= (await link_of(b))["stats"]["telemetry_out"] - out < 50


async def test_a_wrong_key_a_missing_key_and_plaintext_are_refused_and_counted(tmp_path: Path) -> None:
    """Strangers get no answer; each refusal is counted by reason and raised as event 1703.

    A plaintext client is refused as ``plaintext``, or as ``handshake_failed`` when it hangs up
    before the server reads its greeting (which side notices the mismatch first is a race).
    """
    system = write_system(_base(tmp_path), BOARDS, link=FAST)
    async with boards(system, "obc") as rt:
        a = rt["obc"]
        assert a.client is not None
        events = await kernel_events(a.client)
        endpoint = system.endpoints["obc"]
        ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
        stranger_pub, stranger_sec = zmq.curve_keypair()
        wrong_server, _ = zmq.curve_keypair()
        socks = []
        for client_keys, server_key in (
            ((stranger_pub, stranger_sec), system.public_keys["obc"]),  # unknown key
            (None, None),  # plaintext
            ((stranger_pub, stranger_sec), wrong_server),
        ):  # wrong server key
            s = ctx.socket(zmq.DEALER)
            s.setsockopt(zmq.LINGER, 0)
            if client_keys is not None:
                s.setsockopt(zmq.CURVE_PUBLICKEY, client_keys[0])
                s.setsockopt(zmq.CURVE_SECRETKEY, client_keys[1])
                s.setsockopt(zmq.CURVE_SERVERKEY, server_key)
            s.connect(endpoint)
            s.send_multipart([b"C", b"", b"not a command"])
            socks.append(s)
        try:

            def refused(reasons: set[str]) -> bool:
                return {"unknown_key", "bad_handshake"} <= reasons and bool({"plaintext", "handshake_failed"} & reasons)

            st = await a.wait_until(lambda st: refused(set(st["link"]["security"]["refused"])), 10, "three refusals")
            reasons: set[str] = set()
            while not refused(reasons):
                env = await asyncio.wait_for(events.next(), 5)
                if env.topic == "ev.kernel" and env.payload["id"] == EventId.LINK_REFUSED:
                    reasons.add(env.payload["data"]["reason"])
            assert all(s.poll(200) == 0 for s in socks)  # nobody got an answer
            assert st["link"]["stats"]["commands_in"] == 0
            assert "link_refused" in a.log_tail(200)
        finally:
            for s in socks:
                s.close(0)
            ctx.term()


async def test_a_service_key_is_admitted_as_that_service_and_the_acl_applies(tmp_path: Path) -> None:
    """An authorised service key may call what the ACL grants it; anything else is access_denied and never runs."""
    acl = {"default": "allow", "commands": {"station": ["probe.ping", "probe.echo"]}}
    system = write_system(_base(tmp_path), BOARDS, link=FAST, acl=acl)
    own = system.base / "station-keys"
    keys.create(own, "station")
    keys.authorize(system.keys_dirs["obc"], "station", own / "station.key")
    async with boards(system, "obc") as rt:
        a = rt["obc"]
        assert a.client is not None
        with LinkClient(system.endpoints["obc"], system.public_keys["obc"], own, "station") as station:
            assert (await asyncio.to_thread(station.call, "probe", "echo", {"value": 7})) == 7
            with pytest.raises(AccessDenied):
                await asyncio.to_thread(station.call, "probe", "record", {"key": "no"})
        assert await a.client.call("probe", "executions") == {}
        link = await link_of(a)
        assert link["security"]["admitted"].get("service:station", 0) >= 1
        assert (await a.status())["bus"]["commands"]["denied"] == 1


async def test_the_acl_denies_a_command_from_another_board(tmp_path: Path) -> None:
    """probe may ping test but not record on it: a typed access_denied, and test runs nothing."""
    acl = {"default": "allow", "commands": {"probe": ["test.ping"]}}
    system = write_system(_base(tmp_path), BOARDS, link=FAST, acl=acl)
    async with boards(system, "obc", "payload") as rt:
        a, b = rt["obc"], rt["payload"]
        assert a.client is not None and b.client is not None
        assert (await a.client.call("probe", "relay", {"service": "test", "command": "ping"}))["reply"] == "pong"
        with pytest.raises(CommandError) as err:
            await a.client.call("probe", "relay", {"service": "test", "command": "record", "args": {"key": "x"}})
        assert "access_denied" in f"{err.value.code} {err.value}"
        assert await b.client.call("test", "executions") == {}


async def test_a_publish_acl_stops_a_topic_at_the_source(tmp_path: Path) -> None:
    """A service may publish only the topics the ACL lists: others raise PublishDenied and never leave."""
    acl = {"default": "allow", "publish": {"test": ["tm.test.allowed"]}}
    system = write_system(_base(tmp_path), BOARDS, link=FAST, acl=acl)
    async with boards(system, "obc", "payload") as rt:
        a, b = rt["obc"], rt["payload"]
        assert a.client is not None and b.client is not None
        await a.client.call("probe", "watch", {"prefix": "tm.test."})
        await a.client.call("probe", "watch", {"prefix": "tm.test.wanted"})  # counted apart from the warm-up
        await b.wait_until(lambda st: "tm.test." in st["link"]["peers"]["obc"]["interest"], 5, "interest")
        events = await kernel_events(b.client)
        with pytest.raises(CommandError) as err:
            await b.client.call("test", "emit", {"name": "secret"})
        assert "PublishDenied" in str(err.value)
        while True:  # the security event names who tried to publish what
            env = await asyncio.wait_for(events.next(), 5)
            if env.topic == "ev.kernel" and env.payload["id"] == EventId.PUBLISH_DENIED:
                assert env.payload["data"]["publisher"] == "test" and env.payload["data"]["topic"] == "tm.test.secret"
                break
        await b.client.call("test", "emit", {"name": "allowed", "count": 3})
        for _ in range(100):
            got = await a.client.call("probe", "seen", {"prefix": "tm.test."})
            if got["count"] >= 3:
                break
            await asyncio.sleep(0.05)
        assert got["count"] == 3 and got["last"]["topic"] == "tm.test.allowed"


async def test_a_dead_boards_critical_service_runs_on_a_survivor_with_its_state(tmp_path: Path) -> None:
    """Kill payload's kernel: test starts on obc within dead_after_s + 2 s with its store; payload back runs none."""
    system = write_system(_base(tmp_path), BOARDS, link=FAST)
    async with boards(system, "obc", "payload") as rt:
        a, b = rt["obc"], rt["payload"]
        assert a.client is not None and b.client is not None
        for _ in range(3):
            await a.client.call("test", "record", {"key": "orbit"})
        # a file of its own beside the store (as the ground service keeps its keys) moves with it too
        (Path(b.state_dir) / "test" / "notes.txt").write_text("keep me")
        replica = Path(a.state_dir) / "replicas" / "test"

        def replicated(st: dict[str, Any]) -> bool:  # obc holds a copy with all three records and the file
            if not (replica / "notes.txt").exists():
                return False
            store = Store(replica / "store.sqlite")
            try:
                return bool(store.get("exec/orbit") == 3)
            finally:
                store.close()

        await a.wait_until(replicated, 5, "a replica of test's data on obc")
        assert b.proc is not None
        loop = asyncio.get_running_loop()
        b.proc.kill()
        killed = loop.time()
        st = await a.wait_until(
            lambda st: any(s["name"] == "test" and s["state"] == "READY" for s in st["services"]),
            FAST["dead_after_s"] + 2.0,
            "test to run on obc",
        )
        took = loop.time() - killed
        assert took <= FAST["dead_after_s"] + 2.0
        assert await a.client.call("test", "executions") == {"orbit": 3}
        assert (Path(a.state_dir) / "test" / "notes.txt").read_text() == "keep me"
        assert st["link"]["peers"]["payload"]["up"] is False
        # payload comes back with the same state directory: it must leave test where it runs now
        b2 = RuntimeProcess(target=str(system.targets["payload"]))
        b2.state_dir = b.state_dir
        try:
            await b2.start()
            assert b2.client is not None
            row = await b2.service("test")
            assert row["state"] == "REMOTE"
            await a.wait_until(lambda st: st["link"]["peers"]["payload"]["up"], 5, "payload back")
            assert await b2.client.call("test", "record", {"key": "orbit"}) == 4  # routed to obc's copy
            a_rows = [s for s in (await a.status())["services"] if s["name"] == "test"]
            assert [s["state"] for s in a_rows] == ["READY"] and (await b2.service("test"))["pid"] is None
            assert (await link_of(a))["stats"]["yielded"] == 0
            with pytest.raises(ServiceUnavailable, match="runs on board obc"):
                await b2.client.call("kernel", "restart", {"service": "test"})
        finally:
            await b2.stop()
            b2.cleanup()


async def test_a_kernel_with_a_missing_key_does_not_start(tmp_path: Path) -> None:
    """A linked target whose own secret key is missing fails at start with a message naming the file."""
    system = write_system(_base(tmp_path), BOARDS, link=FAST)
    (system.keys_dirs["obc"] / "obc.key_secret").unlink()
    rt = RuntimeProcess(target=str(system.targets["obc"]))
    try:
        with pytest.raises(Exception) as err:
            await rt.start(timeout=15)
        assert "obc.key_secret" in str(err.value) and "flightos keys curve new obc" in str(err.value)
        assert "Traceback" not in rt.log_tail(200)
    finally:
        await rt.stop()
        rt.cleanup()
        system.cleanup()
