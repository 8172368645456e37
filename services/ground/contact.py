"""Is there a ground contact now? Policies from a lab bench (always) to station visibility from orbit.

The ground service asks ``in_contact`` before downlinking; without contact telemetry is stored.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

EARTH_RADIUS_KM = 6371.0
"""Mean Earth radius of the spherical model used for station visibility."""


class Contact(Protocol):
    """A contact policy: given UTC seconds and the sub-satellite point (lat, lon degrees) if known."""

    def in_contact(self, now_utc: float, position: tuple[float, float] | None) -> bool: ...


@runtime_checkable
class Heeds(Protocol):
    """A contact policy that telecommands bring (``after_tc``): told when an authenticated one arrives."""

    def heard(self, now_utc: float) -> None: ...


class Always:
    """Always in contact: a lab bench with the ground tool on the same network."""

    def in_contact(self, now_utc: float, position: tuple[float, float] | None) -> bool:
        """True."""
        return True


class Never:
    """Never in contact: everything is stored (tests of store-and-forward)."""

    def in_contact(self, now_utc: float, position: tuple[float, float] | None) -> bool:
        """False."""
        return False


class AfterTelecommand:
    """In contact while a telecommand arrived within ``hold_s``: if ground is talking, ground is listening."""

    def __init__(self, hold_s: float = 600.0) -> None:
        if not (math.isfinite(hold_s) and hold_s >= 0):
            raise ValueError(f"hold_s must be a finite number >= 0, got {hold_s!r}")
        self.hold_s = float(hold_s)
        self.last_heard: float | None = None

    def heard(self, now_utc: float) -> None:
        """Record that a telecommand arrived at ``now_utc``."""
        self.last_heard = now_utc

    def in_contact(self, now_utc: float, position: tuple[float, float] | None) -> bool:
        """True if a telecommand arrived at most ``hold_s`` ago (or the clock stepped back since)."""
        return self.last_heard is not None and now_utc - self.last_heard <= self.hold_s


class Windows:
    """Explicit contact windows [start_utc, end_utc), e.g. from a pass plan; overlaps are merged."""

    def __init__(self, windows: Iterable[tuple[float, float]]) -> None:
        spans: list[tuple[float, float]] = []
        for i, (start, end) in enumerate(windows):
            if not (math.isfinite(start) and math.isfinite(end)) or start >= end:
                raise ValueError(f"window {i}: start must be before end, got ({start!r}, {end!r})")
            spans.append((float(start), float(end)))
        spans.sort()
        merged: list[tuple[float, float]] = []
        for start, end in spans:
            if merged and start <= merged[-1][1]:
                merged[-1] = (merged[-1][0], max(merged[-1][1], end))
            else:
                merged.append((start, end))
        self.windows: list[tuple[float, float]] = merged
        self._starts = [s for s, _ in merged]

    def in_contact(self, now_utc: float, position: tuple[float, float] | None) -> bool:
        """True if ``now_utc`` falls inside a window (start inclusive, end exclusive)."""
        i = bisect.bisect_right(self._starts, now_utc) - 1
        return i >= 0 and now_utc < self.windows[i][1]

    def next_start(self, now_utc: float) -> float | None:
        """Start of the first window beginning after ``now_utc``, or None if there is none."""
        i = bisect.bisect_right(self._starts, now_utc)
        return self._starts[i] if i < len(self._starts) else None


@dataclass(frozen=True)
class Station:
    """A ground station on the spherical Earth."""

    name: str
    lat_deg: float
    lon_deg: float

    def __post_init__(self) -> None:
        if not (math.isfinite(self.lat_deg) and -90.0 <= self.lat_deg <= 90.0):
            raise ValueError(f"station {self.name!r}: lat_deg must be in -90..90, got {self.lat_deg!r}")
        if not math.isfinite(self.lon_deg):
            raise ValueError(f"station {self.name!r}: lon_deg must be finite, got {self.lon_deg!r}")


def central_angle_rad(lat1_deg: float, lon1_deg: float, lat2_deg: float, lon2_deg: float) -> float:
    """Great-circle angle between two points (haversine: well conditioned for small angles)."""
    phi1, phi2 = math.radians(lat1_deg), math.radians(lat2_deg)
    dphi = phi2 - phi1
    dlmb = math.radians(lon2_deg - lon1_deg)
    a = math.sin(dphi / 2) ** 2 + math.cos(phi1) * math.cos(phi2) * math.sin(dlmb / 2) ** 2
    a = min(1.0, max(0.0, a))
    return 2.0 * math.atan2(math.sqrt(a), math.sqrt(1.0 - a))


def elevation_deg(station: Station, position: tuple[float, float], altitude_km: float) -> float:
    """Elevation of the spacecraft above the station's horizon, in degrees (negative: below it)."""
    gamma = central_angle_rad(station.lat_deg, station.lon_deg, position[0], position[1])
    ratio = EARTH_RADIUS_KM / (EARTH_RADIUS_KM + altitude_km)
    return math.degrees(math.atan2(math.cos(gamma) - ratio, math.sin(gamma)))


class GroundStations:
    """In contact while any station sees the spacecraft above its elevation mask."""

    def __init__(self, stations: list[Station], altitude_km: float, min_elevation_deg: float = 10.0) -> None:
        if not stations:
            raise ValueError("at least one station is needed")
        if not (math.isfinite(altitude_km) and altitude_km > 0):
            raise ValueError(f"altitude_km must be a finite number > 0, got {altitude_km!r}")
        if not (math.isfinite(min_elevation_deg) and -90.0 <= min_elevation_deg < 90.0):
            raise ValueError(f"min_elevation_deg must be in -90..90 (exclusive), got {min_elevation_deg!r}")
        self.stations = list(stations)
        self.altitude_km = float(altitude_km)
        self.min_elevation_deg = float(min_elevation_deg)

    def visible(self, position: tuple[float, float] | None) -> list[str]:
        """Names of the stations that see the spacecraft at ``position`` (none if the position is unknown)."""
        if position is None:
            return []
        return [s.name for s in self.stations if elevation_deg(s, position, self.altitude_km) >= self.min_elevation_deg]

    def in_contact(self, now_utc: float, position: tuple[float, float] | None) -> bool:
        """True if any station sees the spacecraft; False when the position is unknown."""
        if position is None:
            return False
        return any(elevation_deg(s, position, self.altitude_km) >= self.min_elevation_deg for s in self.stations)


# ---------------------------------------------------------------------- configuration

_MODES = ("always", "never", "after_tc", "windows", "stations")
_KEYS = ("mode", "hold_s", "windows", "stations", "altitude_km", "min_elevation_deg")
_STATION_KEYS = ("name", "lat_deg", "lon_deg")


def from_config(table: Mapping[str, Any], where: str = "contact") -> Contact:
    """Build a contact policy from a target's config table; errors name the offending key (``where.key``).

    Keys that belong to another mode are accepted (so a target can switch mode with one line).
    """
    if not isinstance(table, Mapping):
        raise ValueError(f"{where}: expected a table, got {type(table).__name__}")
    for key in table:
        if key not in _KEYS:
            raise ValueError(f"{where}.{key}: unknown key (expected one of {', '.join(_KEYS)})")
    if "mode" not in table:
        raise ValueError(f"{where}.mode: missing (one of {', '.join(_MODES)})")
    mode = table["mode"]
    if mode not in _MODES:
        raise ValueError(f"{where}.mode: unknown mode {mode!r} (expected one of {', '.join(_MODES)})")
    if mode == "always":
        return Always()
    if mode == "never":
        return Never()
    if mode == "after_tc":
        hold = _number(table, "hold_s", where, default=600.0)
        if hold < 0:
            raise ValueError(f"{where}.hold_s: must be >= 0, got {hold!r}")
        return AfterTelecommand(hold)
    if mode == "windows":
        return Windows(_windows(table, where))
    stations = _stations(table, where)
    altitude = _number(table, "altitude_km", where)
    if altitude <= 0:
        raise ValueError(f"{where}.altitude_km: must be > 0, got {altitude!r}")
    mask = _number(table, "min_elevation_deg", where, default=10.0)
    if not -90.0 <= mask < 90.0:
        raise ValueError(f"{where}.min_elevation_deg: must be in -90..90 (exclusive), got {mask!r}")
    return GroundStations(stations, altitude, mask)


def _is_number(value: Any) -> bool:
    """An int or float (not a bool), finite."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _number(table: Mapping[str, Any], key: str, where: str, default: float | None = None) -> float:
    """A finite number under ``key``, or ``default``; a missing key without default is an error."""
    if key not in table:
        if default is None:
            raise ValueError(f"{where}.{key}: missing")
        return default
    value = table[key]
    if not _is_number(value):
        raise ValueError(f"{where}.{key}: expected a number, got {value!r}")
    return float(value)


def _windows(table: Mapping[str, Any], where: str) -> list[tuple[float, float]]:
    """The ``windows`` list of [start, end] pairs, each checked."""
    raw = table.get("windows")
    if raw is None:
        raise ValueError(f"{where}.windows: missing (a list of [start_utc, end_utc])")
    if isinstance(raw, (str, bytes)) or not isinstance(raw, (list, tuple)):
        raise ValueError(f"{where}.windows: expected a list of [start_utc, end_utc], got {raw!r}")
    out: list[tuple[float, float]] = []
    for i, pair in enumerate(raw):
        if not isinstance(pair, (list, tuple)) or len(pair) != 2 or not all(_is_number(v) for v in pair):
            raise ValueError(f"{where}.windows[{i}]: expected [start_utc, end_utc], got {pair!r}")
        start, end = float(pair[0]), float(pair[1])
        if start >= end:
            raise ValueError(f"{where}.windows[{i}]: start must be before end, got {pair!r}")
        out.append((start, end))
    return out


def _stations(table: Mapping[str, Any], where: str) -> list[Station]:
    """The ``stations`` list of {name, lat_deg, lon_deg} tables, each checked."""
    raw = table.get("stations")
    if raw is None:
        raise ValueError(f"{where}.stations: missing (a list of {{name, lat_deg, lon_deg}})")
    if not isinstance(raw, (list, tuple)) or not raw:
        raise ValueError(f"{where}.stations: expected a non-empty list of {{name, lat_deg, lon_deg}}, got {raw!r}")
    out: list[Station] = []
    for i, entry in enumerate(raw):
        at = f"{where}.stations[{i}]"
        if not isinstance(entry, Mapping):
            raise ValueError(f"{at}: expected a table {{name, lat_deg, lon_deg}}, got {entry!r}")
        for key in entry:
            if key not in _STATION_KEYS:
                raise ValueError(f"{at}.{key}: unknown key (expected one of {', '.join(_STATION_KEYS)})")
        name = entry.get("name")
        if not isinstance(name, str) or not name:
            raise ValueError(f"{at}.name: expected a non-empty string, got {name!r}")
        lat = _number(entry, "lat_deg", at)
        if not -90.0 <= lat <= 90.0:
            raise ValueError(f"{at}.lat_deg: must be in -90..90, got {lat!r}")
        lon = _number(entry, "lon_deg", at)
        out.append(Station(name, lat, lon))
    return out
