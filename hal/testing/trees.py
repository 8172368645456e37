"""Builders of recorded sysfs/procfs trees (generic Linux, Pi 4, Pi 5, Orin Nano, Nano) for tests and benchmarks."""

from __future__ import annotations

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


def policy(root: Path, n: int, related: str, khz: int) -> None:
    """One cpufreq policy."""
    base = f"/sys/devices/system/cpu/cpufreq/policy{n}"
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


def _pi_common(root: Path, model: str, khz: int) -> None:
    write(root, "/proc/device-tree/model", model + "\x00")
    write(root, "/proc/stat", proc_stat({c: (100 * c, 1000) for c in range(4)}))
    policy(root, 0, "0 1 2 3", khz)
    write(root, "/sys/class/watchdog/watchdog0/identity", "Broadcom BCM2835 Watchdog timer\n")
    write(root, "/sys/class/watchdog/watchdog0/timeout", "15\n")
    write(root, "/sys/class/watchdog/watchdog0/max_timeout", "15\n")
    write(root, "/dev/watchdog", "")


def build_pi4(root: Path) -> Path:
    """Raspberry Pi 4: no cpuN/online files (no PSCI), one policy, cpu-thermal with one trip."""
    _pi_common(root, "Raspberry Pi 4 Model B Rev 1.4", 1_500_000)
    cpus(root, "0-3", "0-3", hotplug=[])
    zone(root, 0, "cpu-thermal", 39_500, [("critical", 110_000)])
    return root


def build_pi5(root: Path) -> Path:
    """Raspberry Pi 5: hotplug files on cpu1-3, fan trip points at 50/60/67.5/75 C."""
    _pi_common(root, "Raspberry Pi 5 Model B Rev 1.0", 2_400_000)
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


def build_orin_nano(root: Path, *, jetpack: int = 6) -> Path:
    """Orin Nano 8GB: 6 cores in 2 clusters, cpu4-5 offline, CV zones off, INA3221 hwmon, GPU."""
    write(root, "/proc/device-tree/model", "NVIDIA Jetson Orin Nano Developer Kit\x00")
    release = "R36 (release), REVISION: 4.3" if jetpack == 6 else "R35 (release), REVISION: 4.1"
    write(root, "/etc/nv_tegra_release", f"# {release}, GCID: 1, BOARD: generic, EABI: aarch64\n")
    cpus(root, "0-5", "0-3", hotplug=[1, 2, 3, 4, 5])
    policy(root, 0, "0 1 2 3", 729_600)
    policy(root, 4, "4 5", 729_600)
    write(root, "/proc/stat", proc_stat({c: (10 * c, 1000) for c in range(4)}))
    vt = "/sys/devices/virtual/thermal"
    cpu_trips = [("passive", 99_000), ("critical", 104_500)]
    zone(root, 0, "cpu-thermal", 44_125, cpu_trips, base=vt)
    zone(root, 1, "gpu-thermal", 44_531, cpu_trips, base=vt)
    zone(root, 2, "cv0-thermal", None, base=vt)
    zone(root, 3, "cv1-thermal", -256_000, base=vt)
    zone(root, 4, "soc0-thermal", 42_125, base=vt)
    zone(root, 5, "tj-thermal", 44_531, cpu_trips, base=vt)
    hw = "/sys/bus/i2c/drivers/ina3221/1-0040/hwmon/hwmon3"
    for i, (label, mv, ma) in enumerate(
        [("VDD_IN", 5048, 585), ("VDD_CPU_GPU_CV", 5032, 96), ("VDD_SOC", 5040, 201)], start=1
    ):
        write(root, f"{hw}/in{i}_label", label + "\n")
        write(root, f"{hw}/in{i}_input", f"{mv}\n")
        write(root, f"{hw}/curr{i}_input", f"{ma}\n")
    write(root, f"{hw}/in7_label", "sum of shunt voltages\n")
    write(root, f"{hw}/in7_input", "40\n")
    write(root, f"{hw}/curr7_input", "900\n")
    gpu = "17000000.gpu" if jetpack == 6 else "17000000.ga10b"
    write(root, f"/sys/devices/platform/bus@0/{gpu}/load", "123\n")
    write(root, f"/sys/class/devfreq/{gpu}/cur_freq", "305000000\n")
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
    write(root, "/sys/devices/gpu.0/load", "0\n")
    write(root, "/sys/class/devfreq/57000000.gpu/cur_freq", "76800000\n")
    return root


NANO_OUTPUTS: dict[tuple[str, ...], str] = {("nvpmodel", "-q"): "NV Power Mode: MAXN\n0\n"}
