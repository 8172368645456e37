"""Cutting the link between two boards for 30 s under command load: nothing is lost, nothing runs twice.

Board ``obc`` (A) sends ``test.record(key)`` commands, each with its own key, at a steady rate to
the ``test`` service on board ``payload`` (B), before, during and after a 30 s cut of the link.
``test`` runs only on B (``failover = false``), so the commands must wait out the cut: A keeps
them and resends them once the link is back, and B runs each command id once. Every command must
get exactly one successful result (count 1) and B's store must show every key executed exactly once.

The cut is a blackhole, as a broken radio link is: TCP connections stay open but no byte crosses
(only the link's heartbeats can tell), in both directions. It is made either by a TCP relay the test
puts between the kernels (:mod:`tests.link.relay`; there the link first fades one way, so some
commands run on B but lose their results) or, where the machine allows it (root and ``ip netns``),
by taking down a veth pair between two network namespaces.

A knows that ``test`` runs on B only from B's hellos (A's target does not list it), so A must hold
commands for a board it cannot reach rather than refuse them as unknown.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from flightos.bus.envelope import Envelope
from flightos.bus.pubsub import Subscriber
from flightos.testing.linked import LinkedSystem, write_system
from flightos.testing.runtime import RuntimeProcess
from tests.link.relay import Relay

CUT_S = 30.0
"""How long the link is cut (the issue's requirement: 30 s)."""
RATE_HZ = 20.0
"""Commands per second A sends to B, before, during and after the cut."""
BEFORE_S = 3.0
"""Load before the cut."""
AFTER_S = 5.0
"""Load after the heal (the resends and fresh commands mix)."""
FADE_S = 0.5
"""Through the relays the link first dies one way: B's replies stop this long before A's commands do, so
commands that ran on B lose their results and are resent after the heal (B must not run them again)."""
CALL_TIMEOUT_S = 90.0
"""Each command's deadline: long enough that none expires during the cut."""
LINK: dict[str, Any] = {"join_timeout_s": 1.0}
"""[link] timings: the defaults (heartbeat 0.5 s, dead after 2 s, resend every 1 s), a short join."""
DETECT_S = 15.0
"""How long a kernel may take to notice the cut or the heal (dead_after_s is 2 s)."""
ESSENTIAL_NO_FAILOVER = {"criticality": "essential", "failover": False}
KEY_PREFIX = "cut-"
TEST_TIMEOUT_S = BEFORE_S + CUT_S + AFTER_S + CALL_TIMEOUT_S + 60
"""pytest-timeout for one scenario (the suite's default of 60 s is shorter than the cut plus its set-up)."""


def base_dir() -> Path:
    """This run's directory for runtimes (short: ipc socket paths must stay under ~100 characters)."""
    return Path(os.environ["FLIGHTOS_TEST_BASE"])


def port_of(endpoint: str) -> int:
    """The port of a tcp://HOST:PORT endpoint."""
    return int(endpoint.rsplit(":", 1)[1])


# ---- watching link events -----------------------------------------------------------------------
class LinkEvents:
    """Every LINK_DOWN / LINK_UP a kernel raises about one peer, collected as they arrive."""

    def __init__(self, rt: RuntimeProcess, peer: str) -> None:
        assert rt.client is not None
        self.peer = peer
        self.seen: list[str] = []
        self._changed = asyncio.Event()
        self._sub: Subscriber = rt.client.subscriber("ev.kernel")
        self._task = asyncio.get_running_loop().create_task(self._collect())

    async def _collect(self) -> None:
        while True:
            for env in await self._sub.batches():
                if self._mine(env):
                    self.seen.append(env.payload["name"])
                    self._changed.set()

    def _mine(self, env: Envelope) -> bool:
        p = env.payload
        return (
            isinstance(p, dict)
            and p.get("name") in ("LINK_DOWN", "LINK_UP")
            and p.get("data", {}).get("board") == self.peer
        )

    async def wait(self, name: str, count: int, timeout: float) -> None:
        """Wait until ``name`` was seen ``count`` times; TimeoutError saying what was seen instead."""

        async def seen_enough() -> None:
            while self.seen.count(name) < count:
                self._changed.clear()
                await self._changed.wait()

        try:
            await asyncio.wait_for(seen_enough(), timeout)
        except asyncio.TimeoutError:
            raise TimeoutError(
                f"no {name} #{count} about board {self.peer} within {timeout} s (link events seen: {self.seen})"
            ) from None

    async def close(self) -> None:
        """Stop collecting."""
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)


# ---- the command load ---------------------------------------------------------------------------
@dataclass
class CommandLoad:
    """``test.record(key=<unique>)`` commands at a steady rate, each outcome kept by key and phase."""

    rt: RuntimeProcess
    rate_hz: float
    phase: str = "before"
    issued: dict[str, str] = field(default_factory=dict)
    """key -> the phase it was issued in (before, cut, after)."""
    outcomes: dict[str, list[Any]] = field(default_factory=dict)
    """key -> what its call returned (a count) or raised (the exception); one entry per call."""
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    async def run(self, stop: asyncio.Event) -> None:
        """Issue commands until ``stop`` is set, paced on the loop clock (no drift)."""
        loop = asyncio.get_running_loop()
        period = 1.0 / self.rate_hz
        next_t = loop.time()
        i = 0
        while not stop.is_set():
            key = f"{KEY_PREFIX}{i:05d}"
            self.issued[key] = self.phase
            self.tasks.append(loop.create_task(self._one(key)))
            i += 1
            next_t += period
            await asyncio.sleep(max(0.0, next_t - loop.time()))  # pacing the load, not synchronisation

    async def _one(self, key: str) -> None:
        assert self.rt.client is not None
        try:
            value: Any = await self.rt.client.call("test", "record", {"key": key}, timeout=CALL_TIMEOUT_S)
        except Exception as exc:
            value = exc
        self.outcomes.setdefault(key, []).append(value)

    async def settle(self) -> None:
        """Wait for every call to return (each has its own deadline, so this ends)."""
        _, pending = await asyncio.wait(self.tasks, timeout=CALL_TIMEOUT_S + 10)
        assert not pending, f"{len(pending)} command(s) never returned, not even with a deadline error"


# ---- the scenario, whatever cuts the link ----------------------------------------------------------
@dataclass
class Figures:
    """What one run of the scenario saw (printed, for the report)."""

    issued: int
    issued_during_cut: int
    resends: int
    duplicates_absorbed_on_b: int
    undeliverable_results_on_b: int
    link_events_on_a: list[str]
    link_events_on_b: list[str]


async def cut_under_load(
    a: RuntimeProcess,
    b: RuntimeProcess,
    cut: Callable[[], Awaitable[None]],
    heal: Callable[[], Awaitable[None]],
    fade: Callable[[], Awaitable[None]] | None = None,
) -> Figures:
    """Run the load across a CUT_S cut made by ``cut``/``heal``; assert nothing was lost or run twice.

    ``fade``, if given, cuts B's replies FADE_S before ``cut`` cuts the rest.
    """
    assert a.client is not None and b.client is not None
    st_a = await a.status()
    assert st_a["link"]["peers"]["payload"]["up"], "the link must be up before the cut"
    before_b = await b.service("test")
    assert before_b["state"] == "READY"

    loop = asyncio.get_running_loop()
    events_a, events_b = LinkEvents(a, "payload"), LinkEvents(b, "obc")
    load = CommandLoad(a, RATE_HZ)
    stop = asyncio.Event()
    loader = loop.create_task(load.run(stop))
    try:
        try:
            await asyncio.sleep(BEFORE_S)  # the scenario: load on a healthy link
            load.phase = "cut"
            if fade is not None:
                await fade()
                await asyncio.sleep(FADE_S)  # the scenario: commands still reach B, their results do not return
            await cut()
            cut_at = loop.time()
            await asyncio.gather(events_a.wait("LINK_DOWN", 1, DETECT_S), events_b.wait("LINK_DOWN", 1, DETECT_S))
            await asyncio.sleep(cut_at + CUT_S - loop.time())  # the scenario: hold the cut for CUT_S in all
            load.phase = "after"
            await heal()
            await asyncio.gather(events_a.wait("LINK_UP", 1, DETECT_S), events_b.wait("LINK_UP", 1, DETECT_S))
            await asyncio.sleep(AFTER_S)  # the scenario: load on the healed link
        finally:
            stop.set()
            await loader
        await load.settle()
    finally:
        await asyncio.gather(events_a.close(), events_b.close())

    # Every command got exactly one result, and it is a success: the first and only execution (count 1).
    assert set(load.outcomes) == set(load.issued)
    bad = {k: v for k, v in sorted(load.outcomes.items()) if v != [1]}
    assert not bad, (
        f"{len(bad)} of {len(load.issued)} commands did not get exactly one result '1'; "
        f"by phase {phase_counts(bad, load.issued)}; first: {describe(bad)}"
    )

    # B's store: every key ran exactly once, none is missing, none is extra.
    runs = await b.client.call("test", "executions", {"prefix": KEY_PREFIX}, timeout=10)
    missing = sorted(set(load.issued) - set(runs))
    extra = sorted(set(runs) - set(load.issued))
    twice = {k: n for k, n in sorted(runs.items()) if n != 1}
    assert not missing and not extra and not twice, (
        f"executions on payload: {len(missing)} missing {missing[:5]}, {len(extra)} extra {extra[:5]}, "
        f"{len(twice)} not exactly once {list(twice.items())[:5]}"
    )

    # The link really went down and came back, on both sides; nothing failed over, nothing is left over.
    st_a, st_b = await a.status(), await b.status()
    assert st_a["link"]["peers"]["payload"]["up"] and st_b["link"]["peers"]["obc"]["up"]
    assert events_a.seen[-1] == "LINK_UP" and events_b.seen[-1] == "LINK_UP"
    link_a = st_a["link"]["stats"]
    assert link_a["resends"] > 0, f"no command was resent across the cut: {link_a}"
    assert link_a["failovers"] == 0 and st_b["link"]["stats"]["failovers"] == 0
    assert link_a["failed_over_commands"] == 0
    assert st_a["link"]["outgoing"] == 0, "A still holds commands for B"
    after_b = await b.service("test")
    assert (after_b["state"], after_b["pid"]) == ("READY", before_b["pid"]), "test on B was restarted"
    during_cut = sum(1 for p in load.issued.values() if p == "cut")
    assert during_cut >= CUT_S * RATE_HZ * 0.8, f"only {during_cut} commands were issued during the cut"

    if fade is not None:
        assert st_b["bus"]["commands"]["duplicates"] > 0, (
            "no command that ran on B during the fade was resent and answered from B's result cache"
        )

    figures = Figures(
        issued=len(load.issued),
        issued_during_cut=during_cut,
        resends=link_a["resends"],
        duplicates_absorbed_on_b=st_b["bus"]["commands"]["duplicates"],
        undeliverable_results_on_b=st_b["bus"]["commands"]["undeliverable"],
        link_events_on_a=events_a.seen,
        link_events_on_b=events_b.seen,
    )
    print(f"\nlink cut {CUT_S:g} s: {figures}")
    return figures


def phase_counts(keys: dict[str, Any], issued: dict[str, str]) -> dict[str, int]:
    """How many of ``keys`` were issued in each phase."""
    out: dict[str, int] = {}
    for k in keys:
        out[issued[k]] = out.get(issued[k], 0) + 1
    return out


def describe(bad: dict[str, list[Any]], n: int = 3) -> str:
    """The first few bad outcomes, readable."""
    return "; ".join(f"{k}: {[repr(v) for v in vs]}" for k, vs in list(bad.items())[:n])


# ---- two kernels, linked ----------------------------------------------------------------------------
def write_pair(tmp_path: Path, obc_services: dict[str, dict[str, Any]]) -> LinkedSystem:
    """Targets and CURVE keys for obc (A, running ``obc_services``) and payload (B, running ``test``)."""
    return write_system(tmp_path / "sys", {"obc": obc_services, "payload": {"test": ESSENTIAL_NO_FAILOVER}}, link=LINK)


@asynccontextmanager
async def running(a: RuntimeProcess, b: RuntimeProcess) -> AsyncIterator[None]:
    """Start B, then A (so a ``test`` that A's target lists too is left to B: REMOTE on A); stop both after."""
    failed = True
    try:
        await b.start()
        await a.start()
        await a.wait_until(
            lambda st: st["link"]["peers"]["payload"]["up"] and "test" in st["link"]["peers"]["payload"]["services"],
            10,
            "A to see test on B",
        )
        yield
        failed = False
    finally:
        for rt in (a, b):
            await rt.stop()
        for name, rt in (("obc", a), ("payload", b)):
            if failed:
                print(f"--- {name} runtime log ---\n{rt.log_tail(80)}")
            rt.cleanup()


@pytest.mark.slow
@pytest.mark.timeout(TEST_TIMEOUT_S)
async def test_link_cut_for_30_s_under_load_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    """Every command sent to the payload board across a 30 s link cut runs once and gets its result."""
    system = write_pair(tmp_path, {})
    # Each kernel listens on its own port; each one's peer endpoint is a relay to the other's.
    to_b = await Relay(port_of(system.endpoints["payload"])).start()  # A's DEALER -> B's ROUTER
    to_a = await Relay(port_of(system.endpoints["obc"])).start()  # B's DEALER -> A's ROUTER
    a = RuntimeProcess(
        str(system.targets["obc"]), base_dir=base_dir(), overrides=[f'link.peers.payload.endpoint="{to_b.endpoint}"']
    )
    b = RuntimeProcess(
        str(system.targets["payload"]), base_dir=base_dir(), overrides=[f'link.peers.obc.endpoint="{to_a.endpoint}"']
    )

    async def fade() -> None:  # everything from B to A: its results (on A's connection) and its hellos
        to_b.cut(up=False)
        to_a.cut()

    async def cut() -> None:
        to_b.cut()
        to_a.cut()

    async def heal() -> None:
        to_b.heal()
        to_a.heal()

    try:
        async with running(a, b):
            await cut_under_load(a, b, cut, heal, fade)
        assert to_b.connections >= 2 and to_a.connections >= 2, "the kernels never reconnected through the relays"
    finally:
        await asyncio.gather(to_b.close(), to_a.close())
        system.cleanup()


# ---- two kernels in two network namespaces, joined by a veth pair -------------------------------------
def ip(*args: str) -> subprocess.CompletedProcess[str]:
    """Run ``ip ARGS`` (iproute2); never raises on a non-zero exit."""
    return subprocess.run(["ip", *args], capture_output=True, text=True, timeout=15, check=False)


def netns_unavailable() -> str | None:
    """Why this machine cannot run kernels in network namespaces, or None if it can (as far as we can tell)."""
    if not sys.platform.startswith("linux"):
        return f"network namespaces are Linux-only (this is {sys.platform})"
    if os.geteuid() != 0:
        return f"creating network namespaces needs root (running as uid {os.geteuid()})"
    if shutil.which("ip") is None:
        return "iproute2's `ip` command is not on PATH"
    return None


@dataclass
class NetnsPair:
    """Two network namespaces joined by a veth pair: ``a`` at ADDR.1, ``b`` at ADDR.2 (a /24)."""

    tag: str
    subnet: str = "10.213.77"

    @property
    def ns(self) -> tuple[str, str]:
        """The namespaces' names."""
        return f"fos{self.tag}a", f"fos{self.tag}b"

    @property
    def veth(self) -> tuple[str, str]:
        """The veth ends' names (at most 15 characters)."""
        return f"fosv{self.tag}a", f"fosv{self.tag}b"

    @property
    def addr(self) -> tuple[str, str]:
        """The two ends' addresses."""
        return f"{self.subnet}.1", f"{self.subnet}.2"

    def create(self) -> str | None:
        """Create both namespaces and the veth pair, up; the failing command and its error, or None."""
        (na, nb), (va, vb), (aa, ab) = self.ns, self.veth, self.addr
        for argv in (
            ["netns", "add", na],
            ["netns", "add", nb],
            ["link", "add", va, "netns", na, "type", "veth", "peer", "name", vb, "netns", nb],
            ["-n", na, "addr", "add", f"{aa}/24", "dev", va],
            ["-n", nb, "addr", "add", f"{ab}/24", "dev", vb],
            ["-n", na, "link", "set", "lo", "up"],
            ["-n", nb, "link", "set", "lo", "up"],
            ["-n", na, "link", "set", va, "up"],
            ["-n", nb, "link", "set", vb, "up"],
        ):
            done = ip(*argv)
            if done.returncode != 0:
                return f"`ip {' '.join(argv)}` failed: {done.stderr.strip() or done.returncode}"
        return None

    def set_link(self, up: bool) -> None:
        """Take both ends of the veth pair down (a cut: packets vanish, sockets stay) or up again."""
        for ns, dev in zip(self.ns, self.veth, strict=True):
            done = ip("-n", ns, "link", "set", dev, "up" if up else "down")
            assert done.returncode == 0, f"ip -n {ns} link set {dev}: {done.stderr.strip()}"

    def delete(self) -> None:
        """Delete both namespaces (which deletes the veth pair)."""
        for ns in self.ns:
            ip("netns", "del", ns)


class NetnsRuntime(RuntimeProcess):
    """A runtime whose kernel (and so its services) runs inside a network namespace."""

    def __init__(self, netns: str, target: str, overrides: list[str]) -> None:
        super().__init__(target, overrides=overrides, base_dir=base_dir())
        self.netns = netns

    def command_line(self) -> list[str]:
        """``ip netns exec NS`` before the usual command (it execs, so the pid is the kernel's)."""
        return ["ip", "netns", "exec", self.netns, *super().command_line()]


@pytest.fixture
def netns_pair() -> Iterator[NetnsPair]:
    """Two network namespaces joined by a veth pair; skipped (saying why) where they cannot be made."""
    reason = netns_unavailable()
    if reason is not None:
        pytest.skip(reason)
    pair = NetnsPair(tag=str(os.getpid()))
    error = pair.create()
    if error is not None:
        pair.delete()
        pytest.skip(f"cannot set up two network namespaces joined by a veth pair here: {error}")
    try:
        yield pair
    finally:
        pair.delete()


@pytest.mark.slow
@pytest.mark.timeout(TEST_TIMEOUT_S)
async def test_link_cut_between_network_namespaces_loses_and_duplicates_nothing(
    tmp_path: Path, netns_pair: NetnsPair
) -> None:
    """With the boards in two network namespaces and their veth link down for 30 s, every command runs once."""
    system = write_pair(tmp_path, {"test": ESSENTIAL_NO_FAILOVER})
    (ns_a, ns_b), (addr_a, addr_b) = netns_pair.ns, netns_pair.addr
    ep_a = f"tcp://{addr_a}:{port_of(system.endpoints['obc'])}"
    ep_b = f"tcp://{addr_b}:{port_of(system.endpoints['payload'])}"
    a = NetnsRuntime(
        ns_a, str(system.targets["obc"]), [f'link.listen="{ep_a}"', f'link.peers.payload.endpoint="{ep_b}"']
    )
    b = NetnsRuntime(
        ns_b, str(system.targets["payload"]), [f'link.listen="{ep_b}"', f'link.peers.obc.endpoint="{ep_a}"']
    )

    async def cut() -> None:
        await asyncio.to_thread(netns_pair.set_link, False)

    async def heal() -> None:
        await asyncio.to_thread(netns_pair.set_link, True)

    try:
        async with running(a, b):
            assert (await a.service("test"))["state"] == "REMOTE"
            await cut_under_load(a, b, cut, heal)
    finally:
        system.cleanup()
