"""Raspberry Pi 4 and 5: Linux readings plus firmware throttling, PMIC rails and hotplug limits."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from hal.backends.linux.board import LinuxBoard
from hal.backends.linux.topology import read_topology
from hal.backends.rpi.model import pi_generation
from hal.backends.rpi.throttle import (
    get_throttled_path,
    parse_sysfs_throttled,
    read_under_voltage,
    rpi_volt_hwmon,
)
from hal.backends.rpi.vcgencmd import (
    parse_measure_temp,
    parse_measure_volts,
    parse_pmic_read_adc,
    parse_throttled,
)
from hal.config import Key, choice, string
from hal.errors import HalConfigError, HalParseError
from hal.fs import Fs, Probe
from hal.types import BoardIdentity, BoardReading, Extra, ThrottleFlags

#: bcm2835_wdt: WDOG_TICKS_TO_SECS(0xfffff) = 15 s.
BCM2835_WDT_MAX_S = 15.0


class RpiBoard(LinuxBoard):
    """A Raspberry Pi; ``model`` is detected from the device tree or forced with hal.model."""

    BACKEND = "rpi"
    SCHEMA = (
        *LinuxBoard.SCHEMA,
        Key("model", choice("auto", "pi4", "pi5"), "auto", "board generation", "str"),
        Key("vcgencmd", lambda k, v: _cmd(k, v), "vcgencmd", "vcgencmd binary", "str"),
    )
    WATCHDOG_MAX_S = BCM2835_WDT_MAX_S

    def __init__(self, settings: Mapping[str, Any], fs: Fs) -> None:
        super().__init__(settings, fs)
        self.generation = self._generation()
        self.identity = self._identity_with_generation()
        self._extras: dict[str, Extra] = {}

    def _generation(self) -> str:
        forced = self.settings.get("model", "auto")
        if forced != "auto":
            return str(forced)
        return pi_generation(self.device_tree_model() or "") or "pi4"

    def _identity_with_generation(self) -> BoardIdentity:
        hotplug = self.generation == "pi5"
        return replace(
            self.identity,
            hotplug=hotplug,
            watchdog_max_s=min(self.identity.watchdog_max_s or 15.0, BCM2835_WDT_MAX_S),
            details={"generation": self.generation},
        )

    def _vc(self, probe: Probe, *args: str) -> tuple[str | None, float | None]:
        cmd = str(self.settings.get("vcgencmd") or "vcgencmd")
        return self.command(probe, [cmd, *args], f"vcgencmd.{args[0]}")

    def read(self) -> BoardReading:
        self._extras = {}  # sources and ages found by read_throttle/read_rails, reported by read_extras
        return super().read()

    def read_throttle(self, probe: Probe) -> ThrottleFlags | None:
        """sysfs ``get_throttled`` where the kernel has it, else ``vcgencmd`` (cached); ``rpi_volt`` adds
        under-voltage."""
        hwmon = rpi_volt_hwmon(probe)
        under = read_under_voltage(probe, hwmon) if hwmon is not None else None
        flags: ThrottleFlags | None = None
        path = get_throttled_path(probe)
        if path is not None:
            text = probe.text(path, "throttle.sysfs")
            try:
                flags = parse_sysfs_throttled(text) if text is not None else None
            except HalParseError:
                probe.miss("throttle.sysfs")
            if flags is not None:
                self._extras.update(throttle_source="sysfs get_throttled", throttle_age_s=0.0)
        if flags is None:
            out, age = self._vc(probe, "get_throttled")
            if out is not None:
                try:
                    flags = parse_throttled(out)
                    self._extras.update(throttle_source="vcgencmd get_throttled", throttle_age_s=age)
                except HalParseError:
                    probe.miss("throttle")
        if flags is None and under is not None:
            self._extras.update(throttle_source="rpi_volt in0_lcrit_alarm (under-voltage only)", throttle_age_s=0.0)
            return ThrottleFlags.from_bits(0x10001 if under else 0)
        if flags is not None and under:
            flags = ThrottleFlags.from_bits(flags.raw | 0x10001)
        return flags

    def read_rails(self, probe: Probe) -> dict[str, float]:
        rails = super().read_rails(probe)
        if self.generation != "pi5":
            return rails  # Pi 4 has no power telemetry (add an INA2xx on hwmon)
        out, age = self._vc(probe, "pmic_read_adc")
        if out is None:
            return rails
        try:
            pmic = parse_pmic_read_adc(out)
        except HalParseError:
            probe.miss("rails.pmic")
            return rails
        rails.update(pmic.rails_mw)
        self._extras["rails_age_s"] = age
        return rails

    def read_extras(self, probe: Probe) -> dict[str, Extra]:
        extras: dict[str, Extra] = dict(self._extras)
        temp, temp_age = self._vc(probe, "measure_temp")
        volts, volts_age = self._vc(probe, "measure_volts", "core")
        try:
            extras["vc_temp_c"] = parse_measure_temp(temp) if temp is not None else None
        except HalParseError:
            extras["vc_temp_c"] = None
            probe.miss("vc_temp_c")
        try:
            extras["core_volts"] = parse_measure_volts(volts) if volts is not None else None
        except HalParseError:
            extras["core_volts"] = None
            probe.miss("core_volts")
        extras["vc_temp_c_age_s"] = temp_age
        extras["core_volts_age_s"] = volts_age
        return extras

    def can_offline(self, core_id: int, *, online: bool = False) -> tuple[bool, str]:
        self._check_core(core_id)
        if self.generation == "pi4":
            return False, "Raspberry Pi 4 has no CPU hotplug (no PSCI); use affinity or cpusets"
        if core_id == 0:
            return False, "cpu0 cannot be taken offline on ARM"
        if online:
            topo = read_topology(Probe(self.fs))
            if core_id not in topo.online:
                return False, (
                    "Raspberry Pi 5 cannot bring a core back online without a cold boot "
                    "(psci: failed to boot CPU (-22))"
                )
            return True, ""
        ok, reason = super().can_offline(core_id, online=online)
        if not ok:
            return ok, reason
        return True, "warning: on a Pi 5 this core will not come back online until a cold boot"


def _cmd(key: str, value: Any) -> str:
    text = string(key, value)
    if any(ch.isspace() for ch in text):
        raise HalConfigError(key, f"expected a single command path, got {value!r}")
    return text
