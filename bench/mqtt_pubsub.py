"""Peer figure: pub/sub throughput through mosquitto (paho-mqtt, QoS 0) at 64 B, 1 KiB and 64 KiB.

The publisher is a helper process, the subscriber this one; as in the pub/sub figure, a join probe
replaces sleeps and repeated end markers close each trial. Each rate is set against raw pyzmq direct
from the pub/sub figure of the same run (when it ran). Without the broker or paho-mqtt the figure
returns one row saying which package is missing.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from bench import goals, mqtt, workers
from bench.pubsub import SIZES, label
from bench.report import INFO, Row, num
from bench.stats import median, ratio

FULL_COUNTS = {64: 20_000, 1024: 20_000, 65536: 2_000}
QUICK_COUNTS = {64: 10_000, 1024: 10_000, 65536: 1_000}
TRIAL_TIMEOUT_S = 30.0
TRIALS = 0
"""Trials run so far in this process (each trial's probes and end markers carry its number)."""


class Counter:
    """Counts data messages and notes when the first join probe and the first end marker arrived."""

    def __init__(self, trial: int) -> None:
        """Nothing seen yet of trial number ``trial``."""
        self.tag = str(trial).encode()
        self.n = 0
        self.joined = threading.Event()
        self.ended = threading.Event()
        self.t_end = 0

    def on_message(self, _c: Any, _ud: Any, msg: Any) -> None:
        """paho's network thread: count, or mark the probe or the end."""
        topic = msg.topic
        if topic == mqtt.DATA:
            self.n += 1
        elif msg.payload != self.tag:  # a probe or end marker of an earlier trial, still in flight
            return
        elif topic == mqtt.END:
            if not self.ended.is_set():
                self.t_end = time.monotonic_ns()
                self.ended.set()
        elif topic == mqtt.WARM:
            self.joined.set()


def trial(sub: Any, pub: workers.Worker, size: int, count: int) -> tuple[float, int]:
    """One flood; delivered messages per second and how many arrived."""
    global TRIALS
    TRIALS += 1
    ctr = Counter(TRIALS)
    sub.on_message = ctr.on_message
    pub.conn.send(("trial", size, count, TRIALS))
    if not ctr.joined.wait(TRIAL_TIMEOUT_S):
        raise RuntimeError("the MQTT publisher's probes never arrived")
    pub.conn.send("go")
    report: dict[str, Any] = pub.conn.recv()
    if not ctr.ended.wait(TRIAL_TIMEOUT_S):
        raise RuntimeError(f"the MQTT flood of {count} messages of {size} B did not end within {TRIAL_TIMEOUT_S:g} s")
    delivered = ctr.n
    pub.ask("close")
    return delivered / ((ctr.t_end - report["t0_ns"]) / 1e9), delivered


def unavailable_row(why: str) -> Row:
    """The row that says the MQTT peer was not measured, and why."""
    return Row(
        "MQTT peer (mosquitto + paho-mqtt): not measured", None, "", group="mqtt", verdict_override="skipped", note=why
    )


def run(quick: bool = False) -> list[Row]:
    """Measure the MQTT throughput figure and return its rows."""
    reps, counts = (2, QUICK_COUNTS) if quick else (3, FULL_COUNTS)
    try:
        with mqtt.broker() as port:
            pub = workers.start(mqtt.publisher_main, port)
            sub = None
            try:
                sub = mqtt.client(port, "bench-sub", network="reader")
                for topic in (mqtt.DATA, mqtt.END, mqtt.WARM):
                    mqtt.subscribe(sub, topic)
                for size in SIZES:  # warm-up, discarded
                    trial(sub, pub, size, counts[size] // 10)
                res: dict[int, list[tuple[float, int]]] = {s: [] for s in SIZES}
                for _ in range(reps):
                    for size in SIZES:
                        res[size].append(trial(sub, pub, size, counts[size]))
            finally:
                if sub is not None:
                    mqtt.close(sub)
                pub.stop()
    except mqtt.Unavailable as exc:
        goals.record("mqtt_skipped", str(exc))
        return [unavailable_row(str(exc))]
    return [_row(size, res[size], counts[size]) for size in SIZES]


def _row(size: int, trials: list[tuple[float, int]], count: int) -> Row:
    """One size: median rate, against raw pyzmq direct of this run's pub/sub figure."""
    rate = median([r for r, _ in trials])
    lost = sum(count - n for _, n in trials)
    raw = goals.get(("pubsub", size, "raw direct"))
    goals.record(("pubsub", size, "mqtt"), rate)
    note = (
        f"QoS 0 over loopback TCP, MQTT v5; paho-mqtt publishing without its network thread and read by a "
        f"thread that takes every ready packet per wake-up (paho's fastest; its publish still makes two socket "
        f"sends, the packet and a wake-up byte to its own socket pair); {len(trials)} trials of {count}"
    )
    if size >= 1024 and rate:
        note += f"; {rate * size / 1e6:.0f} MB/s of payload"
    if lost:
        note += f"; {lost} of {count * len(trials)} LOST"
    if raw is None:
        note += "; no raw pyzmq figure in this run (run the pubsub figure too for the ratio)"
    return Row(
        f"pub/sub {label(size)}: MQTT via mosquitto",
        rate,
        "msg/s",
        raw,
        ratio(rate, raw),
        group="mqtt",
        verdict_override=INFO,
        note=note,
        samples={
            "msg_per_s": [round(r) for r, _ in trials],
            "lost": lost,
            "baseline": "raw pyzmq direct",
            "rate_text": num(rate),
        },
    )
