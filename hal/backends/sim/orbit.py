"""A circular LEO orbit: sun/eclipse from a cylindrical shadow, ground track and the SAA box."""

from __future__ import annotations

import math
from dataclasses import dataclass

MU_EARTH = 3.986004418e14  # m^3/s^2
R_EARTH = 6_371_000.0  # m
OMEGA_EARTH = 7.2921159e-5  # rad/s
#: South Atlantic Anomaly box (hal-readings §4): lon -90..+40, lat -50..0 degrees.
SAA_LON = (-90.0, 40.0)
SAA_LAT = (-50.0, 0.0)


@dataclass(frozen=True)
class Orbit:
    """Circular orbit of given altitude, inclination and beta angle (sun above the orbit plane)."""

    altitude_km: float = 550.0
    inclination_deg: float = 55.0
    beta_deg: float = 0.0
    lon0_deg: float = 0.0

    @property
    def radius_m(self) -> float:
        """Orbit radius."""
        return R_EARTH + self.altitude_km * 1000.0

    @property
    def period_s(self) -> float:
        """Orbital period."""
        return 2 * math.pi * math.sqrt(self.radius_m**3 / MU_EARTH)

    def _u(self, t_s: float) -> float:
        """Argument of latitude (0 at the ascending node, which is also the subsolar point)."""
        return 2 * math.pi * ((t_s / self.period_s) % 1.0)

    def in_eclipse(self, t_s: float) -> bool:
        """True when the Earth's cylindrical shadow covers the spacecraft."""
        cb = math.cos(math.radians(self.beta_deg)) * math.cos(self._u(t_s))
        return cb < 0 and (1.0 - cb * cb) < (R_EARTH / self.radius_m) ** 2

    def eclipse_fraction(self, samples: int = 3600) -> float:
        """Fraction of the orbit spent in eclipse (numerically)."""
        period = self.period_s
        return sum(self.in_eclipse(period * i / samples) for i in range(samples)) / samples

    def ground_track(self, t_s: float) -> tuple[float, float]:
        """(latitude, longitude) in degrees under the spacecraft."""
        u = self._u(t_s)
        inc = math.radians(self.inclination_deg)
        lat = math.degrees(math.asin(math.sin(inc) * math.sin(u)))
        lon = math.degrees(math.atan2(math.cos(inc) * math.sin(u), math.cos(u)))
        lon += self.lon0_deg - math.degrees(OMEGA_EARTH * t_s)
        lon = (lon + 180.0) % 360.0 - 180.0
        return lat, lon

    def in_saa(self, t_s: float) -> bool:
        """True inside the South Atlantic Anomaly box."""
        lat, lon = self.ground_track(t_s)
        return SAA_LAT[0] <= lat <= SAA_LAT[1] and SAA_LON[0] <= lon <= SAA_LON[1]

    def saa_fraction(self, sample_s: float = 10.0, duration_s: float = 86400.0) -> float:
        """Share of time inside the SAA box, sampled every ``sample_s`` over ``duration_s`` from t = 0."""
        samples = max(1, int(duration_s // sample_s))
        return sum(self.in_saa(i * sample_s) for i in range(samples)) / samples
