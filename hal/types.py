"""Plain data the HAL hands out: identities and one snapshot of a board (a ``BoardReading``)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

Extra = float | int | str | bool | None


@dataclass(frozen=True)
class BoardIdentity:
    """What board this is: backend name, model string, number of cores and what it supports."""

    backend: str
    model: str
    cores: int
    hotplug: bool = False
    watchdog_max_s: float | None = None
    details: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class CoreReading:
    """One core: online state, load since the previous read (%), frequency (MHz), cluster id."""

    id: int
    online: bool
    load_pct: float | None
    freq_mhz: float | None
    cluster: int | None


@dataclass(frozen=True)
class TripPoint:
    """A thermal trip point read from sysfs: its type (passive, critical...) and temperature."""

    kind: str
    temp_c: float


@dataclass(frozen=True)
class ThermalZone:
    """A thermal zone: its type name, temperature (None if unreadable or powered off), trips."""

    name: str
    temp_c: float | None
    trips: list[TripPoint] = field(default_factory=list)
    sysfs: str = ""

    def trip(self, kind: str) -> float | None:
        """Lowest trip temperature of the given kind, or None."""
        temps = [t.temp_c for t in self.trips if t.kind == kind]
        return min(temps) if temps else None


@dataclass(frozen=True)
class ThrottleFlags:
    """Throttle state: the four current flags and the four sticky 'since boot' flags."""

    raw: int
    under_voltage: bool
    freq_capped: bool
    throttled: bool
    soft_temp_limit: bool
    under_voltage_occurred: bool
    freq_capped_occurred: bool
    throttled_occurred: bool
    soft_temp_limit_occurred: bool

    @classmethod
    def from_bits(cls, raw: int) -> ThrottleFlags:
        """Decode the ``vcgencmd get_throttled`` bit layout (bits 0-3 now, 16-19 sticky)."""
        return cls(
            raw=raw,
            under_voltage=bool(raw & 0x1),
            freq_capped=bool(raw & 0x2),
            throttled=bool(raw & 0x4),
            soft_temp_limit=bool(raw & 0x8),
            under_voltage_occurred=bool(raw & 0x10000),
            freq_capped_occurred=bool(raw & 0x20000),
            throttled_occurred=bool(raw & 0x40000),
            soft_temp_limit_occurred=bool(raw & 0x80000),
        )

    @property
    def any_now(self) -> bool:
        """True if any of the current (non-sticky) flags is set."""
        return bool(self.raw & 0xF)


@dataclass(frozen=True)
class EdacCounts:
    """Memory-controller error counters summed over controllers: corrected and uncorrected."""

    corrected: int
    uncorrected: int


@dataclass(frozen=True)
class WatchdogInfo:
    """The hardware watchdog as sysfs describes it."""

    identity: str | None
    timeout_s: float | None
    max_timeout_s: float | None
    device: str = ""
    """The ``/sys/class/watchdog/watchdogN`` directory these values come from."""
    nowayout: bool | None = None
    """True when the driver ignores the magic close: once opened, only a reboot stops it."""
    bootstatus: int | None = None
    """``WDIOF_*`` bits of the last reset (``WDIOF_CARDRESET``: the watchdog reset the board)."""
    reset_reason: str | None = None
    """``bootstatus`` in words ("watchdog reset", "normal boot"...), or None when unreadable."""


@dataclass(frozen=True)
class TimelineEvent:
    """One entry of a board's own fault/event timeline (the simulator's): board time, kind, details."""

    t_s: float
    kind: str
    detail: dict[str, Extra] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Plain msgpack-able dict."""
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class BoardReading:
    """One full snapshot of a board. Fields that could not be read are None and named in missing."""

    t_mono_ns: int
    cores: list[CoreReading]
    zones: list[ThermalZone]
    throttle: ThrottleFlags | None
    rails_mw: dict[str, float]
    edac: EdacCounts | None
    watchdog: WatchdogInfo | None
    missing: list[str]
    extras: dict[str, Extra] = field(default_factory=dict)

    def core(self, core_id: int) -> CoreReading | None:
        """The reading of one core, or None if the board has no such core."""
        for c in self.cores:
            if c.id == core_id:
                return c
        return None

    def zone(self, name: str) -> ThermalZone | None:
        """The first zone whose type name equals ``name``."""
        for z in self.zones:
            if z.name == name:
                return z
        return None

    def to_dict(self) -> dict[str, Any]:
        """The reading as nested dicts/lists of str, int, float, bool and None (msgpack-able)."""
        return dataclasses.asdict(self)
