"""The generic Linux board; the Pi and Jetson boards extend it with their own sources."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

from hal.backends.linux.commands import CommandCache
from hal.backends.linux.cpufreq import Policy, read_policies
from hal.backends.linux.cpus import CpuAccess, cpu_access
from hal.backends.linux.edac import read_edac
from hal.backends.linux.hwmon import read_hwmon_power
from hal.backends.linux.procstat import LoadTracker, parse_proc_stat
from hal.backends.linux.thermal import read_zones
from hal.backends.linux.topology import CPU_DIR, read_topology, static_core_ids
from hal.board import Board
from hal.config import COMMON, Key, string, validate
from hal.errors import HalConfigError, HalError, HalUnsupported
from hal.fs import Fs, Probe, Runner, default_runner
from hal.types import (
    BoardIdentity,
    BoardReading,
    CoreReading,
    EdacCounts,
    Extra,
    ThermalZone,
    ThrottleFlags,
    WatchdogInfo,
)
from hal.watchdog import DeviceWatchdog, Watchdog
from hal.watchdog import read_info as read_watchdog_sysfs

T = TypeVar("T")


class LinuxBoard(Board):
    """Any Linux machine: topology, /proc/stat load, cpufreq, thermal zones, EDAC, hwmon power."""

    BACKEND = "linux"
    SCHEMA: tuple[Key, ...] = (
        *COMMON,
        Key("watchdog_device", lambda k, v: _path(k, v), "/dev/watchdog", "watchdog device", "str"),
    )
    #: Thermal zone types that are not measurements and are left out of readings.
    SKIP_ZONES: tuple[str, ...] = ()
    #: Upper bound of the watchdog timeout when sysfs does not say (None = unknown).
    WATCHDOG_MAX_S: float | None = None

    def __init__(self, settings: Mapping[str, Any], fs: Fs) -> None:
        self.settings = dict(settings)
        self.fs = fs
        self._load = LoadTracker()
        #: Board commands run off the caller's thread; read() takes their last answer.
        first_wait_s = min(0.5, float(settings.get("command_timeout_s", 2.0)))
        self.commands = CommandCache(fs.runner, refresh_s=1.0, first_wait_s=first_wait_s)
        #: Checks write access to a sysfs path (``os.access``); tests swap it to model a read-only /sys.
        self.access: Callable[[Path, int], bool] = os.access
        present = static_core_ids(fs)
        self.cpus: CpuAccess = cpu_access(fs, present, read_topology(Probe(fs)).online or present)
        self._core_ids = self.cpus.usable
        self.identity = self._identity()

    @classmethod
    def from_config(cls, config: Mapping[str, Any], runner: Runner | None = None) -> LinuxBoard:
        """Validate the [hal] table for this backend and open the board."""
        settings = validate(config, cls.SCHEMA)
        fs = Fs(settings["root"], runner or default_runner(settings["command_timeout_s"]))
        return cls(settings, fs)

    # ---- identity -------------------------------------------------------------------------
    def device_tree_model(self) -> str | None:
        """The device-tree model string (ARM boards), if any."""
        return self.fs.read_text("/proc/device-tree/model") or self.fs.read_text("/sys/firmware/devicetree/base/model")

    def _identity(self) -> BoardIdentity:
        model = (
            self.device_tree_model() or self.fs.read_text("/sys/devices/virtual/dmi/id/product_name") or "generic Linux"
        )
        hotplug = any(self.fs.exists(f"{CPU_DIR}/cpu{c}/online") for c in self._core_ids)
        return BoardIdentity(
            backend=self.BACKEND,
            model=model,
            cores=len(self._core_ids),
            hotplug=hotplug,
            watchdog_max_s=self._watchdog_max(),
        )

    # ---- cores ----------------------------------------------------------------------------
    def core_ids(self) -> list[int]:
        return list(self._core_ids)

    def host_cpus(self, core_id: int) -> frozenset[int]:
        self._check_core(core_id)
        return frozenset({core_id})

    def _check_core(self, core_id: int) -> None:
        if core_id in self.cpus.excluded:
            raise HalError(f"cpu{core_id} is not usable by this process: {self.cpus.excluded[core_id]}")
        if core_id not in self._core_ids:
            raise HalError(f"no core {core_id} on this board (cores: {self._core_ids})")

    # ---- reading --------------------------------------------------------------------------
    def command(self, probe: Probe, argv: Sequence[str], name: str) -> tuple[str | None, float | None]:
        """A board command's last stdout from the background cache and its age in s; gaps are recorded.

        ``pending.<name>`` is missing while the command has not answered yet, ``<name>`` when it failed.
        """
        result = self.commands.get(argv)
        if result.pending:
            probe.miss(f"pending.{name}")
        elif result.stdout is None:
            probe.miss(name)
        return result.stdout, (round(result.age_s, 3) if result.age_s is not None else None)

    def read(self) -> BoardReading:
        probe = Probe(self.fs)
        no_cores: list[CoreReading] = []
        no_zones: list[ThermalZone] = []
        no_rails: dict[str, float] = {}
        no_extras: dict[str, Extra] = {}
        cores = _guard(probe, "cores", lambda: self.read_cores(probe), no_cores)
        zones = _guard(probe, "zones", lambda: self.read_zones(probe), no_zones)
        throttle = _guard(probe, "throttle", lambda: self.read_throttle(probe), None)
        rails = _guard(probe, "rails", lambda: self.read_rails(probe), no_rails)
        edac = _guard(probe, "edac", lambda: self.read_edac(probe), None)
        wd = _guard(probe, "watchdog", lambda: read_watchdog_sysfs(self.fs, self.watchdog_device()), None)
        extras = _guard(probe, "extras", lambda: self.read_extras(probe), no_extras)
        return BoardReading(
            t_mono_ns=time.monotonic_ns(),
            cores=cores,
            zones=zones,
            throttle=throttle,
            rails_mw=rails,
            edac=edac,
            watchdog=wd,
            missing=probe.missing,
            extras=extras,
        )

    def read_cores(self, probe: Probe) -> list[CoreReading]:
        """Per-core online state, load (delta since the last read), frequency and cluster."""
        topo = read_topology(probe)
        stat_text = probe.text("/proc/stat", "proc_stat")
        loads = self._load.update(parse_proc_stat(stat_text)) if stat_text is not None else {}
        policies = read_policies(probe)
        by_cpu: dict[int, Policy] = {}
        for pol in policies or []:
            for cpu in pol.cpus:
                by_cpu[cpu] = pol
        cores = []
        for cpu in self._core_ids:
            online = cpu in topo.online
            policy = by_cpu.get(cpu)
            cores.append(
                CoreReading(
                    id=cpu,
                    online=online,
                    load_pct=loads.get(cpu) if online else None,
                    freq_mhz=policy.cur_mhz if (policy is not None and online) else None,
                    cluster=policy.cluster if policy is not None else None,
                )
            )
        return cores

    def read_zones(self, probe: Probe) -> list[ThermalZone]:
        """Thermal zones with trip points."""
        return read_zones(probe, self.SKIP_ZONES)

    def read_throttle(self, probe: Probe) -> ThrottleFlags | None:
        """Generic Linux has no throttle flags."""
        return None

    def read_rails(self, probe: Probe) -> dict[str, float]:
        """hwmon power inputs, if any."""
        return read_hwmon_power(probe)

    def read_edac(self, probe: Probe) -> EdacCounts | None:
        """EDAC counters, None where absent."""
        return read_edac(probe)

    def read_extras(self, probe: Probe) -> dict[str, Extra]:
        """Backend-specific values (GPU load, firmware temperature, power mode...)."""
        return {}

    # ---- hotplug --------------------------------------------------------------------------
    def can_offline(self, core_id: int, *, online: bool = False) -> tuple[bool, str]:
        self._check_core(core_id)
        control = f"{CPU_DIR}/cpu{core_id}/online"
        if not self.fs.exists(control):
            return False, f"cpu{core_id} has no 'online' file: the kernel cannot hotplug it"
        if not self.access(self.fs.path(control), os.W_OK):
            return False, f"{control} is not writable by this process (needs root, and /sys mounted read-write)"
        if not online:
            probe = Probe(self.fs)
            topo = read_topology(probe)
            if [c for c in topo.online if c != core_id] == []:
                return False, f"cpu{core_id} is the last online core"
        return True, ""

    def set_core_online(self, core_id: int, online: bool) -> None:
        ok, reason = self.can_offline(core_id, online=online)
        if not ok:
            raise HalUnsupported(reason)
        try:
            self.fs.write_text(f"{CPU_DIR}/cpu{core_id}/online", "1" if online else "0")
        except OSError as exc:
            state = "online" if online else "offline"
            raise HalError(f"cannot set cpu{core_id} {state}: {exc.strerror or exc}") from exc

    # ---- watchdog -------------------------------------------------------------------------
    def watchdog_device(self) -> str:
        """The configured watchdog device (``hal.watchdog_device``)."""
        return str(self.settings.get("watchdog_device") or "/dev/watchdog")

    def _watchdog_max(self) -> float | None:
        info = read_watchdog_sysfs(self.fs, self.watchdog_device())
        if info is not None and info.max_timeout_s:
            return info.max_timeout_s
        return self.WATCHDOG_MAX_S

    def watchdog_info(self) -> WatchdogInfo | None:
        return read_watchdog_sysfs(self.fs, self.watchdog_device())

    def watchdog(self, device: str | None = None) -> Watchdog:
        path = device or self.watchdog_device()
        return DeviceWatchdog(str(self.fs.path(path)), max_timeout_s=self._watchdog_max())


def _path(key: str, value: Any) -> str:
    text = string(key, value)
    if not text.startswith("/"):
        raise HalConfigError(key, f"expected an absolute path, got {value!r}")
    return text


def _guard(probe: Probe, name: str, fn: Callable[[], T], default: T) -> T:
    """Run one section of a read; an unexpected error marks the section missing, never raises."""
    try:
        return fn()
    except Exception:  # a reading must never take the kernel down
        probe.miss(name)
        return default
