"""The monitoring loop: core health, migration, modes and shedding, thermal and power governance, watchdog.

Every ``cores.monitor_period_s`` it reads the board once, turns what it sees into evidence per
core, moves services off cores that left HEALTHY (within the same period), settles the mode and
the set of running services, sets throttle levels, charges energy, and pets the watchdog if all is
well. Every decision is an event with its reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import structlog

import hal
from flightos.config.target import Target
from flightos.kernel.events import EventId
from flightos.kernel.health import speed
from flightos.kernel.health.core_health import USABLE, CoreHealth, CoreState, Evidence, HealthSettings, Weight
from flightos.kernel.health.edac import edac_status
from flightos.kernel.health.faults import BoardEffects
from flightos.kernel.health.governor import PowerAccount, ThermalGovernor, board_power_w, junction
from flightos.kernel.health.modes import Candidate, Mode, capacity_mode, plan, worse
from flightos.kernel.health.placement import place
from flightos.kernel.health.ports import Emit, Lateness, Sampler, ServiceMoves
from flightos.kernel.health.selftest import SelfTester
from flightos.kernel.records import ServiceRecord, State
from flightos.sdk.severity import Severity

log = structlog.get_logger("flightos.kernel")
_CORE_ZONE = re.compile(r"(?:cpu|core)[-_]?(\d+)", re.I)


class HealthMonitor:
    """Owns core health, the mode, throttling, energy and the watchdog for one kernel."""

    def __init__(
        self,
        target: Target,
        board: hal.Board,
        effects: BoardEffects,
        records: Mapping[str, ServiceRecord],
        *,
        emit: Emit,
        decisions: list[dict[str, Any]],
        moves: ServiceMoves,
        lag: Lateness,
        sampler: Sampler,
        state_dir: Path,
    ) -> None:
        self.board = board
        self.effects = effects
        self.records = records
        self.emit = emit
        self.decisions = decisions
        """The kernel's recent decisions (its event log's list), shown in the snapshot."""
        self.moves = moves
        self.lag = lag
        self.sampler = sampler
        t = target
        self.cfg = t.cores
        self.modes_cfg = t.modes
        self.power_cfg = t.power
        self.wd_cfg = t.watchdog
        th = t.thermal
        self.trip_fallback: float | None = th.trip_c
        settings = HealthSettings(
            self.cfg.suspect_after, self.cfg.degrade_after, self.cfg.clear_after, self.cfg.rejoin_after_s
        )
        self.health = {c: CoreHealth(c, settings) for c in board.core_ids()}
        self.governor = ThermalGovernor(th.margin_c, th.hysteresis_c, th.max_level)
        self.power = PowerAccount()
        self.selftest = SelfTester()
        self.speed_cfg = t.health.speed_factor
        self.speed_factor = 1.0
        """How many times slower than the reference this board runs Python (health.speed_factor or measured)."""
        self.started_at = time.monotonic()
        self.mode = Mode.NOMINAL
        self.forced_mode: Mode | None = None
        self.power_shed = 0
        self.under_periods = 0
        self.shed: dict[str, str] = {}
        self.throttles: dict[str, int] = {}
        self.reading: hal.BoardReading | None = None
        self.junction_c: float | None = None
        self.trip_c: float | None = None
        self._last_selftest = 0.0
        self._last_tick = 0.0
        self._last_full = 0.0
        self.ticks = 0
        self.tick_cpu_s = 0.0
        self.watchdog: Any = None
        self.watchdog_facts = hal.watchdog.status_fields(self.board.watchdog_info())  # nowayout, last reset
        self._last_pet = 0.0
        self.state_file = state_dir / "kernel-state.json"
        self.resets = self._initial_resets()  # built under the kernel's state-directory lock: its file is ours
        self.hold_safe = self.resets >= self.wd_cfg.max_resets

    # ---- lifecycle ------------------------------------------------------------------------------
    def start(self) -> None:
        """Measure the board's speed, start the self-test worker and open the watchdog (a missing one is
        reported, not fatal)."""
        self.started_at = time.monotonic()
        self._set_speed(speed.resolve(self.speed_cfg))
        if self.cfg.selftest_period_s > 0:
            self.selftest.start()
        if self.wd_cfg.enabled:
            try:
                wd = self.board.watchdog()
                wd.open(self.wd_cfg.timeout_s)
                self.watchdog = wd
            except (hal.HalError, OSError) as exc:
                self.emit(EventId.WATCHDOG_UNAVAILABLE, Severity.LOW, f"watchdog not armed: {exc}")
        if self.hold_safe:
            self._decide(
                f"holding SAFE: {self.resets} watchdog resets (limit {self.wd_cfg.max_resets}); ground must clear them",
                EventId.MODE_CHANGED,
                Severity.HIGH,
                old=self.mode.value,
                new=Mode.SAFE.value,
                reason="watchdog resets",
            )
            self.mode = Mode.SAFE

    def _set_speed(self, factor: float) -> None:
        """Adopt a speed factor: service heartbeat and start limits scale with it; say so in an event."""
        self.speed_factor = factor
        for rec in self.records.values():
            rec.speed_factor = factor
        self.emit(
            EventId.BOARD_SPEED,
            Severity.INFO,
            f"board speed factor {factor:g} ({'measured' if self.speed_cfg <= 0 else 'health.speed_factor'}): "
            f"self-test timeout {self.selftest_timeout_s:.1f} s, boot grace {self.boot_grace_s:.0f} s",
            speed_factor=factor,
            measured=self.speed_cfg <= 0,
            selftest_timeout_s=self.selftest_timeout_s,
            boot_grace_s=self.boot_grace_s,
        )

    @property
    def selftest_timeout_s(self) -> float:
        """The self-test timeout on this board: ``cores.selftest_timeout_s`` x the speed factor."""
        return self.cfg.selftest_timeout_s * self.speed_factor

    @property
    def boot_grace_s(self) -> float:
        """The start-up grace on this board: ``cores.boot_grace_s`` x the speed factor."""
        return self.cfg.boot_grace_s * self.speed_factor

    def in_boot_grace(self, now: float) -> bool:
        """Whether start-up timing (late self-tests, late heartbeats) is still not evidence against a core."""
        return now - self.started_at < self.boot_grace_s

    def stop(self) -> None:
        """Stop the self-test worker; disarm the watchdog with its magic close."""
        self.selftest.stop()
        if self.watchdog is not None:
            with contextlib.suppress(Exception):
                self.watchdog.close()
            self.watchdog = None

    async def run(self) -> None:
        """Forever: one monitoring tick per period."""
        period = self.cfg.monitor_period_s
        loop = asyncio.get_running_loop()
        next_t = loop.time()
        while True:
            self.lag.note(loop.time(), loop.time() - next_t)  # woke late: the host is busy
            t0 = time.perf_counter()
            try:
                await self.tick()
            except Exception:  # the monitor must outlive any one bad reading
                log.exception("kernel.monitor_tick_failed")
            self.tick_cpu_s += time.perf_counter() - t0
            self.ticks += 1
            next_t += period
            now = loop.time()
            if next_t < now:
                next_t = now
            await asyncio.sleep(next_t - now)

    # ---- one tick ---------------------------------------------------------------------------------
    async def tick(self) -> None:
        """Read, assess, move, settle the mode, govern, account, pet."""
        now = time.monotonic()
        dt = now - self._last_tick if self._last_tick else 0.0
        self._last_tick = now
        full = self.reading is None or now - self._last_full >= self.effects.full_read_s
        if full:  # the simulator renders a sysfs tree per read: its state is checked every tick, its tree 1/s
            self._last_full = now
            for rec in self.records.values():
                self.sampler.sample(rec)
            self.effects.feed_load(self._core_load)
            self.reading = self.board.read()
        self.effects.update()
        self._selftests(now)
        for core, ev in self._evidence(now).items():
            change = self.health[core].observe(now, ev)
            if change is not None:
                self._core_changed(core, *change)
        self._migrate()
        await self._settle_mode()
        self._govern()
        self._account(dt)
        self._pet(now)

    def _core_load(self, core: int) -> float:
        """What the services placed on a core burn there (%): a simulator driven by service load shows it."""
        return sum(
            r.cpu_percent / max(1, len(r.cores)) for r in self.records.values() if r.pid is not None and core in r.cores
        )

    # ---- evidence -----------------------------------------------------------------------------------
    def _selftests(self, now: float) -> None:
        period = self.cfg.selftest_period_s
        if period <= 0:
            return
        st = self.selftest
        fault = st.worker_fault(self.selftest_timeout_s, max(10.0, 10 * self.selftest_timeout_s))
        if fault is not None:
            st.restart()
            self._last_selftest = 0.0
            self.emit(
                EventId.SELFTEST_WORKER_FAULT,
                Severity.LOW,
                f"{fault}: restarted, no core blamed",
                reason=fault,
                restarts=st.restarts,
            )
            return
        if now - self._last_selftest >= period:
            self._last_selftest = now
            cpus = {c for core in self.health for c in self.board.host_cpus(core)}
            self.selftest.request(cpus)

    def _evidence(self, now: float) -> dict[int, list[Evidence]]:
        out: dict[int, list[Evidence]] = {c: [] for c in self.health}
        reading = self.reading
        grace = self.in_boot_grace(now)
        for c in self.health:
            state = self.effects.hw_state(c, reading)
            if state == "hung":
                out[c].append(Evidence(Weight.SEVERE, "core hung (functional interrupt)"))
            elif state in ("failed", "offline"):
                out[c].append(Evidence(Weight.FATAL, f"core {state}"))
            for cpu in self.board.host_cpus(c):
                verdict = self.selftest.verdict(cpu, self.selftest_timeout_s, self.lag.since)
                if verdict and not (grace and "no answer" in verdict):  # late at boot: the board is starting
                    out[c].append(Evidence(Weight.SEVERE, verdict))
        for z in reading.zones if reading is not None else []:
            m = _CORE_ZONE.fullmatch(z.name.split("-")[0]) if z.name else None
            if m is None or int(m.group(1)) not in out or z.temp_c is None:
                continue  # chip-wide zones are the governor's business, not one core's
            trips = [t.temp_c for t in z.trips if t.kind in ("passive", "hot")]
            if trips and z.temp_c >= min(trips) - self.cfg.temp_margin_c:
                near = f"{z.name} at {z.temp_c:.1f} C near {min(trips):g} C"
                out[int(m.group(1))].append(Evidence(Weight.MILD, near))
        late = self.cfg.heartbeat_late_factor * self.speed_factor
        loop_now = asyncio.get_running_loop().time()
        for c in out if not grace else ():
            on_core = [r for r in self.records.values() if r.state == State.READY and c in r.cores]
            slow = [r.name for r in on_core if loop_now - r.last_heartbeat > late * r.cfg.heartbeat_period_s]
            if len(on_core) >= 2 and len(slow) * 2 >= len(on_core):
                out[c].append(Evidence(Weight.MILD, f"heartbeats late from {', '.join(slow)}"))
        return out

    def _core_changed(self, core: int, old: CoreState, new: CoreState, reason: str) -> None:
        sev = (
            Severity.INFO
            if new == CoreState.HEALTHY
            else Severity.LOW
            if new == CoreState.SUSPECT
            else Severity.MEDIUM
            if new == CoreState.DEGRADED
            else Severity.HIGH
        )
        self._decide(
            f"core {core}: {old.value} -> {new.value} ({reason})",
            EventId.CORE_STATE_CHANGED,
            sev,
            core=core,
            old=old.value,
            new=new.value,
            reason=reason,
            services=[r.name for r in self.records.values() if core in r.cores and r.pid],
        )

    def _decide(self, message: str, event: EventId, sev: Severity, **data: Any) -> None:
        self.emit(event, sev, message, **data)

    # ---- ground commands ----------------------------------------------------------------------------
    def force_core(self, core: int, enable: bool) -> str:
        """`core disable N` pins a core OFFLINE; `core enable N` returns it to HEALTHY at once."""
        h = self.health.get(core)
        if h is None:
            raise KeyError(core)
        change = h.force(
            time.monotonic(), None if enable else CoreState.OFFLINE, "ground: enable" if enable else "ground: disable"
        )
        if change is not None:
            self._core_changed(core, *change)
        self._migrate()
        return h.state.value

    def force_mode(self, mode: Mode | None) -> None:
        """`mode safe|degraded|nominal` holds a mode; `mode auto` returns to automatic and clears a watchdog hold."""
        self.forced_mode = mode
        if mode is None and self.hold_safe:
            self.hold_safe = False
            self.resets = 0
            self._save_state()

    # ---- migration -----------------------------------------------------------------------------------
    def usable_cores(self) -> list[int]:
        """Cores that may take work: HEALTHY ones, else SUSPECT ones."""
        healthy = [c for c, h in self.health.items() if h.state == CoreState.HEALTHY]
        return healthy or [c for c, h in self.health.items() if h.state in USABLE]

    def placement_for(self, rec: ServiceRecord) -> list[int] | None:
        """Where a service should go now, or None to leave it where it is (no usable core at all)."""
        good = self.usable_cores()
        if not good:
            return None
        load: dict[int, int] = {}
        for r in self.records.values():
            if r is not rec and (r.pid is not None or r.state in (State.STARTING, State.BACKOFF)):
                for c in r.cores:
                    load[c] = load.get(c, 0) + 1
        return place([(rec.name, rec.cfg.criticality, rec.cfg.cores)], good, load)[rec.name]

    def avoid_bad_cores(self, rec: ServiceRecord) -> None:
        """Before a (re)start, move a service off cores that are not HEALTHY (or hung underneath)."""
        bad = {c for c, h in self.health.items() if h.state != CoreState.HEALTHY} | self.effects.hung_cores()
        if not rec.cores or not (set(rec.cores) & bad):
            return
        chosen = self.placement_for(rec)
        if chosen is None or set(chosen) & bad:
            return  # nowhere better: start where it was (critical work runs until the last core)
        old = rec.cores
        self.moves.set_cores(rec, chosen)
        self.emit(
            EventId.SERVICE_PLACED,
            Severity.MEDIUM,
            f"{rec.name} placed on core(s) {chosen} instead of {old}: core(s) {sorted(set(old) & bad)} not healthy",
            service=rec.name,
            cores=chosen,
            host_cpus=rec.host_cpus,
            previous=old,
            criticality=rec.cfg.criticality,
        )

    def _migrate(self) -> None:
        bad = {c for c, h in self.health.items() if h.state != CoreState.HEALTHY}
        for rec in self.records.values():
            if rec.state in (State.DISABLED, State.STOPPED, State.FAILED) or not (set(rec.cores) & bad):
                continue
            chosen = self.placement_for(rec)
            if chosen is None or set(chosen) == set(rec.cores):
                continue
            self.moves.move_service(rec, chosen, restart=self._stuck(rec), reason=self._why(set(rec.cores) & bad))

    def _stuck(self, rec: ServiceRecord) -> bool:
        """A process on a hung core cannot be moved, only restarted elsewhere."""
        if not rec.cores or rec.pid is None:
            return False
        if all(self.effects.core_state(c) == "hung" for c in rec.cores):
            return True
        return all(
            any(
                "no answer" in (self.selftest.verdict(cpu, self.selftest_timeout_s) or "")
                for cpu in self.board.host_cpus(c)
            )
            for c in rec.cores
        )

    def _why(self, cores: set[int]) -> str:
        return "; ".join(f"core {c} {self.health[c].state.value}: {self.health[c].reason}" for c in sorted(cores))

    # ---- mode and shedding -----------------------------------------------------------------------------
    async def _settle_mode(self) -> None:
        usable = sum(1 for h in self.health.values() if h.state in USABLE)
        mode = capacity_mode(usable, len(self.health), self.modes_cfg.safe_at_usable_cores)
        reason = f"{usable} of {len(self.health)} cores usable"
        if self.hold_safe:
            mode, reason = Mode.SAFE, f"{self.resets} watchdog resets: holding SAFE until ground acts"
        elif self.forced_mode is not None:
            mode, reason = self.forced_mode, "ground command"
        if self.power_shed and mode == Mode.NOMINAL:
            mode, reason = worse(mode, Mode.DEGRADED), f"power budget exceeded ({self.power.board_w:.2f} W)"
        if mode != self.mode:
            old, self.mode = self.mode, mode
            self._decide(
                f"mode {old.value} -> {mode.value}: {reason}",
                EventId.MODE_CHANGED,
                Severity.MEDIUM if mode != Mode.NOMINAL else Severity.INFO,
                old=old.value,
                new=mode.value,
                reason=reason,
            )
        operator_stopped = {r.name for r in self.records.values() if r.stop_requested and r.name not in self.shed}
        candidates = [
            Candidate(r.name, r.cfg.criticality)
            for r in self.records.values()
            if r.cfg.enabled and r.state not in (State.FAILED, State.REMOTE) and r.name not in operator_stopped
        ]
        run, shed = plan(self.mode, usable, candidates, self.modes_cfg.services_per_core, self.power_shed)
        for name, why in shed.items():
            rec = self.records[name]
            if name not in self.shed:
                self.shed[name] = why
                rec.reason = f"shed: {why}"
                self._decide(f"{name} shed: {why}", EventId.SERVICE_SHED, Severity.LOW, service=name, reason=why)
                await self.moves.shed_service(rec, why)
        for name in list(self.shed):
            if name in run:
                why = self.shed.pop(name)
                self._decide(
                    f"{name} restored (was shed: {why})",
                    EventId.SERVICE_RESTORED,
                    Severity.INFO,
                    service=name,
                    reason=f"{self.mode.value}: capacity available",
                )
                await self.moves.restore_service(self.records[name])

    # ---- thermal and power --------------------------------------------------------------------------
    def _govern(self) -> None:
        reading = self.reading
        j = junction(reading.zones if reading is not None else [], self.trip_fallback)
        self.junction_c, self.trip_c = j.temp_c, j.trip_c
        flags = reading.throttle if reading is not None else None
        hw = flags is not None and (flags.throttled or flags.soft_temp_limit)
        change = self.governor.update(j, hw)
        if change is not None:
            self._decide(
                f"thermal level {change[0]}: {change[1]}",
                EventId.THERMAL_LEVEL,
                Severity.LOW,
                level=change[0],
                reason=change[1],
                temp_c=j.temp_c,
                trip_c=j.trip_c,
            )
        base = self.modes_cfg.degraded_throttle if self.mode != Mode.NOMINAL else 0
        for rec in self.records.values():
            crit = rec.cfg.criticality
            level = (
                0
                if crit == "critical"
                else max(base, self.governor.level)
                if crit == "elastic"
                else max(0, self.governor.level - (self.governor.max_level - 1))
            )
            if self.throttles.get(rec.name, 0) != level:
                self.throttles[rec.name] = level
                why = (
                    (f"thermal level {self.governor.level}" if self.governor.level else f"mode {self.mode.value}")
                    if level
                    else "cleared"
                )
                self._decide(
                    f"{rec.name} throttle {level} ({why})",
                    EventId.THROTTLE_CHANGED,
                    Severity.INFO,
                    service=rec.name,
                    level=level,
                    reason=why,
                )
            if (
                rec.state == State.READY
                and rec.throttle_sent != level
                and self.moves.send_control(rec, {"op": "throttle", "level": level})
            ):
                rec.throttle_sent = level

    def budget_w(self) -> float | None:
        """The power budget of the current mode (None: no budget set)."""
        p = self.power_cfg
        budgets = {Mode.NOMINAL: p.budget_nominal_w, Mode.DEGRADED: p.budget_degraded_w, Mode.SAFE: p.budget_safe_w}
        value = budgets[self.mode]
        return float(value) if value is not None else None

    def _account(self, dt: float) -> None:
        rails = (self.reading.rails_mw or {}) if self.reading is not None else {}
        self.power.update(
            dt, board_power_w(rails), {r.name: r.cpu_percent for r in self.records.values() if r.pid is not None}
        )
        budget = self.budget_w()
        if self.power.over_budget(budget, self.power_cfg.over_budget_periods):
            self.power.over_periods = 0
            self.power_shed += 1
            self._decide(
                f"power {self.power.board_w:.2f} W over the {budget:g} W budget of {self.mode.value}: "
                f"shedding one more service",
                EventId.POWER_OVER_BUDGET,
                Severity.MEDIUM,
                power_w=self.power.board_w,
                budget_w=budget,
                shed=self.power_shed,
            )
        elif (
            self.power_shed
            and budget is not None
            and self.power.board_w is not None
            and self.power.board_w < 0.85 * budget
        ):
            self.under_periods += 1
            if self.under_periods >= 4 * self.power_cfg.over_budget_periods:
                self.under_periods = 0
                self.power_shed -= 1
        else:
            self.under_periods = 0

    # ---- watchdog ---------------------------------------------------------------------------------------
    def _pet(self, now: float) -> None:
        if self.watchdog is None or now - self._last_pet < self.wd_cfg.pet_period_s:
            return
        critical = [r for r in self.records.values() if r.cfg.criticality == "critical" and r.cfg.enabled]
        if all(r.state in (State.READY, State.REMOTE) for r in critical):
            with contextlib.suppress(Exception):
                self.watchdog.pet()
                self._last_pet = now

    def watchdog_reset(self) -> None:
        """The (simulated) watchdog reset the board: count it, persist it, hold SAFE past the limit."""
        self.resets += 1
        self._save_state()
        limit = self.wd_cfg.max_resets
        self._decide(
            f"watchdog reset #{self.resets} (limit {limit})",
            EventId.WATCHDOG_RESET,
            Severity.HIGH,
            resets=self.resets,
            limit=limit,
        )
        if self.resets >= limit:
            self.hold_safe = True

    def _initial_resets(self) -> int:
        """Watchdog resets carried over from earlier runs. A real board keeps counting; a simulated board
        starts fresh on each run unless its ``[hal]`` says ``resume`` (a laptop's bad day is not the board's)."""
        saved = self._load_state().get("watchdog_resets", 0)
        if isinstance(saved, bool) or not isinstance(saved, int) or saved < 0:
            saved = 0
        if not self.effects.injection.resume:  # a real board (no fault injection) always keeps its state
            if saved:
                log.info(
                    "simulated_board_fresh",
                    resets_not_carried=saved,
                    state_file=str(self.state_file),
                    msg=f"simulated board starts fresh: {saved} watchdog reset(s) of earlier runs not carried "
                    "over (flightos run --resume keeps them)",
                )
                self.resets = 0
                with contextlib.suppress(OSError):  # a full disk must not stop the kernel starting
                    self._save_state()
            return 0
        return saved

    def _load_state(self) -> dict[str, Any]:
        try:
            data = json.loads(self.state_file.read_text())
            return data if isinstance(data, dict) else {}
        except (OSError, ValueError):
            return {}

    def _save_state(self) -> None:
        self.state_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps({"watchdog_resets": self.resets}))
        os.replace(tmp, self.state_file)

    # ---- telemetry --------------------------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        """Cores, mode, thermal and power state, for status, telemetry and the run record."""
        reading = self.reading
        loads = {c.id: c.load_pct for c in reading.cores} if reading is not None else {}
        return {
            "mode": self.mode.value,
            "forced_mode": self.forced_mode.value if self.forced_mode else None,
            "hold_safe": self.hold_safe,
            "watchdog": {"armed": self.watchdog is not None, "resets": self.resets, **self.watchdog_facts},
            "junction_c": self.junction_c,
            "trip_c": self.trip_c,
            "thermal_level": self.governor.level,
            "edac": edac_status(reading),
            "power_w": self.power.board_w,
            "budget_w": self.budget_w(),
            "cores": [
                {
                    "id": c,
                    "state": h.state.value,
                    "reason": h.reason,
                    "load_pct": loads.get(c),
                    "forced": h.forced is not None,
                    "services": [r.name for r in self.records.values() if c in r.cores and r.pid],
                }
                for c, h in self.health.items()
            ],
            "energy_mj": {k: round(v, 1) for k, v in self.power.energy_mj.items()},
            "speed_factor": self.speed_factor,
            "selftest_worker_start_s": round(self.selftest.start_s, 3) if self.selftest.start_s is not None else None,
            "monitor": {
                "period_s": self.cfg.monitor_period_s,
                "ticks": self.ticks,
                "mean_tick_ms": round(1000 * self.tick_cpu_s / self.ticks, 3) if self.ticks else None,
            },
            "throttles": dict(self.throttles),
            "shed": dict(self.shed),
            "decisions": list(self.decisions[-10:]),
        }
