"""Builders of recorded sysfs/procfs trees (generic Linux, Pi 4, Pi 5, Orin Nano, Nano) for tests and benchmarks."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

FIXTURES = Path(__file__).parent / "fixtures"


def fixture(name: str) -> str:
    """Text of a verbatim sample from hal/testing/fixtures."""
    return (FIXTURES / name).read_text()


def write(root: Path, rel: str, content: str) -> None:
    """Write one file below root, creating directories."""
    path = root / rel.lstrip("/")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(content)


def symlink(root: Path, rel: str, target_rel: str) -> None:
    """A relative symlink at ``rel`` pointing to ``target_rel`` (both board paths), as sysfs links its class dirs."""
    link = root / rel.lstrip("/")
    link.parent.mkdir(parents=True, exist_ok=True)
    (root / target_rel.lstrip("/")).mkdir(parents=True, exist_ok=True)
    link.symlink_to(os.path.relpath(root / target_rel.lstrip("/"), link.parent))


def unreadable(root: Path, rel: str) -> None:
    """A file whose read fails with an OSError (a directory), like EBUSY/ENODATA from a sysfs attribute."""
    (root / rel.lstrip("/")).mkdir(parents=True, exist_ok=True)


def proc_stat(busy: Mapping[int, tuple[int, int]]) -> str:
    """A /proc/stat with cpuN lines given (busy, idle) jiffies per CPU."""
    lines = ["cpu  0 0 0 0 0 0 0 0 0 0"]
    for cpu, (b, idle) in sorted(busy.items()):
        lines.append(f"cpu{cpu} {b} 0 0 {idle} 0 0 0 0 0 0")
    lines += ["intr 1 0", "ctxt 100", "btime 1700000000"]
    return "\n".join(lines) + "\n"


def cpus(root: Path, possible: str, online: str, hotplug: Sequence[int] = ()) -> None:
    """Topology files plus cpuN/online for the CPUs that can be hotplugged."""
    base = "/sys/devices/system/cpu"
    write(root, f"{base}/possible", possible + "\n")
    write(root, f"{base}/present", possible + "\n")
    write(root, f"{base}/online", online + "\n")
    from hal.backends.linux.topology import format_cpu_list, parse_cpu_list

    off = sorted(set(parse_cpu_list(possible)) - set(parse_cpu_list(online)))
    write(root, f"{base}/offline", format_cpu_list(off) + "\n")
    for cpu in parse_cpu_list(possible):
        (root / f"sys/devices/system/cpu/cpu{cpu}").mkdir(parents=True, exist_ok=True)
        if cpu in hotplug:
            up = cpu in parse_cpu_list(online)
            write(root, f"{base}/cpu{cpu}/online", "1\n" if up else "0\n")


def policy(root: Path, n: int, related: str, khz: int, *, inactive: bool = False) -> None:
    """One cpufreq policy; ``inactive`` (all its CPUs offline): every attribute answers EBUSY."""
    base = f"/sys/devices/system/cpu/cpufreq/policy{n}"
    if inactive:
        for name in ("related_cpus", "affected_cpus", "scaling_cur_freq", "cpuinfo_cur_freq"):
            unreadable(root, f"{base}/{name}")
        return
    write(root, f"{base}/related_cpus", related + "\n")
    write(root, f"{base}/affected_cpus", related + "\n")
    write(root, f"{base}/scaling_cur_freq", f"{khz}\n")


def zone(
    root: Path,
    n: int,
    ztype: str,
    milli: int | None,
    trips: Sequence[tuple[str, int]] = (),
    base: str = "/sys/class/thermal",
) -> None:
    """A thermal zone; milli=None makes the temp read fail (like a powered-off Jetson CV zone)."""
    z = f"{base}/thermal_zone{n}"
    write(root, f"{z}/type", ztype + "\n")
    if milli is None:
        (root / z.lstrip("/") / "temp").mkdir(parents=True)  # reading it raises an OSError
    else:
        write(root, f"{z}/temp", f"{milli}\n")
    for i, (kind, t) in enumerate(trips):
        write(root, f"{z}/trip_point_{i}_type", kind + "\n")
        write(root, f"{z}/trip_point_{i}_temp", f"{t}\n")


def hwmon(root: Path, n: int, device: str, name: str, files: Mapping[str, str | int]) -> str:
    """A hwmon device below ``device`` with ``/sys/class/hwmon/hwmonN`` linked to it, as the kernel lays it out."""
    real = f"{device}/hwmon/hwmon{n}"
    write(root, f"{real}/name", name + "\n")
    for fname, value in files.items():
        write(root, f"{real}/{fname}", f"{value}\n")
    symlink(root, f"/sys/class/hwmon/hwmon{n}", real)
    return real


def cgroup(
    root: Path,
    *,
    allowed: str,
    v2_group: str | None = None,
    effective: str | None = None,
    v1_group: str | None = None,
    v1_cpus: str | None = None,
) -> None:
    """This process's affinity (``/proc/self/status``) and cgroup: v2 ``cpuset.cpus.effective`` or a v1 cpuset."""
    write(root, "/proc/self/status", f"Name:\tpython3\nCpus_allowed:\tf\nCpus_allowed_list:\t{allowed}\n")
    lines, mounts = [], []
    if v1_group is not None:
        lines.append(f"3:cpuset:{v1_group}")
        mounts.append("cgroup /sys/fs/cgroup/cpuset cgroup rw,nosuid,nodev,noexec,relatime,cpuset 0 0")
        base = "/sys/fs/cgroup/cpuset" + v1_group.rstrip("/")
        write(root, f"{base}/cpuset.cpus", f"{v1_cpus}\n")
        write(root, f"{base}/cpuset.effective_cpus", f"{v1_cpus}\n")
    if v2_group is not None:
        lines.append(f"0::{v2_group}")
        point = "/sys/fs/cgroup/unified" if v1_group is not None else "/sys/fs/cgroup"
        mounts.append(f"cgroup2 {point} cgroup2 rw,nosuid,nodev,noexec,relatime 0 0")
        if effective is not None:
            base = point + v2_group.rstrip("/")
            write(root, f"{base}/cpuset.cpus", "\n")  # empty: inherits the parent's
            write(root, f"{base}/cpuset.cpus.effective", f"{effective}\n")
    write(root, "/proc/self/cgroup", "\n".join(lines) + "\n")
    write(root, "/proc/self/mounts", "\n".join(mounts) + "\n")


def build_generic(root: Path, *, edac: bool = True) -> Path:
    """A 4-CPU x86 box: cpu2 offline, two policies, two zones, EDAC, a hwmon power input."""
    write(root, "/sys/devices/virtual/dmi/id/product_name", "Test Server\n")
    cpus(root, "0-3", "0-1,3", hotplug=[1, 2, 3])
    policy(root, 0, "0 1", 2_400_000)
    policy(root, 2, "2 3", 1_800_000)
    write(root, "/proc/stat", proc_stat({0: (100, 900), 1: (500, 500), 3: (0, 1000)}))
    zone(root, 0, "x86_pkg_temp", 45_000, [("passive", 95_000), ("critical", 105_000)])
    zone(root, 1, "acpitz", 27_800, [("critical", 119_000)])
    if edac:
        for mc, (ce, ue) in enumerate([(3, 0), (1, 1)]):
            write(root, f"/sys/devices/system/edac/mc/mc{mc}/ce_count", f"{ce}\n")
            write(root, f"/sys/devices/system/edac/mc/mc{mc}/ue_count", f"{ue}\n")
    write(root, "/sys/class/hwmon/hwmon0/name", "power_meter\n")
    write(root, "/sys/class/hwmon/hwmon0/power1_input", "45250000\n")
    write(root, "/sys/class/hwmon/hwmon0/power1_label", "PSU\n")
    return root


def _pi_common(root: Path, model: str, khz: int, firmware: str) -> None:
    write(root, "/proc/device-tree/model", model + "\x00")
    write(root, "/proc/stat", proc_stat({c: (100 * c, 1000) for c in range(4)}))
    policy(root, 0, "0 1 2 3", khz)
    write(root, "/sys/class/watchdog/watchdog0/identity", "Broadcom BCM2835 Watchdog timer\n")
    write(root, "/sys/class/watchdog/watchdog0/timeout", "15\n")
    write(root, "/sys/class/watchdog/watchdog0/max_timeout", "15\n")
    write(root, "/dev/watchdog", "")
    # raspberrypi-hwmon: polls the firmware every 2 s; in0_lcrit_alarm is its under-voltage alarm.
    hwmon(root, 0, f"{firmware}/raspberrypi-hwmon", "rpi_volt", {"in0_lcrit_alarm": 0})


def build_pi4(root: Path) -> Path:
    """Raspberry Pi 4: no cpuN/online files (no PSCI), one policy, cpu-thermal with one trip."""
    _pi_common(root, "Raspberry Pi 4 Model B Rev 1.4", 1_500_000, "/sys/devices/platform/soc/soc:firmware")
    cpus(root, "0-3", "0-3", hotplug=[])
    zone(root, 0, "cpu-thermal", 39_500, [("critical", 110_000)])
    # The firmware driver's (deprecated) throttle word, hex without 0x.
    write(root, "/sys/devices/platform/soc/soc:firmware/get_throttled", "0\n")
    return root


def build_pi5(root: Path, model: str = "Raspberry Pi 5 Model B Rev 1.0") -> Path:
    """Raspberry Pi 5 (or a CM5): hotplug files on cpu1-3, fan trips at 50/60/67.5/75 C, no sysfs get_throttled."""
    _pi_common(root, model, 2_400_000, "/sys/devices/platform/soc@107c000000/soc@107c000000:firmware")
    cpus(root, "0-3", "0-3", hotplug=[1, 2, 3])
    trips = [
        ("critical", 110_000),
        ("active", 50_000),
        ("active", 60_000),
        ("active", 67_500),
        ("active", 75_000),
    ]
    zone(root, 0, "cpu-thermal", 52_650, trips)
    return root


PI_OUTPUTS_PI5: dict[tuple[str, ...], str] = {
    ("vcgencmd", "get_throttled"): "throttled=0x50005\n",
    ("vcgencmd", "measure_temp"): "temp=39.5'C\n",
    ("vcgencmd", "measure_volts", "core"): "volt=0.7200V\n",
    ("vcgencmd", "pmic_read_adc"): fixture("pi5_pmic_read_adc.txt"),
}

PI_OUTPUTS_PI4: dict[tuple[str, ...], str] = {
    ("vcgencmd", "get_throttled"): "throttled=0x0\n",
    ("vcgencmd", "measure_temp"): "temp=39.5'C\n",
    ("vcgencmd", "measure_volts", "core"): "volt=0.7200V\n",
}


class RecordedRunner:
    """A recorded command runner: known argv -> (0, output, ''); others -> 127 (not found)."""

    def __init__(
        self,
        outputs: Mapping[tuple[str, ...], str],
        errors: Mapping[tuple[str, ...], str] | None = None,
    ) -> None:
        self.outputs = dict(outputs)
        self.errors = dict(errors or {})
        self.calls: list[tuple[str, ...]] = []

    def __call__(self, argv: Sequence[str]) -> tuple[int, str, str]:
        key = tuple(argv)
        self.calls.append(key)
        if key in self.outputs:
            return 0, self.outputs[key], ""
        if key in self.errors:
            return 1, self.errors[key], ""
        return 127, "", f"{argv[0]}: command not found"


def _gpu(root: Path, device: str, node: str, load_permille: int, hz: int) -> None:
    """An integrated GPU as devfreq shows it: class link, ``device`` link, ``of_node/name``, ``load``."""
    devname = device.rsplit("/", 1)[1]
    write(root, f"{device}/load", f"{load_permille}\n")
    unit = devname.split(".", 1)[0]
    dt_node = f"/sys/firmware/devicetree/base/{node}@{unit}"
    write(root, f"{dt_node}/name", node + "\x00")
    symlink(root, f"{device}/of_node", dt_node)
    write(root, f"{device}/devfreq/{devname}/cur_freq", f"{hz}\n")
    symlink(root, f"{device}/devfreq/{devname}/device", device)
    symlink(root, f"/sys/class/devfreq/{devname}", f"{device}/devfreq/{devname}")


def _ina3221(root: Path, device: str, n: int, rails: Sequence[tuple[str, int, int]]) -> None:
    """INA3221 hwmon as the kernel driver lays it out: in1-3 (mV, labelled), curr1-3 (mA), shunts in4-6 (uV),
    the shunt sum in7 and the current sum curr4 (no curr7)."""
    files: dict[str, str | int] = {}
    for i, (label, mv, ma) in enumerate(rails, start=1):
        files.update(
            {
                f"in{i}_label": label,
                f"in{i}_input": mv,
                f"curr{i}_input": ma,
                f"curr{i}_crit": 4984,
                f"curr{i}_max": 4984,
                f"in{i + 3}_input": ma * 5,
            }
        )
    files.update(
        {
            "in7_label": "sum of shunt voltages",
            "in7_input": sum(r[2] for r in rails) * 5,
            "curr4_input": sum(r[2] for r in rails),
            "curr4_crit": 10000,
        }
    )
    real = hwmon(root, n, device, "ina3221", files)
    drv = f"/sys/bus/i2c/drivers/ina3221/{device.rsplit('/', 1)[1]}"
    symlink(root, drv, device)
    assert (root / real.lstrip("/")).is_dir()


def soctherm_oc(root: Path, n: int, counts: tuple[int, int, int] = (0, 0, 0)) -> str:
    """Orin's soctherm_oc hwmon: oc1 (under-voltage), oc2/oc3 (over-current) counters, throttling on."""
    files: dict[str, str | int] = {}
    for i, count in enumerate(counts, start=1):
        files[f"oc{i}_event_cnt"] = count
        files[f"oc{i}_throt_en"] = 1
    return hwmon(root, n, "/sys/devices/platform/soctherm-oc-event", "soctherm_oc", files)


def build_orin_nano(root: Path, *, jetpack: int = 6, nvpmodel_files: bool = True) -> Path:
    """Orin Nano 8GB in its 7W-like state: 6 cores in 2 clusters, cpu4-5 offline (policy4 inactive),
    cpu/gpu/soc/tj zones (no CV engines on a Nano), INA3221, soctherm_oc, GPU through devfreq."""
    write(root, "/proc/device-tree/model", "NVIDIA Jetson Orin Nano Developer Kit\x00")
    release = "R36 (release), REVISION: 4.3" if jetpack == 6 else "R35 (release), REVISION: 4.1"
    write(root, "/etc/nv_tegra_release", f"# {release}, GCID: 1, BOARD: generic, EABI: aarch64\n")
    cpus(root, "0-5", "0-3", hotplug=[1, 2, 3, 4, 5])
    policy(root, 0, "0 1 2 3", 729_600)
    policy(root, 4, "4 5", 729_600, inactive=True)
    write(root, "/proc/stat", proc_stat({c: (10 * c, 1000) for c in range(4)}))
    vt = "/sys/devices/virtual/thermal"
    cpu_trips = [("passive", 99_000), ("critical", 104_500)]
    zone(root, 0, "cpu-thermal", 44_125, cpu_trips, base=vt)
    zone(root, 1, "gpu-thermal", 44_531, cpu_trips, base=vt)
    zone(root, 2, "soc0-thermal", 42_125, base=vt)
    zone(root, 3, "soc1-thermal", 43_156, base=vt)
    zone(root, 4, "soc2-thermal", 43_375, base=vt)
    zone(root, 5, "tj-thermal", 44_531, cpu_trips, base=vt)
    rails = [("VDD_IN", 5048, 585), ("VDD_CPU_GPU_CV", 5032, 96), ("VDD_SOC", 5040, 201)]
    _ina3221(root, "/sys/devices/platform/bus@0/c240000.i2c/i2c-1/1-0040", 1, rails)
    soctherm_oc(root, 3)
    if jetpack == 6:
        _gpu(root, "/sys/devices/platform/bus@0/17000000.gpu", "gpu", 123, 305_000_000)
    else:  # JetPack 5: the GPU sits directly under platform and is named after its IP (ga10b)
        _gpu(root, "/sys/devices/platform/17000000.ga10b", "ga10b", 123, 305_000_000)
    if nvpmodel_files:
        write(root, "/var/lib/nvpmodel/status", "pmode:0000 fmode:quiet\n")
        write(
            root,
            "/etc/nvpmodel.conf",
            "< POWER_MODEL ID=0 NAME=15W >\nCPU_ONLINE CORE_0 1\n"
            "< POWER_MODEL ID=1 NAME=7W >\nCPU_ONLINE CORE_4 0\n"
            "< PM_CONFIG DEFAULT=0 >\n",
        )
    return root


def build_agx_orin(root: Path) -> Path:
    """AGX Orin 64GB (JetPack 6): 12 cores in 3 clusters, CV0-2 and the GPU zone powered off (reads fail),
    two INA3221 with NC channels, soctherm_oc, GPU through devfreq (rails and zones as in its tegrastats line)."""
    write(root, "/proc/device-tree/model", "NVIDIA Jetson AGX Orin Developer Kit\x00")
    write(root, "/etc/nv_tegra_release", "# R36 (release), REVISION: 4.3, GCID: 1, BOARD: generic, EABI: aarch64\n")
    cpus(root, "0-11", "0-11", hotplug=list(range(1, 12)))
    for first in (0, 4, 8):
        policy(root, first, " ".join(str(c) for c in range(first, first + 4)), 729_600)
    write(root, "/proc/stat", proc_stat({c: (10 * c, 1000) for c in range(12)}))
    vt = "/sys/devices/virtual/thermal"
    trips = [("passive", 99_000), ("critical", 104_500)]
    zones: list[tuple[str, int | None]] = [
        ("cpu-thermal", 44_562), ("gpu-thermal", None), ("cv0-thermal", None), ("cv1-thermal", None),
        ("cv2-thermal", None), ("soc0-thermal", 41_093), ("soc1-thermal", 41_250), ("soc2-thermal", 40_093),
        ("tj-thermal", 44_343), ("tboard_tegra", 32_000), ("tdiode_tegra", 33_000),
    ]  # fmt: skip
    for n, (ztype, milli) in enumerate(zones):
        zone(root, n, ztype, milli, trips if ztype in ("cpu-thermal", "tj-thermal") else (), base=vt)
    i2c = "/sys/devices/platform/bus@0/c240000.i2c/i2c-1"
    _ina3221(
        root, f"{i2c}/1-0040", 1, [("VDD_GPU_SOC", 5000, 468), ("VDD_CPU_CV", 5000, 78), ("VIN_SYS_5V0", 5000, 805)]
    )
    _ina3221(root, f"{i2c}/1-0041", 2, [("NC", 0, 0), ("VDDQ_VDD2_1V8AO", 5000, 60), ("NC", 0, 0)])
    soctherm_oc(root, 3)
    _gpu(root, "/sys/devices/platform/bus@0/17000000.gpu", "gpu", 0, 0)
    return root


def build_xavier_nx(root: Path) -> Path:
    """Xavier NX (JetPack 5): 6 Carmel cores in 3 clusters, gv11b GPU through devfreq, no soctherm_oc hwmon."""
    write(root, "/proc/device-tree/model", "NVIDIA Jetson Xavier NX Developer Kit\x00")
    write(root, "/etc/nv_tegra_release", "# R35 (release), REVISION: 4.1, GCID: 1, BOARD: t186ref, EABI: aarch64\n")
    cpus(root, "0-5", "0-5", hotplug=[1, 2, 3, 4, 5])
    for first in (0, 2, 4):
        policy(root, first, f"{first} {first + 1}", 1_190_400)
    write(root, "/proc/stat", proc_stat({c: (10 * c, 1000) for c in range(6)}))
    vt = "/sys/devices/virtual/thermal"
    zone(root, 0, "CPU-therm", 45_000, [("passive", 96_000), ("critical", 96_500)], base=vt)
    zone(root, 1, "GPU-therm", 44_000, base=vt)
    zone(root, 2, "PMIC-Die", 100_000, base=vt)
    _gpu(root, "/sys/devices/platform/17000000.gv11b", "gv11b", 370, 1_109_250_000)
    return root


ORIN_OUTPUTS: dict[tuple[str, ...], str] = {("nvpmodel", "-q"): "NV Power Mode: 15W\n0\n"}


def build_nano(root: Path) -> Path:
    """Jetson Nano (JetPack 4): 4 cores, PMIC-Die zone, INA3221x iio rails, gpu.0 load."""
    write(root, "/proc/device-tree/model", "NVIDIA Jetson Nano Developer Kit\x00")
    write(root, "/etc/nv_tegra_release", "# R32 (release), REVISION: 7.1, GCID: 1, BOARD: t210ref\n")
    cpus(root, "0-3", "0-3", hotplug=[1, 2, 3])
    policy(root, 0, "0 1 2 3", 1_036_800)
    write(root, "/proc/stat", proc_stat({c: (10 * c, 1000) for c in range(4)}))
    vt = "/sys/devices/virtual/thermal"
    zone(root, 0, "AO-therm", 65_000, [("critical", 97_000)], base=vt)
    zone(root, 1, "CPU-therm", 60_500, [("passive", 97_000), ("critical", 102_500)], base=vt)
    zone(root, 2, "GPU-therm", 59_000, base=vt)
    zone(root, 3, "PLL-therm", 57_000, base=vt)
    zone(root, 4, "PMIC-Die", 100_000, base=vt)
    zone(root, 5, "thermal-fan-est", 59_750, base=vt)
    iio = "/sys/bus/i2c/drivers/ina3221x/6-0040/iio:device0"
    for i, (name, mw) in enumerate([("POM_5V_IN", 4520), ("POM_5V_GPU", 0), ("POM_5V_CPU", 1078)]):
        write(root, f"{iio}/rail_name_{i}", name + "\n")
        write(root, f"{iio}/in_power{i}_input", f"{mw}\n")
    _gpu(root, "/sys/devices/57000000.gpu", "gpu", 0, 76_800_000)
    return root


NANO_OUTPUTS: dict[tuple[str, ...], str] = {("nvpmodel", "-q"): "NV Power Mode: MAXN\n0\n"}
