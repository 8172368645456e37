"""Board detection and the probe report, on the recorded Pi 4, Pi 5, Orin Nano, Nano and generic trees."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import hal
import hal.backends.sim
from hal.backends.linux.board import LinuxBoard
from hal.backends.rpi.model import pi_generation
from hal.probe import jetson_family, parse_tegra_release
from hal.testing.trees import (
    NANO_OUTPUTS,
    ORIN_OUTPUTS,
    PI_OUTPUTS_PI4,
    PI_OUTPUTS_PI5,
    RecordedRunner,
    build_agx_orin,
    build_generic,
    build_nano,
    build_orin_nano,
    build_pi4,
    build_pi5,
    build_xavier_nx,
    cgroup,
    proc_stat,
    write,
)

TREES: dict[str, tuple[Callable[[Path], Path], Mapping[tuple[str, ...], str], str, str, int | None]] = {
    "pi4": (build_pi4, PI_OUTPUTS_PI4, "rpi", "pi4", None),
    "pi5": (build_pi5, PI_OUTPUTS_PI5, "rpi", "pi5", None),
    "orin-nano": (build_orin_nano, ORIN_OUTPUTS, "jetson", "orin-nano", 6),
    "nano": (build_nano, NANO_OUTPUTS, "jetson", "nano", 4),
    "agx-orin": (build_agx_orin, {}, "jetson", "agx-orin", 6),
    "xavier-nx": (build_xavier_nx, NANO_OUTPUTS, "jetson", "xavier-nx", 5),
    "generic": (build_generic, {}, "linux", "", None),
}


def report_of(name: str, tmp_path: Path, **kwargs: Any) -> hal.ProbeReport:
    """Detect a recorded tree, open it as the kernel would, and probe it without sleeping."""
    build, outputs, *_ = TREES[name]
    detection = hal.detect(str(build(tmp_path)))
    board = hal.open_board(detection.hal_config(), runner=RecordedRunner(outputs))
    kwargs.setdefault("settle_s", 0)
    return hal.probe_report(board, detection=detection, **kwargs)


def missing(report: hal.ProbeReport) -> dict[str, str]:
    return {m.field: m.reason for m in report.missing}


# ---- detection -------------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(TREES))
def test_detect_picks_the_backend_of_each_recorded_board(name: str, tmp_path: Path) -> None:
    """Each recorded tree is detected as its backend and variant, and its hal_config opens it."""
    build, outputs, backend, variant, jetpack = TREES[name]
    root = build(tmp_path)
    d = hal.detect(str(root))
    assert (d.backend, d.variant, d.jetpack) == (backend, variant, jetpack)
    assert d.evidence and d.model
    board = hal.open_board(d.hal_config(), runner=RecordedRunner(outputs))
    assert board.identity.backend == backend
    if backend == "rpi":
        assert d.hal_config()["model"] == variant and board.identity.details["generation"] == variant
    if backend == "jetson":
        assert board.identity.details["jetpack"] == str(jetpack)
    json.dumps(d.to_dict())


def test_models_and_release_lines() -> None:
    """Model strings map to generations/families; release lines to L4T and JetPack."""
    assert pi_generation("Raspberry Pi 4 Model B Rev 1.4") == "pi4"
    assert pi_generation("Raspberry Pi 5 Model B Rev 1.0") == "pi5"
    assert pi_generation("Raspberry Pi Compute Module 4 Rev 1.0") == "pi4"
    assert pi_generation("Raspberry Pi 3 Model B Plus Rev 1.3") is None
    assert jetson_family("NVIDIA Jetson Orin Nano Developer Kit") == "orin-nano"
    assert jetson_family("NVIDIA Jetson Nano Developer Kit") == "nano"
    assert jetson_family("NVIDIA Jetson AGX Orin Developer Kit") == "agx-orin"
    assert parse_tegra_release("# R36 (release), REVISION: 3.0, GCID: 36191598, BOARD: generic") == ("36.3.0", 6)
    assert parse_tegra_release("# R32 (release), REVISION: 7.1, GCID: 1") == ("32.7.1", 4)
    assert parse_tegra_release("# R35 (release), REVISION: 4.1") == ("35.4.1", 5)
    assert parse_tegra_release("# R99 (release)") == ("99", None)
    assert parse_tegra_release("hello") is None


def test_sysfs_model_path_and_release_file_alone(tmp_path: Path) -> None:
    """The /sys/firmware model path works; nv_tegra_release alone makes a Jetson."""
    pi = tmp_path / "pi"
    write(pi, "/sys/firmware/devicetree/base/model", "Raspberry Pi 5 Model B Rev 1.0\x00")
    d = hal.detect(str(pi))
    assert (d.backend, d.variant) == ("rpi", "pi5")
    jet = tmp_path / "jet"
    write(jet, "/etc/nv_tegra_release", "# R36 (release), REVISION: 3.0, GCID: 1, BOARD: generic\n")
    d = hal.detect(str(jet))
    assert (d.backend, d.jetpack, d.l4t) == ("jetson", 6, "36.3.0")
    assert d.hal_config() == {"backend": "jetson", "root": str(jet), "jetpack": "6"}


def test_older_pi_uses_pi4_behaviour_and_dpkg_gives_jetpack(tmp_path: Path) -> None:
    """A Pi 3 is an rpi board with Pi 4 behaviour; a Jetson without the release file asks dpkg."""
    pi3 = tmp_path / "pi3"
    write(pi3, "/proc/device-tree/model", "Raspberry Pi 3 Model B Plus Rev 1.3\x00")
    d = hal.detect(str(pi3))
    assert (d.backend, d.variant) == ("rpi", "pi4")
    assert any("Pi 4 behaviour" in e for e in d.evidence)
    jet = tmp_path / "jet"
    write(jet, "/proc/device-tree/model", "NVIDIA Jetson Orin Nano Developer Kit\x00")
    argv = ("dpkg-query", "--show", "--showformat=${Version}", "nvidia-l4t-core")
    d = hal.detect(str(jet), runner=RecordedRunner({argv: "35.5.0-20240219203809"}))
    assert (d.backend, d.variant, d.jetpack, d.l4t) == ("jetson", "orin-nano", 5, "35.5.0")
    d = hal.detect(str(jet))  # a recorded root runs no command by default
    assert d.jetpack is None and d.hal_config() == {"backend": "jetson", "root": str(jet)}


def test_missing_and_garbage_files_fall_back_to_linux(tmp_path: Path) -> None:
    """No files, a directory instead of a file, binary junk: linux, never an exception."""
    assert hal.detect(str(tmp_path / "nothing")).backend == "linux"
    (tmp_path / "dir/proc/device-tree/model").mkdir(parents=True)
    (tmp_path / "dir/etc/nv_tegra_release").mkdir(parents=True)
    assert hal.detect(str(tmp_path / "dir")).backend == "linux"
    junk = tmp_path / "junk"
    (junk / "proc/device-tree").mkdir(parents=True)
    (junk / "proc/device-tree/model").write_bytes(b"\xff\xfe\x00\x81garbage\x00")
    (junk / "etc").mkdir()
    (junk / "etc/nv_tegra_release").write_bytes(b"\x00\x00# Rxx (release)")
    d = hal.detect(str(junk))
    assert d.backend == "linux" and d.evidence


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None)
@given(model=st.binary(max_size=80), release=st.binary(max_size=80))
def test_detect_never_raises(tmp_path: Path, model: bytes, release: bytes) -> None:
    """Whatever bytes the model and release files hold, detect returns a known backend."""
    (tmp_path / "proc/device-tree").mkdir(parents=True, exist_ok=True)
    (tmp_path / "etc").mkdir(exist_ok=True)
    (tmp_path / "proc/device-tree/model").write_bytes(model)
    (tmp_path / "etc/nv_tegra_release").write_bytes(release)
    assert hal.detect(str(tmp_path)).backend in ("linux", "rpi", "jetson")


# ---- probe report ----------------------------------------------------------------------------
def test_pi4_report(tmp_path: Path) -> None:
    """Pi 4: throttle decoded, no rails (with the reason), no hotplug, 15 s bcm2835 watchdog."""
    r = report_of("pi4", tmp_path)
    m = missing(r)
    assert m["rails"] == "Pi 4 has no power telemetry (add an INA2xx on hwmon)"
    assert "no CPU hotplug" in m["hotplug"]
    assert "edac" in m and "cpuset" in m
    assert r.reading.throttle is not None and r.throttle_now == [] and r.throttle_sticky == []
    assert not any(h.can_offline for h in r.hotplug)
    assert r.watchdog.identity == "Broadcom BCM2835 Watchdog timer" and r.watchdog.max_timeout_s == 15.0
    assert r.watchdog.present and (tmp_path / "dev/watchdog").read_text() == ""  # never opened
    text = "\n".join(r.lines())
    assert "rails: Pi 4 has no power telemetry" in text and "cpu-thermal: 39.5 C (critical 110 C)" in text


def test_pi5_report(tmp_path: Path) -> None:
    """Pi 5: PMIC rails, throttle names now and sticky, cpu1-3 can go offline but not cpu0."""
    r = report_of("pi5", tmp_path)
    m = missing(r)
    assert "rails" not in m and "throttle" not in m and "hotplug" not in m
    assert r.reading.rails_mw["VDD_CORE"] > 4000
    assert r.throttle_now == ["under-voltage", "throttled"]
    assert r.throttle_sticky == ["under-voltage", "throttled"]
    by_core = {h.core: h for h in r.hotplug}
    assert not by_core[0].can_offline and by_core[1].can_offline
    assert "cold boot" in by_core[1].offline_reason
    assert [t.temp_c for t in r.reading.zones[0].trips] == [110.0, 50.0, 60.0, 67.5, 75.0]
    assert any(line.startswith("throttle: 0x50005 now: under-voltage, throttled") for line in r.lines())


def test_orin_nano_report(tmp_path: Path) -> None:
    """Orin Nano: INA3221 rails, soctherm_oc flags, cpu4-5 offline (cluster unknown for cpu5), GPU extras."""
    r = report_of("orin-nano", tmp_path)
    m = missing(r)
    assert "throttle" not in m and r.reading.throttle is not None and r.throttle_now == []
    assert not any(k.startswith("zone.") for k in m)
    assert set(r.reading.rails_mw) == {"VDD_IN", "VDD_CPU_GPU_CV", "VDD_SOC"}
    assert [c.online for c in r.reading.cores] == [True] * 4 + [False] * 2
    assert [c.cluster for c in r.reading.cores] == [0] * 4 + [4, None]
    assert "EBUSY" in m["cpu5.cluster"]
    assert r.reading.extras["nvpmodel"] == "15W" and r.reading.extras["gpu_load_pct"] == 12.3
    assert r.reading.extras["under_voltage_events"] == 0
    assert "watchdog.device" in m and "watchdog.info" in m
    assert r.detection is not None and r.detection.jetpack == 6


def test_agx_orin_powered_off_zones(tmp_path: Path) -> None:
    """AGX Orin: CV0-2 and GPU zones powered off are named once each; NC INA3221 channels are not rails."""
    r = report_of("agx-orin", tmp_path)
    m = missing(r)
    assert {"zone.cv0-thermal", "zone.cv1-thermal", "zone.cv2-thermal", "zone.gpu-thermal"} <= set(m)
    assert not any(k.startswith("zone.cv0-thermal.") for k in m)  # no duplicate of the same gap
    assert set(r.reading.rails_mw) == {"VDD_GPU_SOC", "VDD_CPU_CV", "VIN_SYS_5V0", "VDDQ_VDD2_1V8AO"}
    assert [c.cluster for c in r.reading.cores] == [0] * 4 + [4] * 4 + [8] * 4


def test_xavier_has_no_throttle_flags_and_says_why(tmp_path: Path) -> None:
    """Xavier NX (JetPack 5): gv11b GPU found; no soctherm_oc hwmon, and the probe says what is read where."""
    r = report_of("xavier-nx", tmp_path)
    assert r.reading.extras["gpu_load_pct"] == 37.0
    assert "soctherm_oc" in missing(r)["throttle"]


def test_excluded_cpus_are_named_with_the_reason(tmp_path: Path) -> None:
    """A cpuset of 0-1 on a 4-CPU box: cores are 0-1, and probe names cpu2/cpu3 and the cpuset file."""
    build_pi4(tmp_path)
    cgroup(tmp_path, allowed="0-3", v2_group="/system.slice/flightos.service", effective="0-1")
    board = hal.open_board({"backend": "rpi", "root": str(tmp_path)}, runner=RecordedRunner(PI_OUTPUTS_PI4))
    assert board.core_ids() == [0, 1] and board.identity.cores == 2
    assert [c.id for c in board.read().cores] == [0, 1]
    with pytest.raises(hal.HalError, match="cpu3 is not usable by this process: not in this process's cpuset"):
        board.host_cpus(3)
    r = hal.probe_report(board, settle_s=0)
    m = missing(r)
    assert m["cpu3"].startswith("excluded: not in this process's cpuset (/sys/fs/cgroup/system.slice/")
    assert "cpu2" in m and "cpu1" not in m
    assert "  cpu3: excluded (not in this process's cpuset" in "\n".join(r.lines())
    assert json.loads(json.dumps(r.to_dict()))["excluded_cpus"]["2"].startswith("not in this process's cpuset")


def test_affinity_mask_and_v1_cpuset(tmp_path: Path) -> None:
    """Hybrid cgroups (JetPack 5): a v1 cpuset of 0-2 and an affinity mask of 0,2: only cpu0 and cpu2 remain."""
    build_generic(tmp_path)  # cpu2 is offline there: bring it up for this test
    write(tmp_path, "/sys/devices/system/cpu/online", "0-3\n")
    cgroup(tmp_path, allowed="0,2", v2_group="/", v1_group="/flightos", v1_cpus="0-2")
    board = hal.open_board({"backend": "linux", "root": str(tmp_path)})
    assert isinstance(board, LinuxBoard)
    assert board.core_ids() == [0, 2]
    assert "affinity mask" in board.cpus.excluded[1]
    assert "cpuset" in board.cpus.excluded[3] and board.cpus.cpuset is not None
    assert board.cpus.cpuset.path == "/sys/fs/cgroup/cpuset/flightos/cpuset.effective_cpus"


def test_offline_cpu_stays_unless_the_configured_cpuset_leaves_it_out(tmp_path: Path) -> None:
    """An offline CPU is in no effective set; it stays a (offline) core unless the configured cpuset excludes it."""
    build_orin_nano(tmp_path)
    cgroup(tmp_path, allowed="0-3", v2_group="/flightos", effective="0-3")
    assert hal.open_board({"backend": "jetson", "root": str(tmp_path)}).core_ids() == [0, 1, 2, 3, 4, 5]
    write(tmp_path, "/sys/fs/cgroup/flightos/cpuset.cpus", "0-4\n")
    board = hal.open_board({"backend": "jetson", "root": str(tmp_path)})
    assert isinstance(board, LinuxBoard)
    assert board.core_ids() == [0, 1, 2, 3, 4] and "configured cpuset" in board.cpus.excluded[5]


def test_cores_on_this_machine_are_affinity_and_cpuset() -> None:
    """On the real host, the linux board's cores are sched_getaffinity(0) ∩ the cgroup's effective cpuset."""
    import os

    board = hal.open_board({"backend": "linux"})
    assert isinstance(board, LinuxBoard)
    allowed = set(os.sched_getaffinity(0))
    if board.cpus.cpuset is not None:
        allowed &= board.cpus.cpuset.effective
    assert set(board.core_ids()) == allowed or not allowed


def test_read_only_online_file_is_not_offline_yes(tmp_path: Path) -> None:
    """cpuN/online exists but is not writable (a read-only /sys, or not root): probe says offline no, and why."""
    board = hal.open_board({"backend": "linux", "root": str(build_generic(tmp_path))})
    assert isinstance(board, LinuxBoard)
    assert board.can_offline(1)[0]
    board.access = lambda path, mode: False  # what os.access answers for a non-root user or a read-only mount
    ok, reason = board.can_offline(1)
    assert not ok and "not writable" in reason
    r = hal.probe_report(board, settle_s=0)
    assert not any(h.can_offline for h in r.hotplug)
    by_core = {h.core: h for h in r.hotplug}
    assert "not writable" in by_core[1].offline_reason and "hotplug" in missing(r)
    assert any(
        line.startswith("  cpu1: offline no (/sys/devices/system/cpu/cpu1/online is not writable") for line in r.lines()
    )
    with pytest.raises(hal.HalUnsupported, match="not writable"):
        board.set_core_online(1, False)


def test_nano_report(tmp_path: Path) -> None:
    """Nano: iio rails, PMIC-Die left out, JetPack 4."""
    r = report_of("nano", tmp_path)
    assert r.reading.rails_mw["POM_5V_IN"] == 4520.0
    assert "PMIC-Die" not in [z.name for z in r.reading.zones]
    assert r.identity.details == {"jetpack": "4"}
    assert "rails" not in missing(r)


def test_generic_report_and_json(tmp_path: Path) -> None:
    """Generic: EDAC and hwmon power, no throttle flags; to_dict is JSON; lines end with MISSING."""
    r = report_of("generic", tmp_path)
    m = missing(r)
    assert m["throttle"] == "generic Linux has no throttle flags"
    assert r.reading.edac == hal.EdacCounts(4, 1) and r.reading.rails_mw == {"PSU": 45250.0}
    assert "cpu2.load_pct" not in m  # offline cores have no load by design
    data = json.loads(json.dumps(r.to_dict()))
    assert data["identity"]["backend"] == "linux" and data["edac"] == {"corrected": 4, "uncorrected": 1}
    assert {"field": "throttle", "reason": "generic Linux has no throttle flags"} in data["missing"]
    lines = r.lines()
    assert lines[0] == "board: Test Server (backend linux, 4 cores)"
    assert "MISSING:" in lines


def test_settle_reads_twice_so_load_is_known(tmp_path: Path) -> None:
    """settle_s=0 reads once (load unknown, said why); settle_s>0 reads again after sleep()."""
    once = report_of("generic", tmp_path / "a")
    assert once.reads == 1 and "first read" in missing(once)["cpu0.load_pct"]
    root = tmp_path / "b"
    slept: list[float] = []

    def sleep(seconds: float) -> None:  # the CPUs work while we "sleep"
        slept.append(seconds)
        write(root, "/proc/stat", proc_stat({0: (150, 950), 1: (600, 500), 3: (100, 1000)}))

    twice = report_of("generic", root, settle_s=0.25, sleep=sleep)
    assert slept == [0.25] and twice.reads == 2
    assert [c.load_pct for c in twice.reading.cores] == [50.0, 100.0, None, 100.0]
    assert not any(k.endswith(".load_pct") for k in missing(twice))
    with pytest.raises(hal.HalError):
        report_of("generic", tmp_path / "c", settle_s=-1)


def test_sim_report() -> None:
    """The simulator reports everything; its watchdog is simulated; nothing but cpusets may be missing."""
    board = hal.open_board({"backend": "sim", "time_scale": 0, "load_source": "sim"})
    try:
        assert isinstance(board, hal.backends.sim.SimBoard)
        r = hal.probe_report(board, settle_s=10, sleep=board.step)  # 10 s of sim time between reads
        assert r.reads == 2 and r.reading.extras["sim_time_s"] == 10.0
        assert r.watchdog.device == "simulated" and r.watchdog.max_timeout_s == 60.0
        assert set(missing(r)) <= {"cpuset"}
        assert [h.can_offline for h in r.hotplug] == [False, True, True, True]
        assert r.reading.edac == hal.EdacCounts(0, 0)
        json.dumps(r.to_dict())
    finally:
        board.close()
