"""SimRadHard: a seeded, time-accelerable GR740-like board with orbit physics and radiation faults."""

from __future__ import annotations

import math
import os
import shutil
import tempfile
import time
import weakref
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache, partial
from pathlib import Path
from typing import Any, TypeVar

from hal.backends.linux.board import LinuxBoard
from hal.backends.linux.procstat import LoadTracker, parse_proc_stat
from hal.backends.sim.edac import Edac, edac_code
from hal.backends.sim.faults import PoissonProcess, stream
from hal.backends.sim.inject import inject
from hal.backends.sim.orbit import Orbit
from hal.backends.sim.render import USER_HZ, TreeState, render
from hal.backends.sim.settings import sim_settings
from hal.backends.sim.thermal import ThermalModel, ThermalParams
from hal.backends.sim.watchdog import SimWatchdog
from hal.board import Board
from hal.errors import HalCoreHung, HalError, HalUnsupported
from hal.fs import Fs, Probe
from hal.types import BoardIdentity, BoardReading, Extra, ThrottleFlags, TimelineEvent
from hal.watchdog import Watchdog

T = TypeVar("T")
DAY_S = 86400.0
MAX_EVENTS = 100_000


SimEvent = TimelineEvent
"""One entry of the simulator's timeline (the HAL's TimelineEvent, under its older name)."""


@dataclass
class _Core:
    online: bool = True
    hung: bool = False
    failed: bool = False
    load: float = 0.0  # 0..1, for load_source = "sim"
    busy_j: float = 0.0
    idle_j: float = 0.0
    work_s: float = 0.0

    @property
    def running(self) -> bool:
        return self.online and not self.failed


class _Reader(LinuxBoard):
    """The Linux readers pointed at the rendered tree, plus sim-only throttle and extras."""

    BACKEND = "sim"

    def __init__(self, fs: Fs, sim: SimBoard) -> None:
        self._sim = weakref.ref(sim)  # no cycle: the board owns the reader
        super().__init__({"root": str(fs.root)}, fs)

    def read_throttle(self, probe: Probe) -> ThrottleFlags | None:
        sim = self._sim()
        return sim.throttle_flags() if sim is not None else None

    def read_extras(self, probe: Probe) -> dict[str, Extra]:
        sim = self._sim()
        return sim.extras() if sim is not None else {}


TREE_PREFIX = "sim-"
"""A tree in a work directory is ``sim-<pid of its process>-<random>``: a dead process's tree is stale."""


def remove_stale_trees(work_dir: Path) -> None:
    """Remove the trees of simulated boards whose process is gone (a kernel killed before it could)."""
    for tree in work_dir.glob(f"{TREE_PREFIX}*-*"):
        pid_text = tree.name[len(TREE_PREFIX) :].split("-", 1)[0]
        if not pid_text.isdigit() or not tree.is_dir() or int(pid_text) == os.getpid():
            continue
        try:
            os.kill(int(pid_text), 0)
        except ProcessLookupError:
            shutil.rmtree(tree, ignore_errors=True)
        except PermissionError:  # alive, someone else's
            continue


@lru_cache(maxsize=32)
def saa_rate_factors(orbit: Orbit, multiplier: float, step_s: float) -> tuple[float, float, float]:
    """(SAA time share, rate factor outside, inside): the SAA raises the rate ``multiplier``-fold over the
    rate outside, while the time-weighted orbit average stays the stated rate (hal-readings §4: the
    stated rates are orbit averages; most upsets happen in the SAA, not on top of them)."""
    sample = max(step_s, 10.0)  # the board decides SAA per step_s cell; finer than 10 s changes nothing
    share = orbit.saa_fraction(sample, max(DAY_S, 1000 * sample))
    outside = 1.0 / (1.0 - share + share * multiplier)
    return share, outside, outside * multiplier


_MODEL_NAMES = {"radhard": "SimRadHard", "cots": "SimCOTS"}
"""The board model's name per profile, so status and run records tell a COTS run from a rad-hard one."""


class SimBoard(Board):
    """The simulated target. Drive it with step()/advance_to(), or let read() follow wall time."""

    BACKEND = "sim"

    def __init__(self, settings: Mapping[str, Any]) -> None:
        s = dict(settings)
        self.settings = s
        self._n = int(s["cores"])
        self._host = list(s["host_cpus"])
        self.t = 0.0
        self._cores = [_Core() for _ in range(self._n)]
        self.orbit = Orbit(s["altitude_km"], s["inclination_deg"], s["beta_deg"])
        self.thermal_params = ThermalParams(
            c_junction_j_k=s["c_junction_j_k"],
            r_jr_k_w=s["r_jr_k_w"],
            c_radiator_j_k=s["c_radiator_j_k"],
            radiator_area_m2=s["radiator_area_m2"],
            emissivity=s["emissivity"],
            absorptivity=s["absorptivity"],
            solar_view_factor=s["solar_view_factor"],
            earth_view_factor=s["earth_view_factor"],
        )
        self.thermal = ThermalModel(self.thermal_params, s["initial_temp_c"])
        code = edac_code(s["edac_code"], s["word_bits"], s["edac_symbol_bits"], s["edac_interleave"])
        self.edac = Edac(s["memory_bits"] // s["word_bits"], s["word_bits"], code)
        seed = int(s["seed"])
        self._seu = PoissonProcess(stream(seed, "seu"))
        self._seu_marks = stream(seed, "seu-marks")
        self._sefi = PoissonProcess(stream(seed, "sefi"))
        self._sefi_marks = stream(seed, "sefi-marks")
        self._sel = PoissonProcess(stream(seed, "sel"))
        self._sel_marks = stream(seed, "sel-marks")
        self._inject_rng = stream(seed, "inject")
        self._next_scrub = float(s["scrub_period_s"])
        self.saa_fraction, self._rate_out, self._rate_in = saa_rate_factors(
            self.orbit, float(s["saa_multiplier"]), float(s["step_s"])
        )
        self._saa_override: bool | None = None
        self._sun_override: bool | None = None
        self.sel_ma = 0.0
        self._trip_at: float | None = None
        self.extra_heat_w = 0.0
        self._sticky_throttle = False
        self._events: deque[SimEvent] = deque(maxlen=MAX_EVENTS)
        self._host_loads: dict[int, float] = {}
        self._host_tracker = LoadTracker()
        self._host_fs = Fs("/")
        self._sim_watchdog: SimWatchdog | None = None
        self._wall = time.monotonic()
        self.power_cycles = 0
        self.resume = bool(s.get("resume", False))
        """Carry persistent board state (watchdog resets) over from the last run; else each run starts fresh."""
        if s["root"] in ("/", ""):
            work = s.get("work_dir") or ""
            if work:  # flightos's runtime directory: the tree goes with it, and a killed kernel's is swept here
                remove_stale_trees(Path(work))
                self._root = Path(tempfile.mkdtemp(prefix=f"{TREE_PREFIX}{os.getpid()}-", dir=work))
            else:
                self._root = Path(tempfile.mkdtemp(prefix="flightos-sim-"))
            self._finalizer: weakref.finalize[Any, Any] | None = weakref.finalize(
                self, shutil.rmtree, str(self._root), True
            )
        else:
            self._root = Path(s["root"])
            self._root.mkdir(parents=True, exist_ok=True)
            self._finalizer = None
        self._render_cache: dict[str, str] = {}
        self._render()
        self._reader = _Reader(Fs(self._root), self)
        self.identity = BoardIdentity(
            backend="sim",
            model=f"{_MODEL_NAMES[s['profile']]} GR740-like, {self._n} cores at {s['freq_mhz']:g} MHz",
            cores=self._n,
            hotplug=True,
            watchdog_max_s=float(s["watchdog_max_s"]),
            details={
                "profile": s["profile"],
                "seed": str(seed),
                "tree": str(self._root),
                "saa_time_share": f"{self.saa_fraction:.3f}",
            },
        )

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> SimBoard:
        """Validate a sim [hal] table and build the board."""
        return cls(sim_settings(config))

    # ---- Board interface ------------------------------------------------------------------
    def core_ids(self) -> list[int]:
        return list(range(self._n))

    def host_cpus(self, core_id: int) -> frozenset[int]:
        self._check_core(core_id)
        return frozenset({self._host[core_id % len(self._host)]})

    def read(self) -> BoardReading:
        self.sync()
        self._sample_host_loads()
        self._render()
        return self._reader.read()

    def can_offline(self, core_id: int, *, online: bool = False) -> tuple[bool, str]:
        self._check_core(core_id)
        core = self._cores[core_id]
        if online:
            if core.failed:
                return False, f"core {core_id} has failed permanently"
            return True, ""
        if core_id == 0:
            return False, "core 0 is the boot core and cannot be taken offline"
        if not any(c.running for i, c in enumerate(self._cores) if i != core_id):
            return False, f"core {core_id} is the last running core"
        return True, ""

    def set_core_online(self, core_id: int, online: bool) -> None:
        ok, reason = self.can_offline(core_id, online=online)
        if not ok:
            raise HalUnsupported(reason)
        core = self._cores[core_id]
        if core.online != online:
            core.online = online
            core.hung = False if online else core.hung
            self._event("core_online" if online else "core_offline", core=core_id)

    def watchdog(self, device: str | None = None) -> Watchdog:
        if self._sim_watchdog is None or not self._sim_watchdog.is_open:
            self._sim_watchdog = SimWatchdog(float(self.settings["watchdog_max_s"]))
        return self._sim_watchdog

    def close(self) -> None:
        if self._finalizer is not None:
            self._finalizer()

    # ---- time -----------------------------------------------------------------------------
    @property
    def sim_time(self) -> float:
        """Seconds of simulated time since the board was opened."""
        return self.t

    def sync(self) -> None:
        """Advance by (wall time since the last sync) * time_scale; nothing if time_scale is 0."""
        now = time.monotonic()
        elapsed, self._wall = now - self._wall, now
        scale = float(self.settings["time_scale"])
        if scale > 0 and elapsed > 0:
            self.advance_to(self.t + elapsed * scale)
        self._check_watchdog()

    def step(self, dt_s: float) -> None:
        """Advance simulated time by dt_s seconds."""
        if not dt_s >= 0 or math.isinf(dt_s):
            raise HalError(f"step must be a finite time >= 0, got {dt_s!r}")
        self.advance_to(self.t + dt_s)

    def advance_to(self, t_s: float) -> None:
        """Advance simulated time to t_s, running physics and faults on the step_s grid."""
        if t_s < self.t:
            raise HalError(f"cannot go back in time from {self.t} s to {t_s} s")
        grid = float(self.settings["step_s"])
        while t_s - self.t > 1e-9:
            cell = math.floor(self.t / grid + 1e-9)
            t_next = min(t_s, (cell + 1) * grid)
            if self._trip_at is not None:
                t_next = min(t_next, max(self._trip_at, self.t + 1e-9))
            self._substep(self.t, t_next, cell * grid)
        self._check_watchdog()

    @property
    def next_scrub_in_s(self) -> float:
        """Simulated seconds until the scrubber next reads memory (when pending upsets reach the counters)."""
        return max(0.0, self._next_scrub - self.t)

    # ---- environment ----------------------------------------------------------------------
    def sunlit(self, t_s: float | None = None) -> bool:
        """True in sunlight (or as forced by set_sun)."""
        if self._sun_override is not None:
            return self._sun_override
        return not self.orbit.in_eclipse(self.t if t_s is None else t_s)

    def in_saa(self, t_s: float | None = None) -> bool:
        """True inside the SAA (or as forced by set_saa)."""
        if self._saa_override is not None:
            return self._saa_override
        return self.orbit.in_saa(self.t if t_s is None else t_s)

    def set_saa(self, on: bool | None) -> None:
        """Force the SAA on or off; None follows the ground track again."""
        self._saa_override = on
        self._event("saa_override", on=on)

    def set_sun(self, on: bool | None) -> None:
        """Force sunlight (True) or eclipse (False); None follows the orbit again."""
        self._sun_override = on
        self._event("sun_override", on=on)

    def set_load(self, core_id: int, pct: float) -> None:
        """Set a virtual core's load (used when load_source = 'sim')."""
        self._check_core(core_id)
        if not 0.0 <= pct <= 100.0:
            raise HalError(f"load must be within 0..100 %, got {pct!r}")
        self._cores[core_id].load = pct / 100.0

    # ---- fault injection (the hal.FaultInjection capability; `flightos inject`) ---------------
    @property
    def load_from_services(self) -> bool:
        """Whether core loads are set by the caller from its services' CPU (``load_source = 'sim'``)."""
        return bool(self.settings.get("load_source") == "sim")

    def inject(self, fault: str, args: Mapping[str, Any]) -> str:
        """Inject one fault of ``hal.injection.FAULTS`` from command arguments; return what was done."""
        return inject(self, fault, args)

    def inject_seu(self, count: int = 1, address: int | None = None, bits: Sequence[int] | None = None) -> None:
        """Flip ``count`` bits in random words; or, in the word at ``address``, ``count`` distinct random bits
        or exactly ``bits`` (a random word when no address is given)."""
        if bits is not None:
            bits = sorted(set(bits))
            if not bits or not all(0 <= b < self.edac.word_bits for b in bits):
                raise HalError(f"bits must be distinct bit numbers within 0..{self.edac.word_bits - 1}, got {bits}")
            count = len(bits)
            if address is None:
                address = self._inject_rng.randrange(self.edac.words)
        if count < 1:
            raise HalError(f"count must be >= 1, got {count}")
        if address is not None:
            if not 0 <= address < self.edac.words:
                raise HalError(f"address {address} outside 0..{self.edac.words - 1}")
            if count > self.edac.word_bits:
                raise HalError(f"a word has only {self.edac.word_bits} bits")
            if bits is None:
                bits = self._inject_rng.sample(range(self.edac.word_bits), count)
            for bit in bits:
                self.edac.upset(address, bit)
            self._event("seu", injected=True, word=address, bits=count)
            return
        for _ in range(count):
            word = self._inject_rng.randrange(self.edac.words)
            self.edac.upset(word, self._inject_rng.randrange(self.edac.word_bits))
            self._event("seu", injected=True, word=word, bits=1)

    def inject_sefi(self, core: int | None = None) -> None:
        """Hang a core (a random running one if None) until reset_core or power_cycle."""
        if core is None:
            running = [i for i, c in enumerate(self._cores) if c.running and not c.hung]
            if not running:
                raise HalError("no running core to hang")
            core = self._inject_rng.choice(running)
        self._check_core(core)
        self._hang(core, injected=True)

    def reset_core(self, core: int) -> None:
        """Reset one core: clears a SEFI hang (not a permanent failure)."""
        self._check_core(core)
        c = self._cores[core]
        was_hung, c.hung = c.hung, False
        self._event("core_reset", core=core, was_hung=was_hung)

    def inject_sel(self, delta_ma: float = 200.0) -> None:
        """A latch-up: a current step that persists until power_cycle (may trip the limiter)."""
        if not delta_ma > 0:
            raise HalError(f"delta_ma must be > 0, got {delta_ma!r}")
        self._latch(self.t, delta_ma, injected=True)

    def power_cycle(self, reason: str = "commanded") -> None:
        """Cut and restore power: clears latch-ups, hangs and unscrubbed upsets; failures stay."""
        self.sel_ma = 0.0
        self._trip_at = None
        for c in self._cores:
            c.hung = False
            if not c.failed:
                c.online = True
        self.edac.clear()
        self.power_cycles += 1
        self._event("power_cycle", reason=reason)

    def fail_core(self, core: int) -> None:
        """A permanent core failure: the core goes away and never comes back."""
        self._check_core(core)
        c = self._cores[core]
        c.failed, c.online, c.hung = True, False, False
        self._event("core_failed", core=core)

    def thermal_step(self, delta_w: float | None = None, delta_c: float | None = None) -> None:
        """Add a persistent heat load (delta_w) and/or an instant junction step (delta_c)."""
        if delta_w is None and delta_c is None:
            raise HalError("thermal_step needs delta_w or delta_c")
        if delta_w is not None:
            self.extra_heat_w = max(0.0, self.extra_heat_w + delta_w)
        if delta_c is not None:
            self.thermal.bump(delta_c)
        self._event("thermal_step", delta_w=delta_w, delta_c=delta_c)

    # ---- work on cores --------------------------------------------------------------------
    def core_state(self, core: int) -> str:
        """'ok', 'hung', 'offline' or 'failed'."""
        self._check_core(core)
        c = self._cores[core]
        if c.failed:
            return "failed"
        if not c.online:
            return "offline"
        return "hung" if c.hung else "ok"

    def core_progress(self, core: int) -> float:
        """Seconds of useful work the core has done (it stops growing while hung)."""
        self._check_core(core)
        return self._cores[core].work_s

    def run_on_core(self, core: int, work: Callable[[], T]) -> T:
        """Run ``work`` as if on the virtual core; raises HalCoreHung if it cannot run there."""
        state = self.core_state(core)
        if state != "ok":
            raise HalCoreHung(f"core {core} is {state}: the work does not run")
        return work()

    # ---- telemetry ------------------------------------------------------------------------
    def events_since(self, t_s: float = 0.0) -> list[SimEvent]:
        """Timeline entries at or after sim time t_s, oldest first."""
        return [e for e in self._events if e.t_s >= t_s]

    def power_w(self) -> dict[str, float]:
        """Power by rail in W (core, uncore, sdram, latch-up, extra heat)."""
        s = self.settings
        core_w = 0.0
        for i, c in enumerate(self._cores):
            if c.running:
                load = self._load(i)
                core_w += s["core_gated_w"] + (s["core_active_w"] - s["core_gated_w"]) * load
            elif not c.failed:
                core_w += s["core_gated_w"]
        sel_w = self.sel_ma / 1000.0 * s["bus_voltage_v"]
        return {
            "VDD_CORE": core_w,
            "VDD_UNCORE": s["uncore_w"],
            "VDD_SDRAM": s["sdram_w"],
            "SEL": sel_w,
            "EXTRA": self.extra_heat_w,
        }

    def current_ma(self) -> float:
        """Supply current: total power / bus voltage."""
        return float(sum(self.power_w().values()) / self.settings["bus_voltage_v"] * 1000.0)

    def throttle_flags(self) -> ThrottleFlags:
        """'throttled' while the junction is above the passive trip; sticky since power-on."""
        hot = self.thermal.junction_c >= self.settings["trip_passive_c"]
        self._sticky_throttle = self._sticky_throttle or hot
        raw = (0x4 if hot else 0) | (0x40000 if self._sticky_throttle else 0)
        return ThrottleFlags.from_bits(raw)

    def extras(self) -> dict[str, Extra]:
        """Sim-only telemetry: time, orbit, current, latch-up, core states."""
        lat, lon = self.orbit.ground_track(self.t)
        out: dict[str, Extra] = {
            "sim_time_s": self.t,
            "sunlit": self.sunlit(),
            "in_saa": self.in_saa(),
            "lat_deg": round(lat, 3),
            "lon_deg": round(lon, 3),
            "current_ma": round(self.current_ma(), 3),
            "sel_ma": self.sel_ma,
            "power_cycles": self.power_cycles,
            "edac_pending_words": self.edac.pending_words,
            "edac_code": self.edac.code.name,
            "scrub_period_s": float(self.settings["scrub_period_s"]),
            "next_scrub_in_s": round(self.next_scrub_in_s, 3),
        }
        for i in range(self._n):
            out[f"core{i}_state"] = self.core_state(i)
        return out

    # ---- internals ------------------------------------------------------------------------
    def _check_core(self, core_id: int) -> None:
        if not isinstance(core_id, int) or not 0 <= core_id < self._n:
            raise HalError(f"no core {core_id!r} on this board (cores: 0..{self._n - 1})")

    def _event(self, kind: str, t_s: float | None = None, **detail: Extra) -> None:
        self._events.append(SimEvent(self.t if t_s is None else t_s, kind, dict(detail)))

    def _load(self, core: int) -> float:
        c = self._cores[core]
        if not c.running:
            return 0.0
        if c.hung:
            return 1.0  # spinning, doing nothing useful
        if self.settings["load_source"] == "host":
            return self._host_loads.get(self._host[core % len(self._host)], 0.0)
        return c.load

    def _sample_host_loads(self) -> None:
        if self.settings["load_source"] != "host":
            return
        text = self._host_fs.read_text("/proc/stat")
        if text is None:
            return
        for cpu, pct in self._host_tracker.update(parse_proc_stat(text)).items():
            if pct is not None:
                self._host_loads[cpu] = pct / 100.0

    def _hang(self, core: int, injected: bool, t_s: float | None = None) -> None:
        c = self._cores[core]
        if c.running:
            c.hung = True
        self._event("sefi", t_s, core=core, injected=injected)

    def _latch(self, t_s: float, delta_ma: float, injected: bool) -> None:
        self.sel_ma += delta_ma
        self._event("sel", t_s, delta_ma=round(delta_ma, 3), total_ma=round(self.sel_ma, 3), injected=injected)
        # The limiter compares supply current with what the load explains (load-aware threshold).
        if self.sel_ma > self.settings["limiter_margin_ma"] and self._trip_at is None:
            self._trip_at = t_s + self.settings["limiter_trip_ms"] / 1000.0

    def _substep(self, t0: float, t1: float, cell_t: float) -> None:
        s = self.settings
        dt = t1 - t0
        saa = self.in_saa(cell_t)
        factor = self._rate_in if saa else self._rate_out
        seu_rate = s["memory_bits"] * s["seu_rate_per_bit_day"] / DAY_S * factor
        timeline: list[tuple[float, int, Callable[[], None]]] = []
        for te in self._seu.advance(seu_rate, t0, t1):
            word = self._seu_marks.randrange(self.edac.words)
            nbits = 2 if self._seu_marks.random() < s["double_bit_fraction"] else 1
            start = self._seu_marks.randrange(self.edac.word_bits - nbits + 1)
            bits = list(range(start, start + nbits))  # a multiple-bit upset hits neighbouring cells
            timeline.append((te, 0, self._upset_later(te, word, bits, saa)))
        for te in self._sefi.advance(s["sefi_rate_per_day"] / DAY_S * factor, t0, t1):
            core = self._sefi_marks.randrange(self._n)
            timeline.append((te, 1, partial(self._hang, core, False, te)))
        for te in self._sel.advance(s["sel_rate_per_day"] / DAY_S, t0, t1):
            ma = self._sel_marks.uniform(s["sel_min_ma"], s["sel_max_ma"])
            timeline.append((te, 2, partial(self._latch, te, ma, False)))
        for te, _order, apply in sorted(timeline, key=lambda item: (item[0], item[1])):
            self._scrub_until(te)
            apply()
        # Physics over the substep.
        power = sum(self.power_w().values())
        self.thermal.step(dt, power, self.thermal_params.q_ext_w(self.sunlit(cell_t)))
        for i, c in enumerate(self._cores):
            if c.running:
                load = self._load(i)
                c.busy_j += load * dt * USER_HZ
                c.idle_j += (1.0 - load) * dt * USER_HZ
                if not c.hung:
                    c.work_s += dt
        self.t = t1
        if self._trip_at is not None and self._trip_at <= t1 + 1e-9:
            self._scrub_until(self._trip_at)
            self._event("limiter_trip", self._trip_at, sel_ma=round(self.sel_ma, 3))
            self.power_cycle(reason="latch-up current limiter")
        self._scrub_until(t1)

    def _upset_later(self, te: float, word: int, bits: list[int], saa: bool) -> Callable[[], None]:
        def apply() -> None:
            for bit in bits:
                self.edac.upset(word, bit)
            self._event("seu", te, word=word, bits=len(bits), saa=saa)

        return apply

    def _scrub_until(self, t_s: float) -> None:
        """Run every scrub due at or before t_s (skipping idle ones arithmetically)."""
        period = float(self.settings["scrub_period_s"])
        while self._next_scrub <= t_s + 1e-9:
            if self.edac.pending_words == 0:
                skipped = math.floor((t_s + 1e-9 - self._next_scrub) / period) + 1
                self._next_scrub += skipped * period
                return
            at = self._next_scrub
            ce, ue = self.edac.scrub()
            self._event("edac_scrub", at, corrected=ce, uncorrected=ue)
            self._next_scrub += period

    def _check_watchdog(self) -> None:
        wd = self._sim_watchdog
        if wd is not None and wd.expired():
            self._event("watchdog_reset")
            self.power_cycle(reason="watchdog")

    def _render(self) -> None:
        s = self.settings
        online = [i for i, c in enumerate(self._cores) if c.running]
        wd = self._sim_watchdog
        render(
            self._root,
            TreeState(
                cores=self._n,
                online=online,
                busy_jiffies=[c.busy_j for c in self._cores],
                idle_jiffies=[c.idle_j for c in self._cores],
                freq_khz=round(s["freq_mhz"] * 1000),
                junction_c=self.thermal.junction_c,
                radiator_c=self.thermal.radiator_c,
                trip_passive_c=s["trip_passive_c"],
                trip_critical_c=s["trip_critical_c"],
                ce_count=self.edac.corrected,
                ue_count=self.edac.uncorrected,
                memory_mb=s["memory_bits"] // 8 // 2**20,
                rails_uw={k: round(v * 1e6) for k, v in self.power_w().items()},
                watchdog_timeout_s=round(wd.timeout_s or 0) if wd is not None else 0,
                watchdog_max_s=round(s["watchdog_max_s"]),
            ),
            self._render_cache,
        )
