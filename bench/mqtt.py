"""The MQTT peer: a mosquitto broker of the bench's own, with paho-mqtt clients, for throughput and request/reply.

The broker is installed with apt when it is missing and the bench runs as root, started on a free
loopback port with a generated configuration, and stopped (SIGTERM, then SIGKILL by its pid) when
the figure ends, however it ends. paho-mqtt comes from the ``bench`` extra (``make bench`` installs it).
Without either, ``Unavailable`` says which package is missing; the figures then skip their MQTT rows.
"""

from __future__ import annotations

import contextlib
import os
import select
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from bench import workers

BROKER_START_S = 10.0
APT_TIMEOUT_S = 300.0
QOS = 0
DATA, END, WARM = "bench/d", "bench/end", "bench/w"
REQUEST = "bench/req"


class Unavailable(Exception):
    """MQTT cannot be measured here; the message names the missing package and why."""


def paho() -> Any:
    """The paho-mqtt client module, or Unavailable naming the package."""
    try:
        import paho.mqtt.client as mqtt
    except ImportError as exc:
        raise Unavailable(
            "paho-mqtt is not installed (pip install 'flightos[bench]', or `make bench`, which installs it)"
        ) from exc
    return mqtt


def _broker_path() -> str | None:
    """The mosquitto executable (it lives in /usr/sbin, often off a user's PATH)."""
    return shutil.which("mosquitto") or next(
        (p for p in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto") if os.access(p, os.X_OK)), None
    )


def _apt_install() -> str:
    """Try ``apt-get install -y mosquitto`` (after an update if the first try fails); "" or why it failed."""
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    why = ""
    for cmds in (
        [["apt-get", "install", "-y", "-q", "mosquitto"]],
        [["apt-get", "update", "-q"], ["apt-get", "install", "-y", "-q", "mosquitto"]],
    ):
        for cmd in cmds:
            try:
                done = subprocess.run(
                    cmd,
                    capture_output=True,
                    text=True,
                    env=env,
                    timeout=APT_TIMEOUT_S,
                    check=False,
                    stdin=subprocess.DEVNULL,
                )
            except (OSError, subprocess.TimeoutExpired) as exc:
                return f"{' '.join(cmd)}: {exc}"
            if done.returncode != 0:
                why = (
                    f"{' '.join(cmd)} exited {done.returncode}: "
                    + ((done.stderr.strip().splitlines() or ["no message"])[-1])
                )
                break
        else:
            return ""
    return why


def broker_path() -> str:
    """The mosquitto executable, installed with apt if missing and root; else Unavailable naming the package."""
    found = _broker_path()
    if found:
        return found
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise Unavailable(
            "the mosquitto broker is not installed (apt-get install mosquitto; the bench installs "
            "it itself only when run as root on a system with apt-get)"
        )
    print("[bench] mqtt: installing the mosquitto broker (apt-get install -y mosquitto)", flush=True)
    why = _apt_install()
    found = _broker_path()
    if found is None:
        raise Unavailable(f"the mosquitto broker is not installed and apt-get could not install it: {why}")
    return found


def free_port() -> int:
    """A loopback TCP port nobody listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _config(port: int) -> str:
    """A broker on loopback only, no persistence, no queue limit (QoS 0 floods are counted, not dropped)."""
    return (
        f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
        "log_dest stderr\nlog_type error\nlog_type warning\n"
        "max_queued_messages 0\nmax_inflight_messages 0\nmessage_size_limit 0\n"
    )


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the broker by its pid, SIGKILL it if it is still there after 5 s."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


@contextlib.contextmanager
def broker() -> Iterator[int]:
    """A mosquitto of the bench's own on a free port (yielded); stopped on exit, however the block ends."""
    reasons, exe = [], ""
    try:
        exe = broker_path()
    except Unavailable as exc:
        reasons.append(str(exc))
    try:
        paho()
    except Unavailable as exc:  # both missing: name both
        reasons.append(str(exc))
    if reasons:
        raise Unavailable("; ".join(reasons))
    with tempfile.TemporaryDirectory(prefix="fos-bench-mqtt-") as tmp:
        port = free_port()
        conf = Path(tmp) / "mosquitto.conf"
        conf.write_text(_config(port))
        log_path = Path(tmp) / "mosquitto.log"
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(
                [exe, "-c", str(conf)],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        try:
            _wait_listening(proc, port, log_path)
            yield port
        finally:
            _stop(proc)


def _wait_listening(proc: subprocess.Popen[bytes], port: int, log_path: Path) -> None:
    """Until the broker accepts a connection; Unavailable with its log if it exits or never listens."""
    deadline = time.monotonic() + BROKER_START_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise Unavailable(
                f"mosquitto exited with code {proc.returncode} at start: "
                f"{log_path.read_text(errors='replace').strip()[-300:]}"
            )
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return
        time.sleep(0.02)
    raise Unavailable(f"mosquitto did not listen on 127.0.0.1:{port} within {BROKER_START_S:g} s")


def client(port: int, name: str, network: str = "thread") -> Any:
    """A connected MQTT v5 paho client.

    ``network``: "thread" runs paho's own network thread (loop_start: the usual way, used for request/reply);
    "caller" runs none, so publish() writes to the socket at once (the fastest publisher paho has);
    "reader" runs a thread of the bench's that reads many packets per wake-up (the fastest subscriber).
    """
    mqtt = paho()
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"{name}-{os.getpid()}", protocol=mqtt.MQTTv5)
    c.max_queued_messages_set(0)
    connected = threading.Event()
    c.on_connect = lambda *_a: connected.set()
    c.connect("127.0.0.1", port, keepalive=60)
    if network == "thread":
        c.loop_start()
    else:
        deadline = time.monotonic() + BROKER_START_S
        while not connected.is_set() and time.monotonic() < deadline:
            c.loop(0.05)
        if network == "reader":
            stop = threading.Event()
            reader = threading.Thread(target=_read_loop, args=(c, stop), daemon=True, name=f"{name}-reader")
            reader.start()
            c._bench_reader = (stop, reader)
    if not connected.wait(BROKER_START_S):
        close(c)
        raise RuntimeError(f"MQTT client {name} did not connect to 127.0.0.1:{port}")
    return c


def _read_loop(c: Any, stop: threading.Event) -> None:
    """Wait for the socket, then read packets until it has none (paho's own loop reads one per select)."""
    while not stop.is_set():
        sock = c.socket()
        if sock is None:
            return
        try:
            readable, _, _ = select.select([sock], [], [], 0.1)
            while readable and not stop.is_set():
                for _ in range(64):
                    c.loop_read()
                readable, _, _ = select.select([sock], [], [], 0)
        except (OSError, ValueError):  # closed under us: the client is being closed
            return
        if c.want_write():
            c.loop_write()
        c.loop_misc()


def subscribe(c: Any, topic: str) -> None:
    """Subscribe at QoS 0 and wait for the broker's SUBACK."""
    acked = threading.Event()
    c.on_subscribe = lambda *_a: acked.set()
    c.subscribe(topic, QOS)
    if not acked.wait(BROKER_START_S):
        raise RuntimeError(f"the broker did not acknowledge the subscription to {topic}")


def close(c: Any) -> None:
    """Disconnect and stop whichever network thread the client has."""
    with contextlib.suppress(Exception):
        c.disconnect()
    reader = getattr(c, "_bench_reader", None)
    if reader is not None:
        reader[0].set()
        reader[1].join(2)
    c.loop_stop()


# ---- helper processes (spawned through bench.workers) -----------------------------------------
def publisher_main(conn: Connection, port: int) -> None:
    """Serve flood trials: probes until "go", ``count`` QoS 0 messages, end markers until "close"."""
    c = client(port, "bench-pub", network="caller")
    conn.send("ready")
    while True:
        msg = conn.recv()
        if msg[0] == "quit":
            break
        _, size, count, trial = msg
        tag = str(trial).encode()  # probes and end markers name their trial: a late one from the last is ignored
        while not conn.poll(workers.JOIN_PERIOD_S):
            c.publish(WARM, tag, QOS)
            c.loop(0)
        conn.recv()
        payload, publish = b"x" * size, c.publish
        t0 = time.monotonic_ns()
        for _ in range(count):
            publish(DATA, payload, QOS)
        publish(END, tag, QOS)
        while c.want_write():  # what the socket did not take at once
            c.loop_write()
        conn.send({"t0_ns": t0, "t1_ns": time.monotonic_ns()})
        while not conn.poll(workers.END_PERIOD_S):
            publish(END, tag, QOS)
            c.loop(0)
        conn.recv()
        conn.send("closed")
    close(c)


def responder_main(conn: Connection, port: int) -> None:
    """Answer every request on ``bench/req`` to its MQTT v5 response topic, with its correlation data."""
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    c = client(port, "bench-responder")

    def on_message(cl: Any, _ud: Any, msg: Any) -> None:
        """Send the payload back where the request asked, with its correlation data."""
        props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
        props.CorrelationData = msg.properties.CorrelationData
        cl.publish(msg.properties.ResponseTopic, msg.payload, QOS, properties=props)

    c.on_message = on_message
    subscribe(c, REQUEST)
    conn.send("ready")
    conn.recv()
    close(c)


# ---- request/reply, from this process ----------------------------------------------------------
@dataclass
class Requester:
    """An MQTT v5 requester: response topic and correlation data, one request at a time."""

    c: Any
    topic: str
    props: Any
    got: threading.Event
    want: list[bytes]

    def block(self, frame: bytes, n: int, timeout: float = 5.0) -> list[float]:
        """``n`` sequential requests; each round trip in microseconds."""
        out: list[float] = []
        clock, props, got, publish = time.perf_counter_ns, self.props, self.got, self.c.publish
        for i in range(n):
            corr = i.to_bytes(4, "big")
            props.CorrelationData = corr
            self.want[0] = corr
            got.clear()
            t0 = clock()
            publish(REQUEST, frame, QOS, properties=props)
            if not got.wait(timeout):
                raise RuntimeError(f"no MQTT reply within {timeout:g} s")
            out.append((clock() - t0) / 1e3)
        return out


@contextlib.contextmanager
def request_reply() -> Iterator[Requester]:
    """A broker, a responder process and a requester here, all torn down on exit."""
    paho()  # Unavailable, naming the package, before anything starts
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    with broker() as port:
        responder = workers.start(responder_main, port)
        c = None
        try:
            c = client(port, "bench-requester")
            topic = f"bench/rep/{os.getpid()}"
            got, want = threading.Event(), [b""]

            def on_message(_c: Any, _ud: Any, msg: Any) -> None:
                """Wake the requester when the reply to its current request arrives."""
                if msg.properties.CorrelationData == want[0]:
                    got.set()

            c.on_message = on_message
            subscribe(c, topic)
            props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
            props.ResponseTopic = topic
            yield Requester(c, topic, props, got, want)
        finally:
            if c is not None:
                close(c)
            responder.stop()
