"""Fault campaign: identities a service cannot forge (issue 12, item 7).

A compromised service is modelled by ``rogue``, a plugin written here (a hand-made dist-info on
PYTHONPATH registers it) that opens sockets of its own: a DEALER to the command or control socket
with any routing id, from its own process or from a child, and a raw PUB on the shared proxy. The
kernel takes identity from the sending process (SO_PEERCRED), so ``rogue`` stays ``rogue``: its
``[acl]`` applies on every socket, control frames claimed for another service are ignored and
counted, and ``ev.kernel`` published through the proxy reaches no subscriber.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import textwrap
from pathlib import Path
from typing import Any

import pytest

from flightos.bus.envelope import Kind
from flightos.client import Client
from flightos.testing import RuntimeProcess
from tests.runtimes import kernel_events, make_runtime

ROGUE = '''
"""A compromised service: opens its own sockets to act as the operator, another service or the kernel."""
from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from typing import Any

import msgspec
import zmq

from flightos import Service, command


def _env(kind: int, topic: str, source: str, payload: Any, corr: str = "") -> bytes:
    return msgspec.msgpack.encode([1, kind, topic, source, 1, time.monotonic_ns(), time.time_ns(), corr, payload])


CHILD = r"""
import sys, time, msgspec, zmq
rd, ident, dst, name, args = sys.argv[1:6]
c = zmq.Context(); s = c.socket(zmq.DEALER); s.setsockopt(zmq.IDENTITY, ident.encode())
s.connect(f"ipc://{rd}/cmd.sock")
cid = "child-" + str(time.time_ns())
s.send(msgspec.msgpack.encode([1, 3, dst, "rogue", 0, time.monotonic_ns(), time.time_ns(), cid,
                               {"name": name, "args": msgspec.json.decode(args), "timeout_ms": 3000}]))
print(msgspec.json.encode(msgspec.msgpack.decode(s.recv()) if s.poll(8000) else None).decode())
"""


class Rogue(Service):
    """Forges identities on request."""

    name = "rogue"

    def _rd(self) -> str:
        return str(self._host.spec.runtime_dir)

    @command()
    async def call_as(self, identity: str, destination: str, name: str, args: dict[str, Any] | None = None,
                      child: bool = False) -> Any:
        """Send a command on a socket of its own (or a child's) with any routing id; return the raw result."""
        if child:
            argv = [sys.executable, "-c", CHILD, self._rd(), identity, destination, name,
                    msgspec.json.encode(args or {}).decode()]
            out = await asyncio.to_thread(subprocess.run, argv, capture_output=True, timeout=30)
            return msgspec.json.decode(out.stdout or b"null")
        s = zmq.Context.instance().socket(zmq.DEALER)
        s.setsockopt(zmq.IDENTITY, identity.encode())
        s.connect(f"ipc://{self._rd()}/cmd.sock")
        try:
            s.send(_env(3, destination, "rogue", {"name": name, "args": args or {}, "timeout_ms": 3000},
                        corr=f"rogue-{time.time_ns()}"))
            for _ in range(160):
                if s.poll(0):
                    return msgspec.msgpack.decode(s.recv())
                await asyncio.sleep(0.05)
            return None
        finally:
            s.close(0)

    @command()
    async def dumpable(self) -> int:
        """PR_GET_DUMPABLE of this process: 0 when no other process of our user may ptrace it."""
        import ctypes
        return int(ctypes.CDLL(None).prctl(3, 0, 0, 0, 0))

    @command()
    async def control_as(self, identity: str, frames: list[list[Any]]) -> int:
        """Send control frames ([kind, payload] each) on one new socket claiming any routing id."""
        s = zmq.Context.instance().socket(zmq.DEALER)
        s.setsockopt(zmq.IDENTITY, identity.encode())
        s.connect(f"ipc://{self._rd()}/ctl.sock")
        for kind, payload in frames:
            s.send(_env(kind, "kernel", identity, payload))
        s.close(2000)
        return len(frames)

    @command()
    async def publish_as(self, topic: str, source: str, payload: Any, count: int = 1) -> int:
        """Publish raw frames on the shared proxy with any topic and source (after a subscriber joined)."""
        s = zmq.Context.instance().socket(zmq.XPUB)  # XPUB: wait until a subscription reaches us, no sleep
        s.connect(f"ipc://{self._rd()}/pub.sock")
        try:
            if not s.poll(5000):
                return 0
            s.recv()
            for _ in range(count):
                s.send(topic.encode() + b"\\x00" + _env(2, topic, source, payload))
        finally:
            s.close(2000)
        return count
'''

FORGED = {
    "id": 1106,
    "name": "SERVICE_FAILED",
    "severity": 3,
    "severity_name": "HIGH",
    "message": "ground FAILED (forged)",
    "data": {"service": "ground"},
}


@pytest.fixture
def rogue_site(tmp_path: Path) -> dict[str, str]:
    """A site directory holding the rogue plugin, registered in the ``flightos.services`` entry-point group."""
    site = tmp_path / "site"
    (site / "rogue_service").mkdir(parents=True)
    (site / "rogue_service" / "__init__.py").write_text(textwrap.dedent(ROGUE))
    dist = site / "rogue_service-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: rogue-service\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[flightos.services]\nrogue = rogue_service:Rogue\n")
    return {"PYTHONPATH": os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH", "")]))}


def runtime(env: dict[str, str]) -> RuntimeProcess:
    """test, housekeeping and rogue; rogue may call only kernel.ping and publish only its own events."""
    return make_runtime(
        ["test", "housekeeping", "rogue"],
        [
            'acl.default="deny"',
            'acl.commands.rogue=["kernel.ping"]',
            'acl.commands.test=["*"]',
            'acl.commands.housekeeping=["*"]',
            'acl.publish_default="deny"',
            'services.rogue.criticality="critical"',
            'services.test.criticality="critical"',
            'services.housekeeping.criticality="critical"',
        ],
        env=env,
    )


async def _bus(c: Client) -> dict[str, Any]:
    return dict((await c.call("kernel", "status"))["bus"])


async def test_a_service_on_a_socket_of_its_own_is_still_itself(rogue_site: dict[str, str]) -> None:
    """kernel.kill, denied to rogue by [acl], stays denied on a DEALER it opens itself, and from its child."""
    async with runtime(rogue_site) as rt:
        c = rt.client
        assert c is not None
        await rt.wait_ready("test", "rogue")
        test_pid = (await rt.service("test"))["pid"]
        events = await kernel_events(c)
        kill = {"service": "test", "signal": "STOP"}
        for how in (
            {"identity": "c/cli/1/operator"},
            {"identity": "s/test/77"},
            {"identity": "c/child", "child": True},
        ):
            answer = await c.call(
                "rogue", "call_as", {**how, "destination": "kernel", "name": "kill", "args": kill}, timeout=40
            )
            assert answer is not None, f"no answer to {how}"
            result = answer[-1]
            assert result["ok"] is False and result["error"]["code"] == "access_denied", (how, result)
            assert "'rogue'" in result["error"]["message"]
        denied = await c.wait_for("ev.kernel", lambda e: e.payload["name"] == "ACCESS_DENIED", timeout=10, sub=events)
        assert denied.payload["data"]["caller"] == "rogue"
        # nothing ran: test was never stopped and still answers
        assert (await c.call("test", "ping"))["pid"] == test_pid
        assert (await rt.service("test"))["state"] == "READY"
        # what rogue may do, it may do from any of its sockets
        ping = await c.call("rogue", "call_as", {"identity": "c/second", "destination": "kernel", "name": "ping"})
        assert ping[-1]["ok"] is True
        bus = await _bus(c)
        assert bus["commands"]["denied"] >= 3
        assert bus["commands"]["identity_forged"] >= 1  # the routing id s/test/77 claimed to be test
        # and it cannot attach to another service to act as it: service processes are not dumpable
        assert await c.call("rogue", "dumpable") == 0
        # the operator (this process: not descended from the runtime) is not bound by [acl]
        assert (await c.call("kernel", "kill", {"service": "test", "signal": "CONT"}))["pid"] == test_pid


async def test_control_frames_claimed_for_another_service_are_ignored_and_counted(rogue_site: dict[str, str]) -> None:
    """A ready and heartbeats sent by rogue as test's next incarnation change nothing, and are raised."""
    async with runtime(rogue_site) as rt:
        c = rt.client
        assert c is not None
        await rt.wait_ready("test", "rogue")
        test = await rt.service("test")
        events = await kernel_events(c)
        claimed = f"s/test/{test['incarnation'] + 1}"
        frames = [[int(Kind.CONTROL), {"op": "ready"}]] + [[int(Kind.HEARTBEAT), {"n": n}] for n in range(5)]
        assert await c.call("rogue", "control_as", {"identity": claimed, "frames": frames}) == 6
        refused = await c.wait_for(
            "ev.kernel", lambda e: e.payload["name"] == "IDENTITY_REFUSED", timeout=10, sub=events
        )
        assert refused.payload["id"] == 1704
        assert refused.payload["data"]["identity"] == "rogue" and refused.payload["data"]["claimed"] == claimed

        async def counted() -> dict[str, Any]:
            while (bus := await _bus(c))["identity"]["forged"] < 6:
                await asyncio.sleep(0.05)
            return bus

        bus = await asyncio.wait_for(counted(), 10)
        assert bus["commands"]["identity_forged"] >= 6
        # test itself is untouched, and restarts normally under the claimed incarnation
        await c.call("kernel", "restart", {"service": "test"})
        after = await rt.wait_ready("test")
        row = next(s for s in after["services"] if s["name"] == "test")
        assert row["incarnation"] == test["incarnation"] + 1


async def test_kernel_events_come_only_from_the_kernel(rogue_site: dict[str, str]) -> None:
    """ev.kernel forged through the shared proxy reaches no subscriber; the kernel's own arrive, in order."""
    async with runtime(rogue_site) as rt:
        c = rt.client
        assert c is not None
        await rt.wait_ready("test", "rogue", "housekeeping")
        await c.call("test", "watch", {"prefix": "ev.kernel"})
        sub = c.subscriber("ev.")
        for _ in range(20):  # until our subscription has reached the proxy (a slow joiner misses the first)
            await c.call("test", "announce", {"message": "joined"})
            with contextlib.suppress(asyncio.TimeoutError):
                await c.wait_for("ev.test", lambda e: e.payload["message"] == "joined", timeout=0.5, sub=sub)
                break
        sent = await c.call(
            "rogue", "publish_as", {"topic": "ev.kernel", "source": "kernel", "payload": FORGED, "count": 20}
        )
        assert sent == 20
        await c.call("rogue", "publish_as", {"topic": "ev.kernel", "source": "rogue", "payload": FORGED})
        # a sequence whose order the subscriber must keep: a service event, a kernel event, a service event
        await c.call("test", "announce", {"message": "before"})
        await c.call("kernel", "stop", {"service": "housekeeping"})
        await c.call("test", "announce", {"message": "after"})
        seen: list[tuple[str, str]] = []

        async def collect() -> None:
            while not any(m == "after" for _, m in seen):
                for env in await sub.batches():
                    assert env.payload != FORGED, f"a forged kernel event was delivered: {env}"
                    stopped = env.topic == "ev.kernel" and env.payload["name"] == "SERVICE_STOPPED"
                    if env.topic == "ev.test" or stopped:
                        seen.append((env.topic, env.payload["message"]))

        await asyncio.wait_for(collect(), 15)
        order = [t for t, m in seen if m in ("before", "after") or "housekeeping" in m]
        assert order == ["ev.test", "ev.kernel", "ev.test"], seen

        async def judged() -> None:  # forged copies are held for their (never coming) twin, then dropped
            while sub.forged < 21:
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(sub.batches(), 0.2)

        await asyncio.wait_for(judged(), 10)  # 21 were published after the subscriber had joined
        # a service's subscriber: it saw the kernel's events, none of the forged ones
        watched = await c.call("test", "seen", {"prefix": "ev.kernel"})
        assert watched["count"] >= 1 and watched["sources"] == ["kernel"]
        bus = await _bus(c)
        assert bus["identity"]["forged_kernel_topics"] >= 21


async def test_a_service_cannot_raise_events_or_products_as_another(rogue_site: dict[str, str]) -> None:
    """ev.test and dl.test.* forged by another process on the shared proxy reach no subscriber (the ground's
    downlink included); test's own events, which the kernel vouched for, do."""
    async with make_runtime(["test", "rogue"], env=rogue_site) as rt:
        c = rt.client
        assert c is not None
        await rt.wait_ready("test", "rogue")
        sub = c.subscriber("ev.test", "dl.test.")
        for _ in range(20):  # until our subscription has reached the proxy (a slow joiner misses the first)
            await c.call("test", "announce", {"message": "joined"})
            with contextlib.suppress(asyncio.TimeoutError):
                await c.wait_for("ev.test", lambda e: e.payload["message"] == "joined", timeout=0.5, sub=sub)
                break
        forged_event = {"id": 1, "severity": 4, "severity_name": "HIGH", "message": "forged", "data": {}}
        assert (
            await c.call(
                "rogue", "publish_as", {"topic": "ev.test", "source": "test", "payload": forged_event, "count": 5}
            )
            == 5
        )
        assert (
            await c.call(
                "rogue",
                "publish_as",
                {"topic": "dl.test.alert", "source": "test", "payload": {"priority": 7, "data": "forged"}},
            )
            == 1
        )
        await c.call("test", "announce", {"message": "genuine"})
        await c.call("test", "product", {"name": "alert", "data": "genuine", "priority": 5})
        seen: list[Any] = []

        async def collect() -> None:
            while sub.forged < 6 or not any(e.topic.startswith("dl.") for e in seen):
                with contextlib.suppress(asyncio.TimeoutError):
                    seen.extend(await asyncio.wait_for(sub.batches(), 0.2))

        await asyncio.wait_for(collect(), 15)
        messages = [e.payload.get("message") or e.payload.get("data") for e in seen]
        assert "forged" not in messages and "genuine" in messages, messages
        assert [e.payload["data"] for e in seen if e.topic == "dl.test.alert"] == ["genuine"]


# ---- the resolver on its own, over a made-up process tree ------------------------------------------
class _Rec:
    def __init__(self, pid: int | None, incarnation: int = 1) -> None:
        self.pid = pid
        self.incarnation = incarnation


TREE = {1: 0, 10: 1, 100: 10, 200: 100, 201: 200, 202: 201, 300: 200, 400: 10, 500: 400, 600: 1}
"""pid -> parent: init 1; a shell 10; the kernel 100 (child of the shell); the fork server 200; services
201 (test) and 300 (unrecorded, a spawn in flight); 202 a child of test; 400/500 the operator's CLI;
600 a grandchild of test re-parented to init, still in test's group."""
GROUPS = {600: "0::/flightos/k-100/svc-test.1\n", 500: "0::/user.slice/session-1.scope\n"}


def _ids(records: dict[str, _Rec]) -> Any:
    from flightos.kernel.routing.identity import Identities

    return Identities(
        records, kernel_pid=100, spawners=lambda: [200], parent=TREE.get, cgroups=lambda pid: GROUPS.get(pid, "")
    )


def test_the_sender_is_named_by_its_process_not_its_claim() -> None:
    """A service (or its child) is itself under any routing id; others are the operator, refused, or held."""
    from flightos.kernel.routing.identity import Kind as PeerKind

    ids = _ids({"test": _Rec(201), "ground": _Rec(None)})
    peer = "localhost:1000:1000:{}".format
    assert ids.resolve(b"s/ground/3", peer(201)).name == "test"  # a claimed routing id changes nothing
    child = ids.resolve(b"c/x", peer(202))
    assert (child.kind, child.name, child.service_pid) == (PeerKind.SERVICE, "test", 201)
    assert ids.resolve(b"c/cli/500/ab", peer(500)).kind is PeerKind.OPERATOR
    assert ids.resolve(b"x", peer(100)).kind is PeerKind.OPERATOR  # the kernel itself
    assert ids.resolve(b"s/test/1", peer(200)).kind is PeerKind.REFUSED  # the fork server is no service
    assert ids.resolve(b"s/ground/1", peer(300)).kind is PeerKind.PENDING  # its spawn is not recorded yet
    assert ids.resolve(b"s/test/1", peer(999)).kind is PeerKind.GONE
    assert ids.resolve(b"s/test/1", None).kind is PeerKind.REFUSED  # no credentials: fail secure


def test_a_new_incarnation_is_judged_again() -> None:
    """A cached answer holds only while that service process lives: after a restart the pid is judged anew."""
    from flightos.kernel.routing.identity import Kind as PeerKind

    rec = _Rec(201)
    ids = _ids({"test": rec})
    assert ids.resolve(b"s/test/1", "h:0:0:202").name == "test"
    rec.pid = 300  # test restarted as pid 300: 202 (a child of the old incarnation) is now nobody's
    assert ids.resolve(b"s/test/1", "h:0:0:202").kind is PeerKind.REFUSED
    assert ids.resolve(b"s/test/2", "h:0:0:300").name == "test"


def test_a_descendant_that_left_the_tree_is_still_its_service_by_its_group() -> None:
    """Re-parented to init (exec mode has no subreaper), a service's descendant is named by its cgroup."""
    from flightos.kernel.routing.identity import Kind as PeerKind

    rec = _Rec(201, incarnation=1)
    assert _ids({"test": rec}).resolve(b"c/x", "h:0:0:600").name == "test"
    rec.incarnation = 2  # that incarnation is gone: its leftovers are refused, not the operator
    assert _ids({"test": rec}).resolve(b"c/x", "h:0:0:600").kind is PeerKind.REFUSED
    assert _ids({"test": rec}).resolve(b"c/x", "h:0:0:500").kind is PeerKind.OPERATOR


async def test_frames_of_a_spawn_in_flight_wait_for_its_pid_in_order() -> None:
    """Frames from a child of the fork server are held until the kernel records the pid, then delivered in order."""
    from flightos.kernel.routing.identity import Gate, Peer

    rec = _Rec(None)
    ids = _ids({"ground": rec})
    got: list[tuple[str, bytes]] = []
    done = asyncio.Event()

    def deliver(who: Peer, ident: bytes, frame: bytes) -> None:
        got.append((who.name or who.kind.value, frame))
        if len(got) == 3:
            done.set()

    gate = Gate(ids, deliver, hold_s=5.0)
    for frame in (b"attach", b"ready", b"heartbeat"):
        gate.feed(b"s/ground/1", "h:0:0:300", frame)
    assert got == []
    rec.pid = 300  # the fork server's answer arrives
    await asyncio.wait_for(done.wait(), 5)
    assert got == [("ground", b"attach"), ("ground", b"ready"), ("ground", b"heartbeat")]
    gate.close()


async def test_frames_of_an_unclaimed_child_are_refused_after_the_hold() -> None:
    """An orphan the fork server adopted is never a service: after the hold its frames are refused."""
    from flightos.kernel.routing.identity import Gate, Peer

    ids = _ids({"ground": _Rec(None)})
    got: list[str] = []
    done = asyncio.Event()

    def deliver(who: Peer, ident: bytes, frame: bytes) -> None:
        got.append(who.kind.value)
        done.set()

    gate = Gate(ids, deliver, hold_s=0.2)
    gate.feed(b"c/x", "h:0:0:300", b"command")
    await asyncio.wait_for(done.wait(), 5)
    assert got == ["refused"]
