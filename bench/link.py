"""Links between boards: cross-board command round trip, cross-board pub/sub, failover time.

Two kernels on loopback (``flightos.testing.linked.write_system``): board A (``obc``) runs
``probe`` (the test plugin under another name) and board B (``payload``) runs ``test``,
critical, so it fails over. Every figure is measured against a baseline from the same run:

  round trip  ``Client.call("test", "echo")`` from A: client -> A's kernel -> link -> B's kernel ->
              test -> back. Baselines: the same call made on B (no link), and the same system with
              ``[link] curve = false``. Both systems run at once; blocks of the four paths rotate.
  pub/sub     ``test.emit`` on B publishes N 1 KiB messages; a Subscriber on A's bus counts them
              (A's probe watches ``tm.test.``: that interest is what makes B's kernel carry them).
              Baselines: the same flood read on B's own bus, and the plain-TCP system. A join probe
              (repeated until seen) replaces sleeps; N stays under the 10 000-message HWMs of the
              service's publisher and the link sockets, so nothing should drop: the delivered count
              is what is reported, and any shortfall is reported as loss.
  failover    B's kernel is SIGKILLed (its services die with it: PDEATHSIG); the time until A's
              status shows ``test`` READY, polled. A's kernel events split it into detection
              (kill -> LINK_DOWN: ``dead_after_s`` give or take one ``heartbeat_s``, by the phase of
              the last hello) and LINK_DOWN -> SERVICE_READY (the spawn).
              Each trial uses a fresh pair of kernels with CURVE on.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
import time
from collections.abc import Awaitable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from bench.report import Row, fmt_ratio, num
from bench.runtime import running
from bench.stats import median, percentile, ratio
from flightos.bus.envelope import Envelope
from flightos.bus.pubsub import Subscriber
from flightos.client import Client
from flightos.testing.linked import LinkedSystem, write_system
from flightos.testing.runtime import RuntimeProcess

A, B = "obc", "payload"
BOARDS: dict[str, dict[str, dict[str, Any]]] = {
    A: {"probe": {"plugin": "test"}},
    B: {"test": {"criticality": "critical"}},
}
SYSTEMS = ("CURVE", "plain")
BLOCK = 200
"""Calls per round-trip block; blocks of the four paths rotate."""
ECHO_ARGS = {"value": 42}
PAYLOAD = "x" * 1024
FLOOD_TIMEOUT_S = 30.0
IDLE_S = 2.0
"""A flood ends when all N arrived, or nothing arrived for this long (the rest counts as lost)."""
JOIN_TRIES = 100
HEARTBEAT_S, DEAD_AFTER_S = 0.25, 1.0
FAILOVER_LINK = {"heartbeat_s": HEARTBEAT_S, "dead_after_s": DEAD_AFTER_S, "join_timeout_s": 2.0}
FAILOVER_TIMEOUT_S = 15.0
POLL_S = 0.01
EVENT_TIMEOUT_S = 5.0

T = TypeVar("T")


async def gather_all(*aws: Awaitable[T]) -> list[T]:
    """Every awaitable run to its end (so none is left half-started), then the first error raised."""
    res = await asyncio.gather(*aws, return_exceptions=True)
    for r in res:
        if isinstance(r, BaseException):
            raise r
    return [r for r in res if not isinstance(r, BaseException)]


def client(rt: RuntimeProcess) -> Client:
    """The started runtime's client."""
    assert rt.client is not None
    return rt.client


async def start_pair(stack: contextlib.AsyncExitStack, system: LinkedSystem) -> dict[str, RuntimeProcess]:
    """Both boards of ``system`` started at once (each joins the other), stopped when ``stack`` closes."""
    rts = await gather_all(*(stack.enter_async_context(running(target=str(system.targets[b]))) for b in BOARDS))
    pair = dict(zip(BOARDS, rts, strict=True))
    await wait_hosted(pair[A])
    return pair


async def wait_hosted(a: RuntimeProcess) -> dict[str, Any]:
    """Wait until A's link sees B up and hosting ``test`` (B claims nothing before its own join ends)."""

    def ok(st: dict[str, Any]) -> bool:
        peer = st["link"]["peers"][B]
        return bool(peer["up"]) and "test" in peer["services"]

    return await a.wait_until(ok, 10.0, f"board {B} up and hosting test, as board {A} sees it")


# ---- cross-board command round trip ---------------------------------------------------------------
async def rtt_block(c: Client, n: int) -> list[float]:
    """``n`` sequential ``test.echo`` calls; each round trip in microseconds."""
    out: list[float] = []
    clock, call = time.perf_counter_ns, c.call
    for _ in range(n):
        t0 = clock()
        await call("test", "echo", ECHO_ARGS)
        out.append((clock() - t0) / 1e3)
    return out


async def measure_rtt(pairs: dict[str, dict[str, RuntimeProcess]], calls: int) -> dict[str, list[float]]:
    """Warm every path up, then rotate blocks of the four paths until each has ``calls`` samples."""
    paths = {
        f"{s} {where}": client(pairs[s][A if where == "cross" else B]) for s in SYSTEMS for where in ("cross", "same")
    }
    names = list(paths)
    for p in names:
        await rtt_block(paths[p], BLOCK)
    out: dict[str, list[float]] = {p: [] for p in names}
    for i in range(max(1, calls // BLOCK)):
        k = i % len(names)
        for p in names[k:] + names[:k]:
            out[p] += await rtt_block(paths[p], BLOCK)
    return out


def rtt_rows(res: dict[str, list[float]]) -> list[Row]:
    """p50/p99 across boards: plain against the same board, CURVE against plain."""

    def q(path: str, p: float) -> float | None:
        return percentile(res[path], p)

    samples = {
        p: {"n": len(xs), "p50": median(xs), "p90": percentile(xs, 90), "p99": percentile(xs, 99), "max": max(xs)}
        for p, xs in res.items()
    }
    n = len(res["CURVE cross"])
    g = "link"
    same_note = (
        f"client on B calling test on B; CURVE system p50 {num(q('CURVE same', 50))} µs, "
        f"p99 {num(q('CURVE same', 99))} µs; {n} calls per path, blocks of {BLOCK} rotating"
    )
    curve_vs_same = ratio(q("CURVE cross", 50), q("CURVE same", 50))
    return [
        Row(
            "link RTT p50: test.echo on the same board (plain system)",
            q("plain same", 50),
            "µs",
            group=g,
            note=same_note,
            samples=samples,
        ),
        Row(
            "link RTT p50: test.echo A -> B, plain TCP",
            q("plain cross", 50),
            "µs",
            q("plain same", 50),
            ratio(q("plain cross", 50), q("plain same", 50)),
            group=g,
            note="client on A -> A's kernel -> link -> B's kernel -> test -> back; baseline: the same call on B",
        ),
        Row(
            "link RTT p99: test.echo A -> B, plain TCP",
            q("plain cross", 99),
            "µs",
            q("plain same", 99),
            ratio(q("plain cross", 99), q("plain same", 99)),
            group=g,
        ),
        Row(
            "link RTT p50: test.echo A -> B, CURVE",
            q("CURVE cross", 50),
            "µs",
            q("plain cross", 50),
            ratio(q("CURVE cross", 50), q("plain cross", 50)),
            group=g,
            note=f"baseline: plain TCP across boards (the ratio is CURVE's cost); against the same board "
            f"(CURVE system) {fmt_ratio(curve_vs_same)}",
        ),
        Row(
            "link RTT p99: test.echo A -> B, CURVE",
            q("CURVE cross", 99),
            "µs",
            q("plain cross", 99),
            ratio(q("CURVE cross", 99), q("plain cross", 99)),
            group=g,
            note=f"against the same board (CURVE system) {fmt_ratio(ratio(q('CURVE cross', 99), q('CURVE same', 99)))}",
        ),
    ]


# ---- cross-board pub/sub --------------------------------------------------------------------------
@dataclass
class Flood:
    """One flood of ``sent`` messages: how many arrived, from the emit call to the last arrival."""

    path: str
    sent: int
    delivered: int
    seconds: float
    emit_seconds: float
    gaps: int

    @property
    def rate(self) -> float:
        """Delivered messages per second."""
        return self.delivered / self.seconds if self.seconds > 0 else 0.0

    @property
    def emit_rate(self) -> float:
        """Messages per second of the emit command alone (call to reply, as its client sees it)."""
        return self.sent / self.emit_seconds if self.emit_seconds > 0 else 0.0


async def join(sender: Client, sub: Subscriber, tag: str) -> int:
    """Emit one ``<tag>.join`` message until ``sub`` gets one; return how many were emitted."""
    topic = f"tm.test.{tag}.join"
    for i in range(1, JOIN_TRIES + 1):
        await sender.call("test", "emit", {"name": f"{tag}.join", "count": 1})
        with contextlib.suppress(asyncio.TimeoutError):
            deadline = time.monotonic() + 0.1
            while (left := deadline - time.monotonic()) > 0:
                if any(e.topic == topic for e in await asyncio.wait_for(sub.batches(), left)):
                    return i
    raise TimeoutError(f"{topic} never arrived after {JOIN_TRIES} tries")


async def consume(sub: Subscriber, topic: str, n: int) -> tuple[int, int, int]:
    """Count ``topic`` until ``n`` arrived or IDLE_S of silence; (count, clock at the last, seq gaps)."""
    got, last_ns, last_seq, gaps = 0, time.monotonic_ns(), 0, 0
    deadline = time.monotonic() + FLOOD_TIMEOUT_S
    while got < n and time.monotonic() < deadline:
        try:
            batch: list[Envelope] = await asyncio.wait_for(sub.batches(), IDLE_S)
        except asyncio.TimeoutError:
            break
        now = time.monotonic_ns()
        for env in batch:
            if env.topic == topic:
                got += 1
                gaps += max(0, env.seq - last_seq - 1)
                last_seq, last_ns = env.seq, now
    return got, last_ns, gaps


async def emit(sender: Client, name: str, n: int) -> tuple[int, int]:
    """``test.emit`` of ``n`` 1 KiB messages; (how many it published, clock when its reply arrived)."""
    sent = await sender.call("test", "emit", {"name": name, "payload": PAYLOAD, "count": n}, timeout=FLOOD_TIMEOUT_S)
    return int(sent), time.monotonic_ns()


async def flood(sender: RuntimeProcess, reader: RuntimeProcess, path: str, tag: str, n: int) -> Flood:
    """``n`` messages from test on B, counted by a fresh subscriber on ``reader``'s bus."""
    sub = client(reader).subscriber(f"tm.test.{tag}.")
    try:
        await join(client(sender), sub, tag)
        t0 = time.monotonic_ns()
        call = asyncio.ensure_future(emit(client(sender), f"{tag}.data", n))
        try:
            got, t_last, gaps = await consume(sub, f"tm.test.{tag}.data", n)
        finally:
            sent, t_emitted = await call
    finally:
        sub.close()
    return Flood(path, sent, got, (t_last - t0) / 1e9, (t_emitted - t0) / 1e9, gaps)


async def measure_pubsub(pairs: dict[str, dict[str, RuntimeProcess]], n: int, reps: int, warm: int) -> list[Flood]:
    """Floods on the four paths (B -> A and B -> B, both systems), rotating the order every repetition."""
    paths = [f"{s} {where}" for s in SYSTEMS for where in ("cross", "same")]
    for s in SYSTEMS:  # the probe on A subscribes: B's kernel learns the interest from A's next hello
        await client(pairs[s][A]).call("probe", "watch", {"prefix": "tm.test."})
    out: list[Flood] = []
    k = 0
    for rep in range(-1, reps):  # repetition -1 is the warm-up, discarded
        order = paths[rep % 4 :] + paths[: rep % 4] if rep >= 0 else paths
        for p in order:
            s, where = p.split()
            k += 1
            f = await flood(pairs[s][B], pairs[s][A if where == "cross" else B], p, f"f{k}", warm if rep < 0 else n)
            if rep >= 0:
                out.append(f)
    return out


@dataclass
class FloodStats:
    """The floods of one path, summarised."""

    floods: list[Flood]

    @property
    def rate(self) -> float | None:
        """Median delivered messages per second."""
        return median([f.rate for f in self.floods])

    @property
    def sent(self) -> int:
        """Messages emitted over every flood."""
        return sum(f.sent for f in self.floods)

    @property
    def lost(self) -> int:
        """Messages emitted but never delivered, over every flood."""
        return sum(f.sent - f.delivered for f in self.floods)

    def samples(self) -> dict[str, Any]:
        """Every flood's figures, for the JSON record."""
        return {
            "msg_per_s": [round(f.rate) for f in self.floods],
            "emit_msg_per_s": [round(f.emit_rate) for f in self.floods],
            "sent": self.sent,
            "lost": self.lost,
            "seq_gaps": sum(f.gaps for f in self.floods),
        }

    def note(self, *extra: str) -> str:
        """Emit-alone rate, payload bandwidth and loss, after ``extra``."""
        lost = f"{self.lost} of {self.sent} LOST" if self.lost else f"none of {self.sent} lost"
        return "; ".join(
            [
                *extra,
                f"test.emit alone {num(median([f.emit_rate for f in self.floods]))} msg/s",
                f"{(self.rate or 0) * len(PAYLOAD) / 1e6:.1f} MB/s of payload",
                lost,
            ]
        )


async def link_counters(pairs: dict[str, dict[str, RuntimeProcess]]) -> dict[str, Any]:
    """What each link and A's probe counted over the floods (B out, A in, drops, the probe's count)."""
    out: dict[str, Any] = {}
    for s, pair in pairs.items():
        a, b = (await pair[A].status())["link"], (await pair[B].status())["link"]
        seen = await client(pair[A]).call("probe", "seen", {"prefix": "tm.test."})
        out[s] = {
            "B_telemetry_out": b["stats"]["telemetry_out"],
            "B_telemetry_dropped": b["stats"]["telemetry_dropped"],
            "A_telemetry_in": a["stats"]["telemetry_in"],
            "A_probe_seen": seen["count"],
            "A_failovers": a["stats"]["failovers"],
            "B_peer_up": a["peers"][B]["up"],
            "B_send_failed": b["peers"][A]["send_failed"],
            "A_rejected": a["rejected"],
            "spoofed": a["stats"]["spoofed"] + b["stats"]["spoofed"],
            "curve": [a["curve"], b["curve"]],
            "A_admitted": a["security"]["admitted"],
            "A_refused": a["security"]["refused"],
        }
    return out


def pubsub_rows(floods: list[Flood], n: int, counters: dict[str, Any]) -> list[Row]:
    """Delivered msg/s across boards: plain against the same board, CURVE against plain."""
    st = {p: FloodStats([f for f in floods if f.path == p]) for p in {f.path for f in floods}}
    pc, ps, cc, cs = st["plain cross"], st["plain same"], st["CURVE cross"], st["CURVE same"]
    g = "link"

    def carried(s: str) -> str:
        c = counters[s]
        return (
            f"{s} link over the run: B sent {c['B_telemetry_out']}, dropped {c['B_telemetry_dropped']}; "
            f"A imported {c['A_telemetry_in']}, A's probe saw {c['A_probe_seen']}"
        )

    lab = f"{len(PAYLOAD) // 1024} KiB"
    return [
        Row(
            f"link pub/sub {lab}: test.emit on B -> subscriber on B (plain system)",
            ps.rate,
            "msg/s",
            group=g,
            note=ps.note(
                f"{len(ps.floods)} floods of {n}; CURVE system {num(cs.rate)} msg/s",
                "A's probe watches tm.test., so B's kernel exports the flood over the link meanwhile",
            ),
            samples={"plain": ps.samples(), "CURVE": cs.samples()},
        ),
        Row(
            f"link pub/sub {lab}: test.emit on B -> subscriber on A, plain TCP",
            pc.rate,
            "msg/s",
            ps.rate,
            ratio(pc.rate, ps.rate),
            group=g,
            note=pc.note("baseline: the same flood read on B", carried("plain")),
            samples=pc.samples(),
        ),
        Row(
            f"link pub/sub {lab}: test.emit on B -> subscriber on A, CURVE",
            cc.rate,
            "msg/s",
            pc.rate,
            ratio(cc.rate, pc.rate),
            group=g,
            note=cc.note(
                f"baseline: plain TCP across boards; against the same board (CURVE system) "
                f"{fmt_ratio(ratio(cc.rate, cs.rate))}",
                carried("CURVE"),
            ),
            samples={**cc.samples(), "counters": counters},
        ),
    ]


async def throughput_and_rtt(quick: bool, tmp: Path) -> list[Row]:
    """Two linked pairs at once, CURVE and plain: round trips, then floods."""
    calls = 600 if quick else 2000
    n, reps, warm = (4000, 2, 1000) if quick else (8000, 5, 2000)
    systems = {s: write_system(tmp / s, BOARDS, curve=s == "CURVE") for s in SYSTEMS}
    async with contextlib.AsyncExitStack() as stack:
        started = await gather_all(*(start_pair(stack, systems[s]) for s in SYSTEMS))
        pairs = dict(zip(SYSTEMS, started, strict=True))
        rtt = await measure_rtt(pairs, calls)
        floods = await measure_pubsub(pairs, n, reps, warm)
        await asyncio.sleep(0.5)  # let the probes count the tail of the last flood
        counters = await link_counters(pairs)
    return rtt_rows(rtt) + pubsub_rows(floods, n, counters)


# ---- failover -------------------------------------------------------------------------------------
async def next_event(sub: Subscriber, backlog: list[Envelope], name: str, key: str, value: str) -> Envelope:
    """The next ``ev.kernel`` event ``name`` whose ``data[key]`` is ``value`` (earlier ones are skipped)."""

    async def find() -> Envelope:
        while True:
            while backlog:
                env = backlog.pop(0)
                p = env.payload
                if env.topic == "ev.kernel" and p.get("name") == name and p["data"].get(key) == value:
                    return env
            backlog.extend(await sub.batches())

    return await asyncio.wait_for(find(), EVENT_TIMEOUT_S)


async def joined_events(c: Client) -> tuple[Subscriber, list[Envelope]]:
    """A subscriber to A's kernel events, known to be joined (its 1 Hz telemetry arrived)."""
    sub = c.subscriber("ev.kernel", "tm.kernel.self")
    backlog: list[Envelope] = []

    async def first() -> None:
        while True:
            batch = await sub.batches()
            backlog.extend(e for e in batch if e.topic == "ev.kernel")
            if any(e.topic.startswith("tm.kernel.") for e in batch):
                return

    await asyncio.wait_for(first(), EVENT_TIMEOUT_S)
    backlog.clear()
    return sub, backlog


def alive(pid: int | None) -> bool:
    """Whether a process with this pid still runs (a zombie waiting for its reaper does not)."""
    if not pid:
        return False
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return not any(line.startswith("State:") and line.split()[1] == "Z" for line in status.splitlines())


async def discard(rt: RuntimeProcess) -> None:
    """Reap a runtime that was killed on purpose and remove its files (not a shutdown to record)."""
    await rt.stop(timeout=2.0)
    rt.cleanup()


async def one_failover(tmp: Path) -> dict[str, Any]:
    """A fresh CURVE pair; SIGKILL B's kernel; time test READY on A (polled) and A's events on the way."""
    system = write_system(tmp, BOARDS, curve=True, link=FAILOVER_LINK)
    b = RuntimeProcess(target=str(system.targets[B]))
    async with contextlib.AsyncExitStack() as stack:
        stack.push_async_callback(discard, b)
        a, _ = await gather_all(stack.enter_async_context(running(target=str(system.targets[A]))), b.start())
        try:
            await wait_hosted(a)
            sub, backlog = await joined_events(client(a))
            victim = (await b.service("test"))["pid"]
            assert b.proc is not None
            t_kill = time.monotonic_ns()
            b.proc.kill()
            polls = 0
            while True:
                st = await a.status()
                polls += 1
                row = next((r for r in st["services"] if r["name"] == "test"), None)
                if row is not None and row["state"] == "READY":
                    t_ready = time.monotonic_ns()
                    break
                if (time.monotonic_ns() - t_kill) / 1e9 > FAILOVER_TIMEOUT_S:
                    raise TimeoutError(f"test not READY on {A} {FAILOVER_TIMEOUT_S} s after {B} was killed")
                await asyncio.sleep(POLL_S)
            down = await next_event(sub, backlog, "LINK_DOWN", "board", B)
            over = await next_event(sub, backlog, "SERVICE_FAILOVER", "service", "test")
            ready = await next_event(sub, backlog, "SERVICE_READY", "service", "test")
            answer = await client(a).call("test", "ping")
        except Exception:
            print(f"--- runtime log of board {B} ({b.log_path}) ---\n{b.log_tail(40)}")
            raise
    return {
        "kill_to_ready_ms": (t_ready - t_kill) / 1e6,
        "polls": polls,
        "kill_to_link_down_ms": (down.mono_ns - t_kill) / 1e6,
        "silent_ms": down.payload["data"].get("silent_ms"),
        "link_down_to_failover_ms": (over.mono_ns - down.mono_ns) / 1e6,
        "failover_to_ready_ms": (ready.mono_ns - over.mono_ns) / 1e6,
        "link_down_to_ready_ms": (ready.mono_ns - down.mono_ns) / 1e6,
        "kill_to_ready_event_ms": (ready.mono_ns - t_kill) / 1e6,
        "start_ms": ready.payload["data"].get("start_ms"),
        "replica": over.payload["data"].get("replica"),
        "b_test_pid_alive_after": alive(victim),
        "a_test_pid": answer.get("pid"),
    }


async def failover(quick: bool, tmp: Path) -> list[Row]:
    """Three (two when quick) fresh pairs, one kill each."""
    trials = [await one_failover(tmp / f"failover-{i}") for i in range(2 if quick else 3)]

    def each(key: str) -> str:
        return ", ".join(f"{t[key]:.0f}" for t in trials)

    def med(key: str) -> float | None:
        return median([float(t[key]) for t in trials])

    orphans = sum(bool(t["b_test_pid_alive_after"]) for t in trials)
    g = "link"
    return [
        Row(
            f"failover: B's kernel SIGKILLed -> test READY on A (median of {len(trials)})",
            med("kill_to_ready_ms"),
            "ms",
            group=g,
            samples={"trials": trials},
            note=f"each: {each('kill_to_ready_ms')} ms (A's status polled every {POLL_S * 1000:.0f} ms); "
            f"[link] dead_after_s = {DEAD_AFTER_S:g} s, heartbeat_s = {HEARTBEAT_S:g} s, CURVE on; "
            + (
                "B's test process was dead (gone or a zombie) by then, every time"
                if not orphans
                else f"B's test process OUTLIVED its kernel in {orphans} of {len(trials)} trials"
            ),
        ),
        Row(
            "failover: detection, kill -> LINK_DOWN on A (median)",
            med("kill_to_link_down_ms"),
            "ms",
            group=g,
            note=f"each: {each('kill_to_link_down_ms')} ms; A's kernel event timestamp; silent since B's last "
            f"hello: {each('silent_ms')} ms (the limit {DEAD_AFTER_S * 1000:.0f} ms, checked every "
            f"{HEARTBEAT_S * 1000:.0f} ms)",
        ),
        Row(
            "failover: LINK_DOWN -> test READY on A (median)",
            med("link_down_to_ready_ms"),
            "ms",
            group=g,
            note=f"each: {each('link_down_to_ready_ms')} ms; LINK_DOWN -> SERVICE_FAILOVER "
            f"{each('link_down_to_failover_ms')} ms, then spawn -> ready (the kernel's start_ms) "
            f"{each('start_ms')} ms",
        ),
    ]


async def run_async(quick: bool) -> list[Row]:
    """Round trips and floods on two linked pairs at once, then failover on fresh pairs."""
    with tempfile.TemporaryDirectory(prefix="fos-bench-link-") as tmp:
        rows = await throughput_and_rtt(quick, Path(tmp) / "pairs")
        rows += await failover(quick, Path(tmp))
    return rows


def run(quick: bool = False) -> list[Row]:
    """Measure the link figures and return their rows."""
    return asyncio.run(run_async(quick))
