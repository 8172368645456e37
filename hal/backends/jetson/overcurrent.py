"""Orin's ``soctherm_oc`` hwmon: under-voltage (oc1) and over-current (oc2 average, oc3 instantaneous) events.

The counters are cumulative since boot; ``ocN_throt_en`` says whether the event throttles the
CPU and GPU. A counter that grew since the previous read is an event happening now.
"""

from __future__ import annotations

from dataclasses import dataclass

from hal.fs import Probe
from hal.types import ThrottleFlags

HWMON_NAME = "soctherm_oc"
#: Event number -> (name, extras key for its counter).
EVENTS = {
    1: ("under-voltage", "under_voltage_events"),
    2: ("over-current (average)", "over_current_avg_events"),
    3: ("over-current (instantaneous)", "over_current_inst_events"),
}


@dataclass(frozen=True)
class OcCounters:
    """Event counts and whether each event throttles, by event number."""

    counts: dict[int, int]
    throttles: dict[int, bool]


def find_soctherm_oc(probe: Probe) -> str | None:
    """The ``soctherm_oc`` hwmon directory (``/sys/devices/platform/soctherm-oc-event/hwmon/hwmonN``)."""
    for hw in probe.fs.glob("/sys/class/hwmon/hwmon[0-9]*"):
        if probe.fs.read_text(f"{hw}/name") == HWMON_NAME:
            return hw
    return None


def read_oc(probe: Probe, hwmon: str) -> OcCounters | None:
    """Counters of the events this hwmon has; None (recorded missing) if none is readable."""
    counts: dict[int, int] = {}
    throttles: dict[int, bool] = {}
    for n in EVENTS:
        if not probe.fs.exists(f"{hwmon}/oc{n}_event_cnt"):
            continue
        count = probe.int(f"{hwmon}/oc{n}_event_cnt", f"throttle.oc{n}_event_cnt")
        if count is None or count < 0:
            continue
        counts[n] = count
        throttles[n] = probe.fs.read_int(f"{hwmon}/oc{n}_throt_en") == 1
    if not counts:
        probe.miss("throttle.soctherm_oc")
        return None
    return OcCounters(counts, throttles)


class OcTracker:
    """Turns cumulative counters into throttle flags: growth since the last read is 'now'."""

    def __init__(self) -> None:
        self._last: dict[int, int] | None = None

    def flags(self, oc: OcCounters) -> ThrottleFlags:
        """Bits as ``get_throttled`` lays them out: 0/16 under-voltage, 2/18 throttled (now/since boot)."""
        last = self._last
        self._last = dict(oc.counts)
        grew = {n for n, c in oc.counts.items() if last is not None and c > last.get(n, c)}
        raw = 0
        if oc.counts.get(1, 0) > 0:
            raw |= 0x10000
        if 1 in grew:
            raw |= 0x1
        if any(c > 0 and oc.throttles.get(n) for n, c in oc.counts.items()):
            raw |= 0x40000
        if any(oc.throttles.get(n) for n in grew):
            raw |= 0x4
        return ThrottleFlags.from_bits(raw)
