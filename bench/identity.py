"""Cost of identities a service cannot forge: the kernel's per-frame identity check, and a checking relay.

``python -m bench.identity`` prints, from one run on this machine:
  1. the command socket's receive path per frame: the old one (``recv_multipart``, routing id parsed)
     against the new one (``copy=False`` frames, ``Peer-Address`` read, ``Identities.resolve`` cached);
  2. pub/sub throughput through flightos's libzmq XSUB/XPUB proxy against a Python relay that takes
     each publisher's identity from ``Peer-Address`` and checks the topic and the envelope's source
     (what enforcing "no service publishes as another" on one board would cost), same run, interleaved.
Publishers are separate processes; every figure is the median of interleaved repetitions.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import msgspec
import zmq

from flightos.kernel.routing.identity import Identities, peer_address
from flightos.kernel.routing.router import _parse_identity

N_CMD = 50_000
N_PUB = {64: 100_000, 1024: 100_000, 65536: 10_000}
REPS = 5


def _dealer(ep: str, n: int, frame: bytes) -> None:
    ctx = zmq.Context()
    s = ctx.socket(zmq.DEALER)
    s.setsockopt(zmq.IDENTITY, b"s/bench/1")
    s.setsockopt(zmq.SNDHWM, 0)
    s.connect(ep)
    for _ in range(n):
        s.send(frame)
    s.close(linger=-1)
    ctx.term()


class _Rec:
    pid: int | None = None


def receive_path(tmp: Path, new: bool) -> float:
    """CPU microseconds per frame for the kernel's thread to receive a command frame and name its sender."""
    ctx = zmq.Context()
    r = ctx.socket(zmq.ROUTER)
    r.setsockopt(zmq.RCVHWM, 0)
    ep = f"ipc://{tmp}/cmd-{int(new)}-{time.monotonic_ns()}.sock"
    r.bind(ep)
    frame = msgspec.msgpack.encode([1, 3, "test", "bench", 0, 0, 0, "id", {"name": "ping", "args": {}}])
    p = mp.get_context("fork").Process(target=_dealer, args=(ep, N_CMD, frame))
    p.start()
    rec = _Rec()
    rec.pid = p.pid  # the sender is "service bench": the cache-hit path every service frame takes
    ids = Identities({"bench": rec})
    p.join()  # every frame is queued before the clock starts: this times the receiver alone
    r.poll(10_000)
    t0 = time.thread_time()  # CPU time of this thread: the receive path's own cost, not the busy host's
    got = 0
    while got < N_CMD:
        if not r.poll(10_000):
            break
        while int(r.getsockopt(zmq.EVENTS)) & zmq.POLLIN:
            if new:
                fid, f = r.recv_multipart(zmq.NOBLOCK, copy=False)
                who = ids.resolve(fid.bytes, peer_address(f))
                _ = f.bytes, who.name
            else:
                bid, data = r.recv_multipart(zmq.NOBLOCK)
                _ = _parse_identity(bid)[0], data
            got += 1
    dt = time.thread_time() - t0
    r.close(0)
    ctx.term()
    return dt / max(got, 1) * 1e6


def _publisher(ep: str, n: int, size: int, source: str) -> None:
    ctx = zmq.Context()
    s = ctx.socket(zmq.XPUB)  # XPUB: start once the subscription arrived (no sleep)
    s.setsockopt(zmq.SNDHWM, 0)
    s.connect(ep)
    s.recv()
    enc = msgspec.msgpack.Encoder().encode
    payload = b"x" * size
    topic = f"tm.{source}.data"
    prefix = topic.encode() + b"\x00"
    for i in range(n):
        s.send(prefix + enc([1, 1, topic, source, i + 1, 0, 0, "", payload]))
    s.send(b"tm.bench.end\x00" + enc([1, 1, "tm.bench.end", source, 0, 0, 0, "", None]))
    s.close(linger=-1)
    ctx.term()


def _source_of(data: bytes, at: int) -> str | None:
    """The envelope's source, read from its MessagePack header without decoding the payload."""
    try:
        if data[at] != 0x99:  # fixarray of 9
            return None
        i = at + 3  # past the array header, the version and the kind (positive fixints)
        for field in range(2):  # topic, then source
            b = data[i]
            if 0xA0 <= b <= 0xBF:
                n, i = b - 0xA0, i + 1
            elif b == 0xD9:
                n, i = data[i + 1], i + 2
            else:
                return None
            if field == 1:
                return data[i : i + n].decode()
            i += n
    except (IndexError, UnicodeDecodeError):
        return None
    return None


class Relay(threading.Thread):
    """XSUB -> check -> XPUB in Python: sender identity from Peer-Address, topic namespace and source checked."""

    def __init__(self, ctx: zmq.Context[Any], xsub_ep: str, xpub_ep: str, names: dict[int, str]) -> None:
        super().__init__(daemon=True)
        self.xsub = ctx.socket(zmq.XSUB)
        self.xpub = ctx.socket(zmq.XPUB)
        for s in (self.xsub, self.xpub):
            s.setsockopt(zmq.RCVHWM, 0)
            s.setsockopt(zmq.SNDHWM, 0)
        self.xsub.bind(xsub_ep)
        self.xpub.bind(xpub_ep)
        self.names = names
        self.refused = 0
        self.stop = False

    def run(self) -> None:
        poller = zmq.Poller()
        poller.register(self.xsub, zmq.POLLIN)
        poller.register(self.xpub, zmq.POLLIN)
        who: dict[str, str] = {}
        ok: dict[tuple[str, bytes], bool] = {}
        send = self.xpub.send
        while not self.stop:
            for sock, _ in poller.poll(100):
                if sock is self.xpub:
                    self.xsub.send(self.xpub.recv())
                    continue
                recv = self.xsub.recv
                while self.xsub.getsockopt(zmq.EVENTS) & zmq.POLLIN:
                    f = recv(zmq.NOBLOCK, copy=False)
                    peer = peer_address(f) or ""
                    name = who.get(peer)
                    if name is None:
                        name = who[peer] = self.names.get(int(peer.rsplit(":", 1)[1]), "")
                    data = f.bytes
                    cut = data.find(b"\x00")
                    topic = data[:cut]
                    allowed = ok.get((name, topic))
                    if allowed is None:
                        t = topic.decode()
                        allowed = ok[(name, topic)] = (
                            t.startswith((f"tm.{name}.", f"dl.{name}.")) or t == f"ev.{name}" or t == "tm.bench.end"
                        )
                    if allowed and _source_of(data, cut + 1) == name:
                        send(data)
                    else:
                        self.refused += 1


def pubsub(tmp: Path, relay: bool, size: int) -> float:
    """Messages per second from one publisher process to this subscriber, through the proxy or the relay."""
    from flightos.bus.proxy import Proxy

    ctx = zmq.Context()
    tag = f"{int(relay)}-{size}-{time.monotonic_ns()}"
    xsub_ep, xpub_ep = f"ipc://{tmp}/x-{tag}.sock", f"ipc://{tmp}/p-{tag}.sock"
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.RCVHWM, 0)
    sub.setsockopt(zmq.SUBSCRIBE, b"tm.")
    mpctx = mp.get_context("fork")
    p = mpctx.Process(target=_publisher, args=(xsub_ep, N_PUB[size], size, "bench"))
    if relay:
        rl: Relay | None = None
        p.start()
        rl = Relay(ctx, xsub_ep, xpub_ep, {p.pid or 0: "bench"})
        rl.start()
        px = None
    else:
        px = Proxy(ctx, xsub_ep, xpub_ep)
        px.start()
        rl = None
        p.start()
    sub.connect(xpub_ep)
    first = sub.recv()
    t0 = time.perf_counter()
    n = 1
    while not first.startswith(b"tm.bench.end"):
        first = sub.recv()
        n += 1
    dt = time.perf_counter() - t0
    p.join()
    if rl is not None:
        rl.stop = True
        rl.join()
        rl.xsub.close(0)
        rl.xpub.close(0)
    if px is not None:
        px.stop()
    sub.close(0)
    ctx.term()
    return n / dt


def main() -> None:
    """Print both figures."""
    with tempfile.TemporaryDirectory(prefix="fos-id-") as d:
        tmp = Path(d)
        old, new = [], []
        for _ in range(REPS):
            old.append(receive_path(tmp, False))
            new.append(receive_path(tmp, True))
        print(
            f"command socket receive path, CPU per frame (median of {REPS}, {N_CMD} frames each): "
            f"routing id parsed {statistics.median(old):.2f} µs, peer credentials + cached identity "
            f"{statistics.median(new):.2f} µs (+{statistics.median(new) - statistics.median(old):.2f} µs)"
        )
        for size in (64, 1024, 65536):
            proxy, relay = [], []
            for _ in range(REPS):
                proxy.append(pubsub(tmp, False, size))
                relay.append(pubsub(tmp, True, size))
            mp_, mr = statistics.median(proxy), statistics.median(relay)
            print(
                f"pub/sub {size} B, 1 publisher (median of {REPS}, {N_PUB[size]} messages): libzmq proxy "
                f"{mp_:,.0f} msg/s, checking relay {mr:,.0f} msg/s ({mr / mp_:.2f}x)"
            )
    print(f"machine: nproc={os.cpu_count()}, pyzmq {zmq.__version__}, libzmq {zmq.zmq_version()}")


if __name__ == "__main__":
    main()
