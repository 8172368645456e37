"""The simulator's [hal] keys, their defaults, and the radhard/cots profiles."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from hal.backends.sim.edac import edac_code
from hal.config import (
    COMMON,
    Key,
    any_float,
    boolean,
    choice,
    cpu_list,
    fraction,
    non_negative_float,
    non_negative_int,
    positive_float,
    positive_int,
    string,
    validate,
)
from hal.errors import HalConfigError

COTS_SEFI_PER_DAY = 1e-2
"""SEFIs (a hang that needs a reset) of a COTS SoC running Linux, per device per orbit-average LEO day: one
per 100 device-days. An assumption, not a measurement. Basis: in proton tests of COTS SoCs, Linux hangs and
crashes are the main failure mode (Memon et al., "Where Linux Breaks Under Radiation", arXiv:2503.03722:
133 Linux failures on a Pi Zero 2 W, an i.MX 8M Plus and a soft core; the 14 nm part about 10x fewer).
A rough cross-section x fluence product (assumed ~1e-9 cm^2 per board, ~1e6 trapped protons/cm^2/day at
550 km) gives ~1e-3 per day before heavy ions and non-ECC DRAM, so 1e-2 is a deliberately pessimistic round
figure. Set ``hal.sefi_rate_per_day`` from your part's test data (cross-section x orbit fluence)."""

#: Values that differ by profile; an explicit key always wins.
PROFILES: dict[str, dict[str, float | str]] = {
    # rad-hard SEFI: 1.5e-6 per device-day (SpaceCube PPC405, hal-readings S23), one per ~1,800 years.
    # EDAC: the GR740's SDRAM has Reed-Solomon EDAC (hal-readings S12); COTS boards at best SECDED.
    "radhard": {"seu_rate_per_bit_day": 1e-10, "sel_rate_per_day": 0.0, "sefi_rate_per_day": 1.5e-6, "edac_code": "rs"},
    "cots": {
        "seu_rate_per_bit_day": 2e-7,
        "sel_rate_per_day": 1 / 300,
        "sefi_rate_per_day": COTS_SEFI_PER_DAY,
        "edac_code": "secded",
    },
}

SIM_KEYS: tuple[Key, ...] = (
    *COMMON,
    Key("profile", choice(*PROFILES), "radhard", "radhard (default) or cots rates", "str"),
    Key("seed", non_negative_int, 0, "seed of every random stream", "int"),
    Key("time_scale", non_negative_float, 1.0, "sim s per wall s at read(); 0 = manual", "float"),
    Key("step_s", positive_float, 10.0, "integration grid (s of sim time)", "float"),
    Key("cores", positive_int, 4, "number of virtual cores", "int"),
    Key("host_cpus", cpu_list, None, "host CPUs; virtual i -> host_cpus[i % n]", "list[int]"),
    Key("freq_mhz", positive_float, 250.0, "core clock", "float"),
    Key("load_source", choice("host", "sim"), "host", "core load from host CPUs or set_load", "str"),
    Key("memory_bits", positive_int, 2**31, "bits under EDAC (256 MiB)", "int"),
    Key("word_bits", positive_int, 32, "data bits per EDAC word", "int"),
    Key("seu_rate_per_bit_day", non_negative_float, None, "SEU rate (profile)", "float"),
    Key("double_bit_fraction", fraction, 0.012, "share of SEUs hitting 2 bits of a word", "float"),
    Key("saa_multiplier", positive_float, 20.0, "SEU/SEFI rate factor inside the SAA", "float"),
    Key(
        "edac_code",
        choice("rs", "secded"),
        None,
        "memory EDAC code: rs (interleaved Reed-Solomon, corrects "
        "one symbol per codeword; radhard) or secded (one bit per word; cots)",
        "str",
    ),
    Key("edac_symbol_bits", positive_int, 4, "Reed-Solomon symbol size in bits", "int"),
    Key("edac_interleave", positive_int, 2, "Reed-Solomon codewords interleaved symbol-wise in a word", "int"),
    Key(
        "scrub_period_s",
        positive_float,
        60.0,
        "EDAC scrub period: upsets show in the counters at the next scrub",
        "float",
    ),
    Key(
        "sefi_rate_per_day",
        non_negative_float,
        None,
        "SEFI per device per day (profile: radhard 1.5e-6, cots 1e-2)",
        "float",
    ),
    Key("sel_rate_per_day", non_negative_float, None, "SEL per device per day (profile)", "float"),
    Key("sel_min_ma", non_negative_float, 50.0, "smallest latch-up current step", "float"),
    Key("sel_max_ma", non_negative_float, 500.0, "largest latch-up current step", "float"),
    Key("limiter_margin_ma", positive_float, 150.0, "current above load-expected that trips", "float"),
    Key("limiter_trip_ms", non_negative_float, 50.0, "time over the margin before tripping", "float"),
    Key("bus_voltage_v", positive_float, 3.3, "supply voltage (current = P / V)", "float"),
    Key("core_active_w", non_negative_float, 0.25, "power of a fully busy core", "float"),
    Key("core_gated_w", non_negative_float, 0.05, "power of an idle/offline core", "float"),
    Key("uncore_w", non_negative_float, 0.5, "uncore power", "float"),
    Key("sdram_w", non_negative_float, 0.3, "SDRAM power", "float"),
    Key("altitude_km", positive_float, 550.0, "circular orbit altitude", "float"),
    Key("inclination_deg", any_float, 55.0, "orbit inclination", "float"),
    Key("beta_deg", any_float, 0.0, "sun angle above the orbit plane", "float"),
    Key("radiator_area_m2", positive_float, 0.006, "radiator area", "float"),
    Key("emissivity", fraction, 0.85, "radiator emissivity", "float"),
    Key("absorptivity", fraction, 0.2, "radiator solar absorptivity", "float"),
    Key("solar_view_factor", fraction, 0.25, "projected radiator area seen by the sun", "float"),
    Key("earth_view_factor", fraction, 0.3, "radiator view factor to Earth", "float"),
    Key("c_junction_j_k", positive_float, 10.0, "junction heat capacity", "float"),
    Key("r_jr_k_w", positive_float, 2.0, "junction-radiator resistance", "float"),
    Key("c_radiator_j_k", positive_float, 45.0, "radiator heat capacity", "float"),
    Key("initial_temp_c", any_float, 20.0, "both nodes at t=0", "float"),
    Key("trip_passive_c", any_float, 95.0, "junction zone passive trip", "float"),
    Key("trip_critical_c", any_float, 110.0, "junction zone critical trip", "float"),
    Key("watchdog_max_s", positive_float, 60.0, "longest watchdog timeout", "float"),
    Key(
        "work_dir",
        string,
        "",
        "where the simulated sysfs tree is created when `root` is not set "
        "(flightos passes its runtime directory; default: the system temp directory)",
        "str",
    ),
    Key(
        "resume",
        boolean,
        False,
        "carry the board's persistent state (watchdog resets) over from the "
        "last run instead of starting fresh (`flightos run --resume`)",
        "bool",
    ),
)


def sim_settings(config: Mapping[str, Any]) -> dict[str, Any]:
    """Validate a sim [hal] table and fill profile and host defaults."""
    out = validate(config, SIM_KEYS)
    for key, value in PROFILES[out["profile"]].items():
        if out[key] is None:
            out[key] = value
    if out["host_cpus"] is None:
        out["host_cpus"] = sorted(os.sched_getaffinity(0))
    if out["sel_max_ma"] < out["sel_min_ma"]:
        raise HalConfigError("sel_max_ma", "must be >= sel_min_ma")
    if out["trip_critical_c"] < out["trip_passive_c"]:
        raise HalConfigError("trip_critical_c", "must be >= trip_passive_c")
    if out["memory_bits"] < out["word_bits"]:
        raise HalConfigError("memory_bits", "must hold at least one word")
    edac_code(out["edac_code"], out["word_bits"], out["edac_symbol_bits"], out["edac_interleave"])
    return out
