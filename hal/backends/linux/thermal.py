"""Thermal zones with their trip points, read from sysfs (never hard-coded)."""

from __future__ import annotations

from collections.abc import Iterable

from hal.fs import Probe
from hal.types import ThermalZone, TripPoint

THERMAL_DIRS = ("/sys/class/thermal", "/sys/devices/virtual/thermal")

#: A temperature at or below this (°C) means "zone powered off" (Jetson CV zones read -256 C).
POWERED_OFF_C = -200.0


def read_zones(probe: Probe, skip_types: Iterable[str] = ()) -> list[ThermalZone]:
    """All thermal zones; a zone whose temp is unreadable or powered off has temp_c None."""
    skip = {s.lower() for s in skip_types}
    paths: list[str] = []
    for base in THERMAL_DIRS:
        paths = probe.fs.glob(f"{base}/thermal_zone[0-9]*")
        if paths:
            break
    zones = []
    for path in paths:
        zone_id = path.rsplit("/", 1)[1]
        ztype = probe.fs.read_text(f"{path}/type") or zone_id
        if ztype.lower() in skip:
            continue
        milli = probe.fs.read_int(f"{path}/temp")
        temp: float | None
        if milli is None:
            probe.miss(f"zone.{ztype}.temp")
            temp = None
        elif milli / 1000.0 <= POWERED_OFF_C:
            probe.miss(f"zone.{ztype}.temp (powered off)")
            temp = None
        else:
            temp = milli / 1000.0
        zones.append(ThermalZone(name=ztype, temp_c=temp, trips=read_trips(probe, path), sysfs=zone_id))
    return zones


def read_trips(probe: Probe, zone_path: str) -> list[TripPoint]:
    """The zone's trip points, in sysfs order; unreadable ones are skipped."""
    trips = []
    for temp_path in probe.fs.glob(f"{zone_path}/trip_point_*_temp"):
        stem = temp_path[: -len("_temp")]
        milli = probe.fs.read_int(temp_path)
        kind = probe.fs.read_text(f"{stem}_type")
        if milli is None or kind is None:
            continue
        trips.append(TripPoint(kind=kind, temp_c=milli / 1000.0))
    return trips
