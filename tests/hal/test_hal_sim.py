"""The simulated rad-hard target: physics, faults, injection, and the same reading as a board."""

from __future__ import annotations

import math
import subprocess
import sys
from typing import Any

import msgpack
import pytest

import hal
from hal.affinity import set_process_affinity, thread_affinities
from hal.backends.sim import SimBoard
from hal.backends.sim.thermal import KELVIN, equilibrium


def sim(**overrides: Any) -> SimBoard:
    """A manually-driven sim board (no wall-clock coupling)."""
    config: dict[str, Any] = {"backend": "sim", "time_scale": 0, "load_source": "sim"}
    config.update(overrides)
    board = hal.open_board(config)
    assert isinstance(board, SimBoard)
    return board


def natural_seus(board: SimBoard) -> int:
    return sum(1 for e in board.events_since(0) if e.kind == "seu" and not e.detail.get("injected"))


# ---- reading ---------------------------------------------------------------------------------
def test_sim_reads_like_a_real_board() -> None:
    """read() gives 4 cores at 250 MHz, zones with trips, EDAC, rails, and nothing missing."""
    board = sim()
    assert board.identity.backend == "sim" and board.identity.cores == 4
    assert board.core_ids() == [0, 1, 2, 3]
    for core in range(4):
        board.set_load(core, 50.0)
    board.read()
    board.step(60)
    reading = board.read()
    assert reading.missing == []
    assert [c.freq_mhz for c in reading.cores] == [250.0] * 4
    assert [c.load_pct for c in reading.cores] == [50.0] * 4
    zone = reading.zone("cpu-thermal")
    assert zone is not None and zone.trip("passive") == 95.0 and zone.trip("critical") == 110.0
    assert reading.edac == hal.EdacCounts(0, 0)
    assert reading.rails_mw["VDD_CORE"] == pytest.approx(600.0)
    assert reading.extras["sim_time_s"] == 60.0
    as_dict = reading.to_dict()
    assert msgpack.unpackb(msgpack.packb(as_dict), strict_map_key=False) == as_dict
    board.close()


def test_virtual_cores_map_onto_host_cpus() -> None:
    """Virtual core i runs on host_cpus[i % n], and pinning a real process there really applies."""
    board = sim(cores=4, host_cpus=[0, 1])
    assert [board.host_cpus(c) for c in range(4)] == [frozenset({c % 2}) for c in range(4)]
    child = subprocess.Popen(
        [sys.executable, "-c", "import sys; sys.stdin.readline()"], stdin=subprocess.PIPE, text=True
    )
    try:
        target = board.host_cpus(3) if len(__import__("os").sched_getaffinity(0)) > 1 else {0}
        set_process_affinity(child.pid, target)
        assert set(thread_affinities(child.pid).values()) == {frozenset(target)}
    finally:
        child.communicate("\n", timeout=10)


def test_time_scale_follows_wall_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    """With time_scale=100, 3 wall seconds between reads advance the sim by 300 s."""
    clock = [1000.0]
    monkeypatch.setattr("hal.backends.sim.board.time.monotonic", lambda: clock[0])
    board = sim(time_scale=100.0)
    board.read()
    clock[0] += 3.0
    assert board.read().extras["sim_time_s"] == pytest.approx(300.0)


# ---- physics ---------------------------------------------------------------------------------
def test_steady_state_matches_analytic_equilibrium() -> None:
    """In constant sun and load the radiator and junction settle within 1 K of the analytic values."""
    board = sim()
    board.set_sun(True)
    for core in range(4):
        board.set_load(core, 75.0)
    board.step(8 * 3600)
    power = sum(board.power_w().values())
    tj, tr = equilibrium(board.thermal_params, power, board.thermal_params.q_ext_w(True))
    assert abs(board.thermal.t_radiator_k - tr) < 1.0
    assert abs(board.thermal.t_junction_k - tj) < 1.0
    assert -40 < tr - KELVIN < 80  # a plausible radiator temperature


def test_cools_in_eclipse_warms_in_sun() -> None:
    """Over an orbit the radiator cools through every eclipse and warms through every sunlit arc."""
    board = sim()
    board.step(6 * board.orbit.period_s)  # settle into the periodic regime
    samples: list[tuple[bool, float]] = []
    for _ in range(int(2 * board.orbit.period_s // 30) + 1):
        board.step(30)
        samples.append((board.sunlit(), board.thermal.radiator_c))
    arcs: list[list[tuple[bool, float]]] = [[samples[0]]]
    for sample in samples[1:]:
        if sample[0] == arcs[-1][-1][0]:
            arcs[-1].append(sample)
        else:
            arcs.append([sample])
    full = arcs[1:-1]  # complete sunlit and eclipse arcs
    assert {a[0][0] for a in full} == {True, False}
    for arc in full:
        change = arc[-1][1] - arc[0][1]
        assert change > 0.5 if arc[0][0] else change < -0.5


def test_load_raises_junction_temperature() -> None:
    """A fully loaded board runs hotter at the junction than an idle one, by about dP x R."""
    idle, busy = sim(), sim()
    for core in range(4):
        busy.set_load(core, 100.0)
    idle.step(300)
    busy.step(300)
    rise = busy.thermal.junction_c - idle.thermal.junction_c
    assert rise > 0.5 * 0.8 * busy.thermal_params.r_jr_k_w
    assert busy.read().zone("cpu-thermal").temp_c > idle.read().zone("cpu-thermal").temp_c  # type: ignore[union-attr]


def test_thermal_step() -> None:
    """thermal_step(delta_c) jumps the junction; thermal_step(delta_w) heats it persistently."""
    board = sim()
    before = board.thermal.junction_c
    board.thermal_step(delta_c=30.0)
    assert board.thermal.junction_c == pytest.approx(before + 30.0)
    board.step(600)
    cool = board.thermal.junction_c
    board.thermal_step(delta_w=2.0)
    board.step(600)
    assert board.thermal.junction_c > cool + 3.0
    assert [e.kind for e in board.events_since(0)] == ["thermal_step", "thermal_step"]


# ---- faults ----------------------------------------------------------------------------------
def test_same_seed_same_timeline_regardless_of_stepping() -> None:
    """Two boards with one seed give the same fault timeline, even when stepped differently."""
    a = sim(profile="cots", seed=7, memory_bits=2**24, sefi_rate_per_day=0.5, sel_rate_per_day=0.5)
    b = sim(profile="cots", seed=7, memory_bits=2**24, sefi_rate_per_day=0.5, sel_rate_per_day=0.5)
    a.step(3 * 86400)
    for _ in range(72):
        b.step(3600)
    assert [e.to_dict() for e in a.events_since(0)] == [e.to_dict() for e in b.events_since(0)]
    assert len(a.events_since(0)) > 10
    assert a.identity.model.startswith("SimCOTS ") and sim(seed=7).identity.model.startswith("SimRadHard ")
    c = sim(profile="cots", seed=8, memory_bits=2**24, sefi_rate_per_day=0.5, sel_rate_per_day=0.5)
    c.step(3 * 86400)
    assert [e.to_dict() for e in c.events_since(0)] != [e.to_dict() for e in a.events_since(0)]


def test_a_simulated_day_has_the_stated_orbit_average_of_upsets() -> None:
    """A COTS day over 256 MiB gives bits x 2e-7 upsets (429) within 4 sigma, SAA included (it gave 1,505)."""
    board = sim(profile="cots", seed=1)
    board.step(86400)
    stated = 2**31 * 2e-7
    count = natural_seus(board)
    print(f"upsets in one simulated day: {count} (stated {stated:.0f}; SAA share {board.saa_fraction:.3f})")
    assert abs(count - stated) < 4 * math.sqrt(stated)
    in_saa = sum(1 for e in board.events_since(0) if e.kind == "seu" and e.detail["saa"])
    assert in_saa > count * board.saa_fraction * 2  # the SAA still takes far more than its share of time


def test_seu_count_within_poisson_interval() -> None:
    """Outside the SAA, SEUs over 10 days match bits x the quiet rate x days within a 4-sigma interval."""
    bits, days = 2**28, 10
    board = sim(profile="cots", memory_bits=bits, step_s=60.0, seed=3)
    board.set_saa(False)
    board.step(days * 86400)
    share = board.saa_fraction
    expected = bits * 2e-7 * days / (1 - share + share * 20.0)
    assert abs(natural_seus(board) - expected) < 4 * math.sqrt(expected)


def test_saa_multiplies_the_rate() -> None:
    """Inside the SAA the SEU rate is saa_multiplier times the rate outside it."""
    bits = 2**24
    board = sim(profile="cots", memory_bits=bits, saa_multiplier=20.0, seed=5)
    board.set_saa(True)
    board.step(86400)
    share = board.saa_fraction
    expected = bits * 2e-7 * 20.0 / (1 - share + share * 20.0)
    assert abs(natural_seus(board) - expected) < 4 * math.sqrt(expected)
    follow = sim(profile="cots", memory_bits=2**28, seed=5, step_s=60.0)
    follow.step(5 * 86400)
    in_saa = [e for e in follow.events_since(0) if e.kind == "seu" and e.detail["saa"]]
    saa_share = sum(follow.orbit.in_saa(t) for t in range(0, 5 * 86400, 60)) / (5 * 1440)
    per_s_in = len(in_saa) / (saa_share * 5 * 86400)
    per_s_out = (natural_seus(follow) - len(in_saa)) / ((1 - saa_share) * 5 * 86400)
    assert 12 < per_s_in / per_s_out < 30


def test_single_upset_corrected_at_scrub_double_uncorrectable() -> None:
    """One upset shows as corrected after the next scrub; two in one codeword as uncorrectable."""
    board = sim()
    board.inject_seu(address=5)
    assert board.read().edac == hal.EdacCounts(0, 0)  # not seen before the scrub
    assert board.next_scrub_in_s == 60.0
    board.step(60)
    assert board.read().edac == hal.EdacCounts(1, 0)
    board.inject_seu(address=7, bits=[0, 8])  # nibbles 0 and 2: both in RS codeword 0
    board.step(60)
    assert board.read().edac == hal.EdacCounts(1, 1)
    kinds = [e.kind for e in board.events_since(0)]
    assert kinds == ["seu", "edac_scrub", "seu", "edac_scrub"]
    with pytest.raises(hal.HalError):
        board.inject_seu(address=-1)
    with pytest.raises(hal.HalError, match="bits must be"):
        board.inject_seu(address=1, bits=[32])


@pytest.mark.parametrize(
    ("bits", "rs", "secded"),
    [
        ([4, 5, 6, 7], "corrected", "uncorrectable"),  # a burst inside one 4-bit symbol
        ([3, 4], "corrected", "uncorrectable"),  # adjacent nibbles lie in different codewords
        ([0, 8], "uncorrectable", "uncorrectable"),  # two symbols of one codeword
        ([9], "corrected", "corrected"),
    ],
)
def test_reed_solomon_corrects_a_burst_in_a_symbol_that_secded_cannot(bits: list[int], rs: str, secded: str) -> None:
    """The GR740-like target's SDRAM code corrects any error inside one nibble per codeword; SECDED one bit."""
    outcomes = {}
    for code in ("rs", "secded"):
        board = sim(edac_code=code)
        board.inject(fault="seu", args={"address": 42, "bits": bits})
        board.step(60)
        edac = board.read().edac
        assert edac is not None and edac.corrected + edac.uncorrected == 1
        outcomes[code] = "corrected" if edac.corrected else "uncorrectable"
    assert outcomes == {"rs": rs, "secded": secded}


def test_edac_code_follows_the_profile_and_natural_double_hits() -> None:
    """radhard has RS, cots SECDED; a natural double-bit hit (neighbouring cells) is corrected only by RS."""
    assert sim().edac.code.name == "rs" and sim(profile="cots").edac.code.name == "secded"
    outcomes = {}
    for code in ("rs", "secded"):
        board = sim(profile="cots", edac_code=code, memory_bits=2**28, double_bit_fraction=1.0, seed=4)
        board.set_saa(False)
        board.step(86400)
        outcomes[code] = board.read().edac
    rs, secded = outcomes["rs"], outcomes["secded"]
    assert rs is not None and secded is not None
    assert rs.uncorrected == 0 and rs.corrected > 5
    assert secded.corrected == 0 and secded.uncorrected == rs.corrected


def test_sefi_hangs_core_until_reset() -> None:
    """A SEFI stops a core's work (100 % busy, no progress) until reset_core."""
    board = sim()
    board.inject_sefi(2)
    before = board.core_progress(2)
    board.read()
    board.step(100)
    assert board.core_progress(2) == before and board.core_progress(1) == 100.0
    assert board.core_state(2) == "hung"
    assert board.read().core(2).load_pct == 100.0  # type: ignore[union-attr]
    with pytest.raises(hal.HalCoreHung):
        board.run_on_core(2, lambda: 1)
    board.reset_core(2)
    board.step(10)
    assert board.core_progress(2) == before + 10.0
    assert board.run_on_core(2, lambda: 42) == 42


def test_sel_persists_then_limiter_trips() -> None:
    """A small latch-up persists until power cycle; a large one trips the limiter which cycles power."""
    board = sim(limiter_margin_ma=150.0)
    base = board.current_ma()
    board.inject_sel(delta_ma=100.0)
    board.step(3600)
    assert board.current_ma() == pytest.approx(base + 100.0)
    board.power_cycle()
    assert board.current_ma() == pytest.approx(base)
    board.inject_sel(delta_ma=400.0)
    board.step(1)
    assert board.sel_ma == 0.0 and board.power_cycles == 2
    kinds = [e.kind for e in board.events_since(0)]
    assert kinds[-3:] == ["sel", "limiter_trip", "power_cycle"]


def test_cots_profile_has_latchups() -> None:
    """The COTS profile latches up about once per 300 device-days; radhard never does."""
    days = 1500
    cots = sim(profile="cots", memory_bits=2**10, step_s=3600.0, seed=1, sefi_rate_per_day=0)
    cots.step(days * 86400)
    latchups = sum(1 for e in cots.events_since(0) if e.kind == "sel")
    assert 1 <= latchups <= 13  # Poisson(5): outside this range < 1 % of seeds
    radhard = sim(memory_bits=2**10, step_s=3600.0, seed=1)
    radhard.step(300 * 86400)
    assert not any(e.kind == "sel" for e in radhard.events_since(0))


def test_cots_profile_hangs_a_core_about_every_hundred_days() -> None:
    """COTS SEFIs (Linux hangs) come about once per 100 device-days; the rad-hard rate is ~6,700x lower."""
    days = 1000
    cots = sim(profile="cots", memory_bits=2**10, step_s=3600.0, seed=2, sel_rate_per_day=0)
    assert cots.settings["sefi_rate_per_day"] == 1e-2
    cots.step(days * 86400)
    hangs = [e for e in cots.events_since(0) if e.kind == "sefi"]
    print(f"COTS SEFIs in {days} simulated days: {len(hangs)} (expected {days * 1e-2:g})")
    assert 3 <= len(hangs) <= 20  # Poisson(10): outside this range < 0.5 % of seeds
    assert any(cots.core_state(c) == "hung" for c in cots.core_ids())  # nothing resets them here
    radhard = sim(memory_bits=2**10, step_s=3600.0, seed=2)
    assert radhard.settings["sefi_rate_per_day"] == 1.5e-6
    radhard.step(days * 86400)
    assert not any(e.kind == "sefi" for e in radhard.events_since(0))


def test_fail_core_and_hotplug() -> None:
    """A failed core goes offline for good; other cores can be offlined and brought back."""
    board = sim()
    board.fail_core(3)
    assert [c.online for c in board.read().cores] == [True, True, True, False]
    assert board.can_offline(3, online=True)[0] is False
    with pytest.raises(hal.HalUnsupported, match="failed"):
        board.set_core_online(3, True)
    assert board.can_offline(0)[0] is False
    board.set_core_online(2, False)
    assert board.core_state(2) == "offline"
    board.set_core_online(2, True)
    assert board.core_state(2) == "ok"


def test_sim_watchdog_resets_when_not_petted() -> None:
    """An unpetted simulated watchdog resets the board; petting in time does not."""
    board = sim()
    now = [0.0]
    wd = board.watchdog()
    wd.clock = lambda: now[0]  # type: ignore[attr-defined]
    wd.open(10)
    now[0] = 9.0
    wd.pet()
    now[0] = 18.0
    board.step(1)
    assert board.power_cycles == 0
    now[0] = 30.0
    board.step(1)
    assert board.power_cycles == 1 and "watchdog_reset" in [e.kind for e in board.events_since(0)]
    wd.close()
    with pytest.raises(hal.HalError, match="maximum of 60 s"):
        board.watchdog().open(120)


@pytest.mark.parametrize(
    ("config", "key", "text"),
    [
        ({"cores": "x"}, "cores", "hal.cores: expected a positive integer, got 'x'"),
        ({"sead": 1}, "sead", "hal.sead: unknown key"),
        ({"host_cpus": [-1]}, "host_cpus", "hal.host_cpus:"),
        ({"profile": "leo"}, "profile", "hal.profile:"),
        ({"time_scale": -2}, "time_scale", "hal.time_scale:"),
        ({"seu_rate_per_bit_day": "lots"}, "seu_rate_per_bit_day", "hal.seu_rate_per_bit_day:"),
        ({"sel_min_ma": 600}, "sel_max_ma", "hal.sel_max_ma:"),
        ({"edac_code": "hamming"}, "edac_code", "hal.edac_code:"),
        ({"word_bits": 30}, "word_bits", "hal.word_bits:"),
        ({"word_bits": 128}, "edac_interleave", "hal.edac_interleave:"),
    ],
)
def test_sim_config_errors_name_the_key(config: dict[str, Any], key: str, text: str) -> None:
    """Bad sim keys raise HalConfigError naming the key."""
    with pytest.raises(hal.HalConfigError) as info:
        hal.open_board({"backend": "sim", **config})
    assert info.value.key == key and str(info.value).startswith(text)
