"""Contact policies: bench modes, telecommand hold, pass windows, station visibility, configuration errors."""

from __future__ import annotations

import itertools
import math
from typing import Any

import pytest

from services.ground.contact import (
    EARTH_RADIUS_KM,
    AfterTelecommand,
    Always,
    Contact,
    GroundStations,
    Never,
    Station,
    Windows,
    central_angle_rad,
    elevation_deg,
    from_config,
)

SVALBARD = Station("svalbard", 78.23, 15.39)


def test_always_and_never() -> None:
    assert Always().in_contact(0.0, None)
    assert Always().in_contact(1e9, (10.0, 20.0))
    assert not Never().in_contact(0.0, None)
    assert not Never().in_contact(1e9, (10.0, 20.0))


def test_after_telecommand_holds_contact_for_hold_s() -> None:
    """No contact until a TC is heard; then contact for hold_s seconds after the latest one."""
    c = AfterTelecommand()
    assert c.hold_s == 600.0
    assert not c.in_contact(1000.0, None)
    c.heard(1000.0)
    assert c.in_contact(1000.0, None)
    assert c.in_contact(1600.0, None)
    assert not c.in_contact(1600.5, None)
    c.heard(1590.0)  # ground talks again: the hold restarts
    assert c.in_contact(2190.0, None)
    assert not c.in_contact(2191.0, None)
    assert c.in_contact(1500.0, None)  # clock stepped back: ground was heard "in the future", still talking
    short = AfterTelecommand(hold_s=5)
    short.heard(0.0)
    assert short.in_contact(5.0, None) and not short.in_contact(5.1, None)
    with pytest.raises(ValueError):
        AfterTelecommand(hold_s=-1)


def test_windows_half_open_and_merged() -> None:
    """Inside a window (start inclusive, end exclusive); unsorted and overlapping windows are fine."""
    w = Windows([(500.0, 600.0), (100.0, 200.0), (150.0, 250.0)])
    assert w.windows == [(100.0, 250.0), (500.0, 600.0)]
    assert not w.in_contact(99.9, None)
    assert w.in_contact(100.0, None)
    assert w.in_contact(220.0, None)
    assert not w.in_contact(250.0, None)
    assert not w.in_contact(400.0, None)
    assert w.in_contact(599.9, None)
    assert not w.in_contact(600.0, None)
    assert w.next_start(0.0) == 100.0
    assert w.next_start(100.0) == 500.0
    assert w.next_start(600.0) is None
    assert not Windows([]).in_contact(0.0, None)
    with pytest.raises(ValueError, match="window 1"):
        Windows([(0.0, 1.0), (5.0, 5.0)])


def test_elevation_directly_overhead_is_90() -> None:
    assert elevation_deg(SVALBARD, (SVALBARD.lat_deg, SVALBARD.lon_deg), 550.0) == pytest.approx(90.0)


def test_thirty_degrees_of_arc_away_at_550_km_is_below_the_horizon() -> None:
    """At 550 km the horizon lies about 23 degrees of arc away: 30 degrees is out of sight."""
    station = Station("equator", 0.0, 0.0)
    assert elevation_deg(station, (0.0, 30.0), 550.0) < 0
    assert elevation_deg(station, (30.0, 0.0), 550.0) < 0
    horizon = math.degrees(math.acos(EARTH_RADIUS_KM / (EARTH_RADIUS_KM + 550.0)))
    assert horizon == pytest.approx(23.0, abs=0.5)
    assert elevation_deg(station, (horizon, 0.0), 550.0) == pytest.approx(0.0, abs=1e-9)
    assert not GroundStations([station], 550.0, min_elevation_deg=0.0).in_contact(0.0, (0.0, 30.0))


def test_elevation_falls_as_the_arc_grows() -> None:
    station = Station("s", 0.0, 0.0)
    elevations = [elevation_deg(station, (0.0, float(d)), 550.0) for d in range(0, 31)]
    assert all(a > b for a, b in itertools.pairwise(elevations))


def test_central_angle() -> None:
    assert central_angle_rad(0, 0, 0, 90) == pytest.approx(math.pi / 2)
    assert central_angle_rad(90, 0, -90, 0) == pytest.approx(math.pi)
    assert central_angle_rad(10, 170, 10, -190) == pytest.approx(0.0, abs=1e-9)  # same point, longitude wrapped
    assert central_angle_rad(0, 179.5, 0, -179.5) == pytest.approx(math.radians(1.0))  # across the antimeridian


def test_a_station_at_78_north_sees_a_550_km_polar_pass_near_it() -> None:
    """A pass along a meridian close to Svalbard: in contact near the station, not far south of it."""
    stations = GroundStations([SVALBARD], altitude_km=550.0)
    track = [(float(lat), 25.0) for lat in range(40, 90)]
    seen = [lat for lat, lon in track if stations.in_contact(0.0, (lat, lon))]
    assert seen  # the pass is visible
    assert min(seen) > 60 and 78 in seen  # only the part of the track near the station
    assert stations.visible((78.0, 25.0)) == ["svalbard"]
    assert stations.visible((40.0, 25.0)) == []
    assert not stations.in_contact(0.0, (-78.0, 15.0))  # the other pole


def test_the_elevation_mask_decides() -> None:
    """A point about 15 degrees above the horizon is in contact with a 10-degree mask, not with a 20-degree one."""
    station = Station("s", 0.0, 0.0)
    point = (0.0, 12.0)
    elevation = elevation_deg(station, point, 550.0)
    assert 10.0 < elevation < 20.0
    assert GroundStations([station], 550.0, 10.0).in_contact(0.0, point)
    assert not GroundStations([station], 550.0, 20.0).in_contact(0.0, point)


def test_stations_any_of_several_and_unknown_position() -> None:
    stations = GroundStations(
        [SVALBARD, Station("kiruna", 67.86, 20.96), Station("hartebeesthoek", -25.89, 27.69)], altitude_km=550.0
    )
    assert stations.visible((-25.0, 28.0)) == ["hartebeesthoek"]
    assert set(stations.visible((72.0, 18.0))) == {"svalbard", "kiruna"}
    assert not stations.in_contact(0.0, (0.0, -120.0))  # over the Pacific
    assert not stations.in_contact(0.0, None)  # position unknown: assume no contact
    assert stations.visible(None) == []


def test_station_and_ground_station_arguments_are_checked() -> None:
    with pytest.raises(ValueError, match="lat_deg"):
        Station("bad", 91.0, 0.0)
    with pytest.raises(ValueError, match="station"):
        GroundStations([], 550.0)
    with pytest.raises(ValueError, match="altitude_km"):
        GroundStations([SVALBARD], 0.0)
    with pytest.raises(ValueError, match="min_elevation_deg"):
        GroundStations([SVALBARD], 550.0, 90.0)


# ---------------------------------------------------------------------- configuration


def test_from_config_builds_each_mode() -> None:
    assert isinstance(from_config({"mode": "always"}), Always)
    assert isinstance(from_config({"mode": "never"}), Never)
    after = from_config({"mode": "after_tc"})
    assert isinstance(after, AfterTelecommand) and after.hold_s == 600.0
    after = from_config({"mode": "after_tc", "hold_s": 30})
    assert isinstance(after, AfterTelecommand) and after.hold_s == 30.0
    windows = from_config({"mode": "windows", "windows": [[10, 20], [30.5, 40]]})
    assert isinstance(windows, Windows) and windows.in_contact(35.0, None) and not windows.in_contact(25.0, None)
    stations = from_config(
        {
            "mode": "stations",
            "stations": [{"name": "svalbard", "lat_deg": 78.23, "lon_deg": 15.39}],
            "altitude_km": 550,
            "min_elevation_deg": 5,
        }
    )
    assert isinstance(stations, GroundStations)
    assert (stations.stations, stations.altitude_km, stations.min_elevation_deg) == ([SVALBARD], 550.0, 5.0)
    default_mask = from_config(
        {"mode": "stations", "stations": [{"name": "s", "lat_deg": 0, "lon_deg": 0}], "altitude_km": 550}
    )
    assert isinstance(default_mask, GroundStations) and default_mask.min_elevation_deg == 10.0


def test_from_config_accepts_keys_of_other_modes() -> None:
    """Switching mode is one line: the other modes' settings may stay in the table."""
    c: Contact = from_config({"mode": "always", "hold_s": 60, "windows": [[0, 1]], "altitude_km": 550})
    assert isinstance(c, Always)


@pytest.mark.parametrize(
    ("table", "key"),
    [
        ({}, "contact.mode"),
        ({"mode": "sometimes"}, "contact.mode"),
        ({"mode": 1}, "contact.mode"),
        ({"mode": "always", "frobnicate": 1}, "contact.frobnicate"),
        ({"mode": "after_tc", "hold_s": "long"}, "contact.hold_s"),
        ({"mode": "after_tc", "hold_s": -5}, "contact.hold_s"),
        ({"mode": "after_tc", "hold_s": True}, "contact.hold_s"),
        ({"mode": "windows"}, "contact.windows"),
        ({"mode": "windows", "windows": "0-10"}, "contact.windows"),
        ({"mode": "windows", "windows": [[0, 10], [5]]}, r"contact.windows\[1\]"),
        ({"mode": "windows", "windows": [[20, 10]]}, r"contact.windows\[0\]"),
        ({"mode": "windows", "windows": [[0, math.nan]]}, r"contact.windows\[0\]"),
        ({"mode": "stations", "altitude_km": 550}, "contact.stations"),
        ({"mode": "stations", "stations": [], "altitude_km": 550}, "contact.stations"),
        ({"mode": "stations", "stations": ["svalbard"], "altitude_km": 550}, r"contact.stations\[0\]"),
        (
            {"mode": "stations", "stations": [{"name": "s", "lon_deg": 0}], "altitude_km": 550},
            r"contact.stations\[0\].lat_deg",
        ),
        (
            {"mode": "stations", "stations": [{"name": "s", "lat_deg": 95, "lon_deg": 0}], "altitude_km": 550},
            r"contact.stations\[0\].lat_deg",
        ),
        (
            {"mode": "stations", "stations": [{"lat_deg": 0, "lon_deg": 0}], "altitude_km": 550},
            r"contact.stations\[0\].name",
        ),
        (
            {"mode": "stations", "stations": [{"name": "s", "lat_deg": 0, "lon_deg": 0, "alt": 1}], "altitude_km": 550},
            r"contact.stations\[0\].alt",
        ),
        ({"mode": "stations", "stations": [{"name": "s", "lat_deg": 0, "lon_deg": 0}]}, "contact.altitude_km"),
        (
            {"mode": "stations", "stations": [{"name": "s", "lat_deg": 0, "lon_deg": 0}], "altitude_km": -1},
            "contact.altitude_km",
        ),
        (
            {
                "mode": "stations",
                "stations": [{"name": "s", "lat_deg": 0, "lon_deg": 0}],
                "altitude_km": 550,
                "min_elevation_deg": 90,
            },
            "contact.min_elevation_deg",
        ),
    ],
)
def test_from_config_errors_name_the_key(table: dict[str, Any], key: str) -> None:
    with pytest.raises(ValueError, match=rf"^{key}: "):
        from_config(table)


def test_from_config_prefix_can_name_the_enclosing_table() -> None:
    with pytest.raises(ValueError, match=r"^ground\.contact\.mode: "):
        from_config({"mode": "sometimes"}, where="ground.contact")
