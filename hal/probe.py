"""Which board is this (``detect``), and everything the HAL can and cannot read on it (``probe_report``)."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from hal.backends.rpi.model import pi_generation
from hal.board import Board
from hal.cpuset import CpusetSupport
from hal.cpuset import probe as cpuset_probe
from hal.errors import HalError
from hal.fs import Fs, Runner, default_runner
from hal.health import BoardHealth, read_health, sources_for
from hal.types import BoardIdentity, BoardReading, ThrottleFlags
from hal.watchdog import pc_chipset_warning, sysfs_dir

DT_MODEL_PATHS = ("/proc/device-tree/model", "/sys/firmware/devicetree/base/model")
TEGRA_RELEASE = "/etc/nv_tegra_release"
DMI_PRODUCT = "/sys/devices/virtual/dmi/id/product_name"

_RELEASE = re.compile(r"#\s*R(\d+)\s*\(release\)(?:\s*,\s*REVISION:\s*([0-9][0-9.]*))?", re.IGNORECASE)
_L4T_DPKG = re.compile(r"^(\d+)\.(\d+)(?:\.(\d+))?")
#: L4T major release -> JetPack major version.
L4T_TO_JETPACK = {32: 4, 34: 5, 35: 5, 36: 6, 38: 7}
#: Jetson families by a device-tree model substring; the first match wins (order matters).
JETSON_FAMILIES = (
    ("AGX Orin", "agx-orin"),
    ("Orin NX", "orin-nx"),
    ("Orin Nano", "orin-nano"),
    ("AGX Xavier", "agx-xavier"),
    ("Xavier NX", "xavier-nx"),
    ("AGX Thor", "agx-thor"),
    ("TX2 NX", "tx2-nx"),
    ("TX2", "tx2"),
    ("TX1", "tx1"),
    ("Nano", "nano"),
)


def _no_commands(argv: Sequence[str]) -> tuple[int, str, str]:
    return 127, "", f"{argv[0]}: not run (detecting a recorded tree)"


@dataclass(frozen=True)
class Detection:
    """What ``detect`` found: the backend to open, the board's model string, and why.

    ``variant`` is the generation or family (``pi4``, ``pi5``, ``orin-nano``, ``nano``, ``''``
    for generic Linux); ``jetpack`` is the JetPack major version where known.
    """

    backend: str
    model: str
    evidence: list[str]
    variant: str = ""
    jetpack: int | None = None
    l4t: str | None = None
    root: str = "/"

    def hal_config(self) -> dict[str, Any]:
        """The ``[hal]`` table that opens this board with ``hal.open_board``."""
        config: dict[str, Any] = {"backend": self.backend}
        if self.root not in ("", "/"):
            config["root"] = self.root
        if self.backend == "rpi" and self.variant in ("pi4", "pi5"):
            config["model"] = self.variant
        if self.backend == "jetson" and self.jetpack in (4, 5, 6):
            config["jetpack"] = str(self.jetpack)
        return config

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (JSON/msgpack-able)."""
        return asdict(self)


def parse_tegra_release(text: str) -> tuple[str, int | None] | None:
    """``# R36 (release), REVISION: 3.0, ...`` -> (``'36.3.0'``, 6); None if not an L4T release line."""
    match = _RELEASE.search(text)
    if match is None:
        return None
    major = int(match.group(1))
    revision = (match.group(2) or "").strip(".")
    l4t = f"{major}.{revision}" if revision else str(major)
    return l4t, L4T_TO_JETPACK.get(major)


def jetson_family(model: str) -> str:
    """``'NVIDIA Jetson Orin Nano Developer Kit'`` -> ``'orin-nano'``; ``'jetson'`` if unknown."""
    for needle, family in JETSON_FAMILIES:
        if needle.lower() in model.lower():
            return family
    return "jetson"


def detect(root: str = "/", runner: Runner | None = None) -> Detection:
    """Find the backend for the machine below ``root``; never raises (falls back to ``linux``).

    Looks at the device-tree model, ``/etc/nv_tegra_release`` and, on a Jetson without that file,
    ``dpkg-query`` for ``nvidia-l4t-core`` through ``runner``. With a ``root`` other than ``/``
    and no ``runner``, no command is run (the tree is a recording, not this host).
    """
    if runner is None:
        runner = default_runner() if root in ("", "/") else _no_commands
    try:
        return _detect(Fs(root or "/", runner), root or "/")
    except Exception as exc:  # detection must never take the caller down
        why = f"detection failed ({exc!r}); using the generic backend"
        return Detection("linux", "generic Linux", [why], root=root)


def _detect(fs: Fs, root: str) -> Detection:
    evidence: list[str] = []
    dt_model: str | None = None
    for path in DT_MODEL_PATHS:
        text = fs.read_text(path)
        if text:
            dt_model = " ".join(text.replace("\x00", " ").split())
            evidence.append(f"{path}: {dt_model!r}")
            break
    if dt_model is None:
        evidence.append("no device-tree model (" + " or ".join(DT_MODEL_PATHS) + ")")

    release_text = fs.read_text(TEGRA_RELEASE)
    release = parse_tegra_release(release_text) if release_text else None
    if release_text is None:
        evidence.append(f"no {TEGRA_RELEASE}")
    elif release is None:
        evidence.append(f"{TEGRA_RELEASE}: no '# R<n> (release)' line in {release_text[:60]!r}")
    else:
        evidence.append(f"{TEGRA_RELEASE}: L4T R{release[0]} -> JetPack {release[1] or 'unknown'}")

    is_jetson = release is not None or (dt_model is not None and "jetson" in dt_model.lower())
    if is_jetson:
        l4t, jetpack = release if release is not None else (None, None)
        if release is None:
            l4t, jetpack = _l4t_from_dpkg(fs, evidence)
        model = dt_model or "NVIDIA Jetson"
        family = jetson_family(model)
        evidence.append(f"backend jetson ({family})")
        return Detection("jetson", model, evidence, family, jetpack, l4t, root)

    if dt_model is not None and "raspberry pi" in dt_model.lower():
        gen = pi_generation(dt_model)
        if gen is None:
            gen = "pi4"
            evidence.append("not a Pi 4/5 family board: using Pi 4 behaviour (no hotplug, no PMIC rails)")
        evidence.append(f"backend rpi ({gen})")
        return Detection("rpi", dt_model, evidence, gen, root=root)

    product = fs.read_text(DMI_PRODUCT)
    if product:
        evidence.append(f"{DMI_PRODUCT}: {product!r}")
    model = dt_model or product or "generic Linux"
    evidence.append("backend linux (no Raspberry Pi or Jetson signature)")
    return Detection("linux", model, evidence, root=root)


def _l4t_from_dpkg(fs: Fs, evidence: list[str]) -> tuple[str | None, int | None]:
    out = fs.run(["dpkg-query", "--show", "--showformat=${Version}", "nvidia-l4t-core"])
    version = (out or "").strip()
    match = _L4T_DPKG.match(version)
    if match is None:
        evidence.append("JetPack unknown: no release file and no nvidia-l4t-core package version")
        return None, None
    major = int(match.group(1))
    l4t = ".".join(g for g in match.groups() if g is not None)
    jetpack = L4T_TO_JETPACK.get(major)
    evidence.append(f"nvidia-l4t-core {version!r}: L4T R{l4t} -> JetPack {jetpack or 'unknown'}")
    return l4t, jetpack


# ---- probe report ------------------------------------------------------------------------------
THROTTLE_NAMES = ("under-voltage", "arm-frequency-capped", "throttled", "soft-temperature-limit")


def throttle_names(flags: ThrottleFlags) -> tuple[list[str], list[str]]:
    """(flags set now, flags that occurred since boot) as names."""
    now = [n for bit, n in enumerate(THROTTLE_NAMES) if flags.raw & (1 << bit)]
    sticky = [n for bit, n in enumerate(THROTTLE_NAMES) if flags.raw & (1 << (16 + bit))]
    return now, sticky


@dataclass(frozen=True)
class Missing:
    """A field the board could not give, and why (as far as known)."""

    field: str
    reason: str


@dataclass(frozen=True)
class Hotplug:
    """Whether a core can go offline / come back online, with the board's reasons."""

    core: int
    can_offline: bool
    offline_reason: str
    can_online: bool
    online_reason: str


@dataclass(frozen=True)
class WatchdogReport:
    """The watchdog as the probe sees it (never opened: opening one arms it)."""

    device: str | None
    present: bool
    identity: str | None
    timeout_s: float | None
    max_timeout_s: float | None
    nowayout: bool | None = None
    bootstatus: int | None = None
    reset_reason: str | None = None
    warning: str | None = None
    """Set for a PC chipset watchdog (iTCO, SP5100...), which resets the whole machine."""


@dataclass(frozen=True)
class ProbeReport:
    """Everything ``probe_report`` learnt about a board; ``lines()`` for people, ``to_dict()`` for JSON."""

    identity: BoardIdentity
    reading: BoardReading
    hotplug: list[Hotplug]
    cpuset: CpusetSupport
    watchdog: WatchdogReport
    missing: list[Missing]
    reads: int
    settle_s: float
    detection: Detection | None = None
    throttle_now: list[str] = field(default_factory=list)
    throttle_sticky: list[str] = field(default_factory=list)
    excluded_cpus: dict[int, str] = field(default_factory=dict)
    health: BoardHealth | None = None

    def to_dict(self) -> dict[str, Any]:
        """Nested dicts/lists of str, int, float, bool and None (JSON- and msgpack-able)."""
        return {
            "detection": self.detection.to_dict() if self.detection is not None else None,
            "identity": asdict(self.identity),
            "reads": self.reads,
            "settle_s": self.settle_s,
            "cores": [asdict(c) for c in self.reading.cores],
            "zones": [asdict(z) for z in self.reading.zones],
            "throttle": None
            if self.reading.throttle is None
            else {"raw": self.reading.throttle.raw, "now": self.throttle_now, "since_boot": self.throttle_sticky},
            "rails_mw": dict(self.reading.rails_mw),
            "edac": asdict(self.reading.edac) if self.reading.edac is not None else None,
            "watchdog": asdict(self.watchdog),
            "hotplug": [asdict(h) for h in self.hotplug],
            "cpuset": asdict(self.cpuset),
            "extras": dict(self.reading.extras),
            "excluded_cpus": {str(c): why for c, why in sorted(self.excluded_cpus.items())},
            "missing": [asdict(m) for m in self.missing],
            "missing_fields": list(self.reading.missing),
            "board_health": self.health.to_dict() if self.health is not None else None,
        }

    def lines(self) -> list[str]:
        """A human-readable report, one line per item."""
        ident = self.identity
        out = [f"board: {ident.model} (backend {ident.backend}, {ident.cores} cores)"]
        if ident.details:
            out.append("  details: " + ", ".join(f"{k}={v}" for k, v in sorted(ident.details.items())))
        if self.detection is not None:
            out.append(f"detected: backend {self.detection.backend}" + _opt(" variant ", self.detection.variant))
            out += [f"  evidence: {e}" for e in self.detection.evidence]
        out.append(f"cores ({self.reads} read(s), {self.settle_s:g} s apart):")
        for c in self.reading.cores:
            state = "online " if c.online else "offline"
            out.append(
                f"  cpu{c.id}: {state} load {_num(c.load_pct, '%', '.1f')} freq {_num(c.freq_mhz, ' MHz', '.0f')}"
                f" cluster {_num(c.cluster)}"
            )
        for cpu, why in sorted(self.excluded_cpus.items()):
            out.append(f"  cpu{cpu}: excluded ({why})")
        out.append("thermal zones:" if self.reading.zones else "thermal zones: none")
        for z in self.reading.zones:
            trips = ", ".join(f"{t.kind} {t.temp_c:g} C" for t in z.trips) or "no trips"
            out.append(f"  {z.name}: {_num(z.temp_c, ' C', '.1f')} ({trips})")
        if self.reading.throttle is None:
            out.append("throttle: not available")
        else:
            now = ", ".join(self.throttle_now) or "none"
            sticky = ", ".join(self.throttle_sticky) or "none"
            out.append(f"throttle: 0x{self.reading.throttle.raw:x} now: {now}; since boot: {sticky}")
        out.append("rails:" if self.reading.rails_mw else "rails: none")
        out += [f"  {name}: {mw:.1f} mW" for name, mw in sorted(self.reading.rails_mw.items())]
        edac = self.reading.edac
        if edac is None:
            out.append("edac: not available")
        else:
            out.append(f"edac: {edac.corrected} corrected, {edac.uncorrected} uncorrected")
        wd = self.watchdog
        out.append(
            f"watchdog: {wd.device or 'none'}{'' if wd.present else ' (absent)'} identity {wd.identity or '?'}"
            f" timeout {_num(wd.timeout_s, ' s', 'g')} max {_num(wd.max_timeout_s, ' s', 'g')}"
            f" nowayout {'?' if wd.nowayout is None else ('yes' if wd.nowayout else 'no')}"
        )
        if wd.reset_reason is not None:
            out.append(f"  last reset: {wd.reset_reason} (bootstatus 0x{wd.bootstatus or 0:x})")
        if wd.warning:
            out.append(f"  WARNING: {wd.warning}")
        out.append("hotplug:")
        for h in self.hotplug:
            off = "yes" if h.can_offline else "no"
            on = "yes" if h.can_online else "no"
            line = f"  cpu{h.core}: offline {off}" + _opt(" (", h.offline_reason, ")")
            line += f"; online {on}" + _opt(" (", h.online_reason, ")")
            out.append(line)
        if self.cpuset.available:
            out.append(f"cpuset: available ({self.cpuset.version}) below {self.cpuset.base}")
        else:
            out.append(f"cpuset: unavailable ({self.cpuset.reason})")
        if self.reading.extras:
            out.append("extras: " + ", ".join(f"{k}={v}" for k, v in self.reading.extras.items()))
        if self.health is not None:
            out += self.health.lines()
        out.append("MISSING:" if self.missing else "MISSING: nothing")
        out += [f"  {m.field}: {m.reason}" for m in self.missing]
        return out


def _opt(prefix: str, text: str, suffix: str = "") -> str:
    return f"{prefix}{text}{suffix}" if text else ""


def _num(value: float | int | None, unit: str = "", fmt: str = "") -> str:
    return "?" if value is None else f"{value:{fmt}}{unit}"


def probe_report(
    board: Board,
    *,
    settle_s: float = 0.5,
    detection: Detection | None = None,
    cpuset_root: str | None = None,
    sleep: Callable[[float], None] = time.sleep,
    health: bool = True,
    state_dir: str | None = None,
) -> ProbeReport:
    """Read ``board`` (twice, ``settle_s`` apart, so load is known; once if ``settle_s`` is 0).

    Never opens the watchdog and never changes a core; ``cpuset_root`` defaults to the board's
    filesystem root (``/`` for the simulator, whose cpusets are the host's).
    """
    if settle_s < 0:
        raise HalError(f"settle_s must be >= 0, got {settle_s!r}")
    reading = board.read()
    reads = 1
    if settle_s > 0:
        sleep(settle_s)
        reading = board.read()
        reads = 2
    ident = board.identity
    hotplug = [_hotplug(board, c) for c in board.core_ids()]
    root = cpuset_root if cpuset_root is not None else _board_root(board)
    try:
        cpuset = cpuset_probe(root)
    except Exception as exc:  # a probe must finish
        cpuset = CpusetSupport(False, f"probe failed: {exc}", None)
    watchdog = _watchdog(board, reading)
    now, sticky = throttle_names(reading.throttle) if reading.throttle is not None else ([], [])
    excluded = _excluded(board)
    missing = _missing(board, reading, reads, hotplug, cpuset, watchdog, excluded)
    return ProbeReport(
        identity=ident,
        reading=reading,
        hotplug=hotplug,
        cpuset=cpuset,
        watchdog=watchdog,
        missing=missing,
        reads=reads,
        settle_s=float(settle_s),
        detection=detection,
        throttle_now=now,
        throttle_sticky=sticky,
        excluded_cpus=excluded,
        health=_health(board, state_dir, watchdog) if health else None,
    )


def _excluded(board: Board) -> dict[int, str]:
    """Present CPUs this process may not place work on (affinity mask, cpuset), with the reason."""
    from hal.backends.linux.board import LinuxBoard

    return dict(board.cpus.excluded) if isinstance(board, LinuxBoard) else {}


def _health(board: Board, state_dir: str | None, watchdog: WatchdogReport) -> BoardHealth | None:
    """Board health (hal.health) with the watchdog's bootstatus as the probe read it; None only on a bug."""
    try:
        sources = sources_for(board, state_dir)
        if watchdog.bootstatus is not None:
            sources = replace(sources, bootstatus=watchdog.bootstatus)
        return read_health(sources)
    except Exception:  # a probe must finish; every source already reports its own failures
        return None


def _board_root(board: Board) -> str:
    from hal.backends.linux.board import LinuxBoard

    return str(board.fs.root) if isinstance(board, LinuxBoard) else "/"


def _hotplug(board: Board, core: int) -> Hotplug:
    try:
        off, off_reason = board.can_offline(core)
    except HalError as exc:
        off, off_reason = False, str(exc)
    try:
        on, on_reason = board.can_offline(core, online=True)
    except HalError as exc:
        on, on_reason = False, str(exc)
    return Hotplug(core, off, off_reason, on, on_reason)


def _watchdog(board: Board, reading: BoardReading) -> WatchdogReport:
    from hal.backends.linux.board import LinuxBoard

    info = reading.watchdog
    max_s = info.max_timeout_s if info is not None and info.max_timeout_s else board.identity.watchdog_max_s
    identity = info.identity if info is not None else None
    if isinstance(board, LinuxBoard):
        device = board.watchdog_device()
        present = board.fs.exists(device)
    else:
        device, present = "simulated", True
        identity = identity or "simulated watchdog"
    return WatchdogReport(
        device=device,
        present=present,
        identity=identity,
        timeout_s=info.timeout_s if info is not None else None,
        max_timeout_s=max_s,
        nowayout=info.nowayout if info is not None else None,
        bootstatus=info.bootstatus if info is not None else None,
        reset_reason=info.reset_reason if info is not None else None,
        warning=pc_chipset_warning(identity, device),
    )


#: Why a field named in ``BoardReading.missing`` could not be read, by name prefix.
_MISSING_REASONS = (
    (
        "pending.",
        "the command has not answered yet: it runs in the background, and a hung one ends at "
        "command_timeout_s; reads meanwhile carry its last answer and its age",
    ),
    ("vcgencmd.", "vcgencmd failed: not installed, or this user is not in the 'video' group"),
    ("throttle.sysfs", "the firmware driver's get_throttled file could not be read or parsed"),
    ("throttle.rpi_volt", "rpi_volt in0_lcrit_alarm could not be read"),
    ("throttle.soctherm_oc", "the soctherm_oc hwmon has no readable ocN_event_cnt"),
    ("throttle.oc", "a soctherm_oc event counter could not be read"),
    ("nvpmodel", "nvpmodel -q failed: not installed or not permitted"),
    ("proc_stat", "/proc/stat unreadable"),
    ("cpufreq", "no cpufreq policies (a VM, or no cpufreq driver loaded)"),
    ("rails.pmic", "vcgencmd pmic_read_adc output could not be parsed"),
    ("edac.", "an EDAC counter could not be read"),
    ("rail.", "a hwmon power input could not be read"),
    ("gpu", "GPU load/frequency files not found"),
)


def _reason_for(name: str) -> str:
    for prefix, reason in _MISSING_REASONS:
        if name.startswith(prefix):
            return reason
    return "could not be read"


def _no_throttle(backend: str, reading: BoardReading) -> str:
    """Why a board gave no throttle flags."""
    if backend == "rpi" and "pending.vcgencmd.get_throttled" in reading.missing:
        return "vcgencmd get_throttled has not answered yet (no sysfs get_throttled or rpi_volt here)"
    if backend == "rpi":
        return (
            "no sysfs get_throttled or rpi_volt hwmon, and vcgencmd get_throttled failed: "
            "not installed, or not in the 'video' group"
        )
    if backend == "jetson":
        return (
            "no soctherm_oc hwmon: under-voltage/over-current events are read on Orin (JetPack 5/6) only; "
            "compare cpufreq with the nvpmodel clocks"
        )
    return "generic Linux has no throttle flags"


def _missing(
    board: Board,
    reading: BoardReading,
    reads: int,
    hotplug: list[Hotplug],
    cpuset: CpusetSupport,
    watchdog: WatchdogReport,
    excluded: dict[int, str],
) -> list[Missing]:
    ident = board.identity
    backend = ident.backend
    gen = ident.details.get("generation", "")
    out: list[Missing] = []
    seen: set[str] = set()

    def add(name: str, reason: str) -> None:
        if name not in seen:
            seen.add(name)
            out.append(Missing(name, reason))

    # Whole sections first, with the board-specific reason where one is known.
    if not reading.cores:
        add("cores", "no CPU topology under /sys/devices/system/cpu")
    if not reading.zones:
        add("zones", "no thermal zones under /sys/class/thermal")
    if reading.throttle is None:
        add("throttle", _no_throttle(backend, reading))
    if not reading.rails_mw:
        if backend == "rpi" and gen == "pi4":
            add("rails", "Pi 4 has no power telemetry (add an INA2xx on hwmon)")
        elif backend == "rpi":
            add("rails", "vcgencmd pmic_read_adc failed (needs the 'video' group)")
        elif backend == "jetson":
            add("rails", "no INA3221 found (hwmon ina3221 on JetPack 5/6, iio ina3221x on JetPack 4)")
        else:
            add("rails", "no hwmon power*_input")
    if reading.edac is None:
        why = "usual on Raspberry Pi and Jetson" if backend in ("rpi", "jetson") else "no ECC memory controller"
        add("edac", f"no /sys/devices/system/edac/mc* ({why})")
    if reading.watchdog is None and backend != "sim":
        add("watchdog.info", f"no {sysfs_dir(watchdog.device or '/dev/watchdog')} (identity and timeouts unknown)")
    if not watchdog.present:
        add("watchdog.device", f"{watchdog.device} does not exist (no watchdog driver loaded?)")
    for cpu, why in sorted(excluded.items()):
        add(f"cpu{cpu}", f"excluded: {why}")
    # Per-core and per-zone gaps.
    for c in reading.cores:
        if c.online and c.load_pct is None:
            if "proc_stat" in reading.missing:
                why = "/proc/stat unreadable"
            elif reads < 2:
                why = "first read: load needs two reads (settle_s > 0)"
            else:
                why = "its /proc/stat line did not advance between the two reads (or is absent)"
            add(f"cpu{c.id}.load_pct", why)
        if c.online and c.freq_mhz is None:
            add(f"cpu{c.id}.freq_mhz", "no cpufreq policy covers it")
        if c.cluster is None:
            why = (
                "offline, and its cpufreq policy answers EBUSY while all its CPUs are"
                if not c.online
                else "no cpufreq policy covers it"
            )
            add(f"cpu{c.id}.cluster", why)
    for z in reading.zones:
        if z.temp_c is None:
            add(f"zone.{z.name}", "temperature unreadable (zone powered off?)")
    for key, value in reading.extras.items():
        if value is None:
            add(f"extras.{key}", _reason_for(key))
    if hotplug and not any(h.can_offline for h in hotplug):
        add("hotplug", next((h.offline_reason for h in hotplug if h.offline_reason), "no core can go offline"))
    if not cpuset.available:
        add("cpuset", cpuset.reason)
    # Whatever else the reading itself flagged.
    for name in reading.missing:
        if not any(name.startswith(f"{known}.") or name.startswith(f"{known} ") for known in seen):
            add(name, _reason_for(name))
    return out
