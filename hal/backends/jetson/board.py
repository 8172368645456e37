"""NVIDIA Jetson boards: thermal zones without PMIC-Die, INA3221 rails, GPU, nvpmodel, hotplug."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from hal.backends.jetson.gpu import read_gpu
from hal.backends.jetson.nvpmodel import mode_from_files, parse_nvpmodel
from hal.backends.jetson.overcurrent import EVENTS, OcTracker, find_soctherm_oc, read_oc
from hal.backends.jetson.power import read_ina3221_hwmon, read_ina3221_iio
from hal.backends.linux.board import LinuxBoard
from hal.config import Key, choice
from hal.errors import HalParseError
from hal.fs import Fs, Probe
from hal.types import BoardReading, Extra, ThrottleFlags

_L4T = re.compile(r"#\s*R(\d+)")
_L4T_TO_JETPACK = {32: 4, 34: 5, 35: 5, 36: 6}


class JetsonBoard(LinuxBoard):
    """A Jetson; the JetPack generation is read from /etc/nv_tegra_release or set by hal.jetpack."""

    BACKEND = "jetson"
    SCHEMA = (
        *LinuxBoard.SCHEMA,
        Key("jetpack", choice("auto", "4", "5", "6"), "auto", "JetPack generation", "str"),
    )
    SKIP_ZONES = ("PMIC-Die",)

    def __init__(self, settings: Mapping[str, Any], fs: Fs) -> None:
        super().__init__(settings, fs)
        self.jetpack = self._jetpack()
        details = {"jetpack": str(self.jetpack) if self.jetpack else "unknown"}
        self.identity = replace(self.identity, details=details)
        self._oc = OcTracker()
        self._extras: dict[str, Extra] = {}

    def read(self) -> BoardReading:
        self._extras = {}  # event counters found by read_throttle, reported by read_extras
        return super().read()

    def read_throttle(self, probe: Probe) -> ThrottleFlags | None:
        """Orin: the ``soctherm_oc`` event counters as flags (None where the board has no such hwmon)."""
        hwmon = find_soctherm_oc(probe)
        if hwmon is None:
            return None
        oc = read_oc(probe, hwmon)
        if oc is None:
            return None
        for n, count in oc.counts.items():
            self._extras[EVENTS[n][1]] = count
        return self._oc.flags(oc)

    def _jetpack(self) -> int | None:
        forced = self.settings.get("jetpack", "auto")
        if forced != "auto":
            return int(forced)
        release = self.fs.read_text("/etc/nv_tegra_release") or ""
        match = _L4T.search(release)
        if match is not None:
            return _L4T_TO_JETPACK.get(int(match.group(1)))
        if self.fs.glob("/sys/bus/i2c/drivers/ina3221x/*"):
            return 4
        return None

    def read_rails(self, probe: Probe) -> dict[str, float]:
        rails = read_ina3221_hwmon(probe)
        rails.update(read_ina3221_iio(probe))
        if not rails:
            probe.miss("rails")
        return rails

    def read_extras(self, probe: Probe) -> dict[str, Extra]:
        load, mhz = read_gpu(probe)
        extras: dict[str, Extra] = {"gpu_load_pct": load, "gpu_freq_mhz": mhz, **self._extras}
        name: str | None = None
        mode_id: int | None = None
        age: float | None = 0.0
        from_files = mode_from_files(self.fs)
        if from_files is not None:
            name, mode_id = from_files
        else:
            out, age = self.command(probe, ["nvpmodel", "-q"], "nvpmodel")
            if out is not None:
                try:
                    name, mode_id = parse_nvpmodel(out)
                except HalParseError:
                    probe.miss("nvpmodel")
        extras["nvpmodel"] = name
        extras["nvpmodel_id"] = mode_id
        extras["nvpmodel_age_s"] = age if name is not None else None
        return extras

    def can_offline(self, core_id: int, *, online: bool = False) -> tuple[bool, str]:
        self._check_core(core_id)
        if core_id == 0:
            return False, "cpu0 cannot be taken offline on ARM"
        ok, reason = super().can_offline(core_id, online=online)
        if ok and not online:
            reason = "warning: changing the nvpmodel power mode may bring this core back online"
        return ok, reason
