"""Two-node thermal model: a junction coupled to a radiator that radiates to deep space."""

from __future__ import annotations

import math
from dataclasses import dataclass

SIGMA = 5.670374e-8  # Stefan-Boltzmann, W/m^2/K^4
T_SINK_K = 3.0
SOLAR_W_M2 = 1361.0
EARTH_IR_W_M2 = 237.0
ALBEDO = 0.3
KELVIN = 273.15


@dataclass(frozen=True)
class ThermalParams:
    """Node capacities, coupling and radiator optics (hal-readings §5)."""

    c_junction_j_k: float = 10.0
    r_jr_k_w: float = 2.0
    c_radiator_j_k: float = 45.0
    radiator_area_m2: float = 0.006
    emissivity: float = 0.85
    absorptivity: float = 0.2
    solar_view_factor: float = 0.25
    earth_view_factor: float = 0.3

    def q_ext_w(self, sunlit: bool) -> float:
        """Absorbed external heat: Earth IR always; solar and albedo only in sunlight."""
        area = self.radiator_area_m2
        q = EARTH_IR_W_M2 * self.emissivity * area * self.earth_view_factor
        if sunlit:
            q += SOLAR_W_M2 * self.absorptivity * area * self.solar_view_factor
            q += SOLAR_W_M2 * ALBEDO * self.absorptivity * area * self.earth_view_factor
        return q

    def emitted_w(self, t_rad_k: float) -> float:
        """Heat the radiator sends to space."""
        return self.emissivity * SIGMA * self.radiator_area_m2 * (t_rad_k**4 - T_SINK_K**4)


def equilibrium(params: ThermalParams, power_w: float, q_ext_w: float) -> tuple[float, float]:
    """Analytic steady state (junction K, radiator K): e*sigma*A*(Tr^4 - Ts^4) = P + Q; Tj = Tr + P*R."""
    total = power_w + q_ext_w
    t_rad = (total / (params.emissivity * SIGMA * params.radiator_area_m2) + T_SINK_K**4) ** 0.25
    return t_rad + power_w * params.r_jr_k_w, t_rad


class ThermalModel:
    """Integrates the two nodes; stable at any step (exact junction, linearised implicit radiator)."""

    def __init__(self, params: ThermalParams, initial_c: float = 20.0) -> None:
        self.params = params
        self.t_junction_k = initial_c + KELVIN
        self.t_radiator_k = initial_c + KELVIN

    def step(self, dt_s: float, power_w: float, q_ext_w: float) -> None:
        """Advance by dt with constant chip power and external heat."""
        p = self.params
        remaining = dt_s
        while remaining > 0:
            h = min(remaining, 600.0)  # exact junction + implicit radiator: stable at any h
            remaining -= h
            # Junction: exact exponential relaxation towards Tr + P·R (time constant C_j·R).
            target = self.t_radiator_k + power_w * p.r_jr_k_w
            decay = math.exp(-h / (p.c_junction_j_k * p.r_jr_k_w))
            self.t_junction_k = target + (self.t_junction_k - target) * decay
            # Radiator: backward Euler linearised around the current temperature.
            tr = self.t_radiator_k
            flow = (self.t_junction_k - tr) / p.r_jr_k_w + q_ext_w - p.emitted_w(tr)
            conductance = 4 * p.emissivity * SIGMA * p.radiator_area_m2 * tr**3 + 1 / p.r_jr_k_w
            self.t_radiator_k = tr + h * flow / (p.c_radiator_j_k + h * conductance)

    def bump(self, delta_c: float) -> None:
        """An instantaneous junction temperature step."""
        self.t_junction_k += delta_c

    @property
    def junction_c(self) -> float:
        """Junction temperature, °C."""
        return self.t_junction_k - KELVIN

    @property
    def radiator_c(self) -> float:
        """Radiator temperature, °C."""
        return self.t_radiator_k - KELVIN
