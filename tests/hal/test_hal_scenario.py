"""Scenarios: loading and validation errors, due() ordering, every action on a SimBoard, the runner."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import hal
from hal.backends.sim import SimBoard
from hal.scenario import ACTIONS, Event, Scenario, ScenarioError, ScenarioRunner, load, loads

SCENARIOS = Path(__file__).resolve().parents[2] / "targets" / "scenarios"


@pytest.fixture
def board() -> Iterator[SimBoard]:
    b = hal.open_board({"backend": "sim", "time_scale": 0, "load_source": "sim"})
    assert isinstance(b, SimBoard)
    yield b
    b.close()


def scenario_of(*events: dict[str, Any], time: str = "sim") -> Scenario:
    lines = ["[scenario]", 'name = "t"', f'time = "{time}"']
    for e in events:
        lines.append("[[event]]")
        for key, value in e.items():
            if isinstance(value, bool):
                lines.append(f"{key} = {'true' if value else 'false'}")
            elif isinstance(value, str):
                lines.append(f'{key} = "{value}"')
            else:
                lines.append(f"{key} = {value}")
    return loads("\n".join(lines), "t.toml")


# ---- loading ---------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["saa-pass", "eclipse-hot-payload", "core-failure"])
def test_shipped_scenarios_load_and_run(name: str, board: SimBoard) -> None:
    """The three scenarios in targets/scenarios load, check against a 4-core sim and run cleanly."""
    scenario = load(SCENARIOS / f"{name}.toml")
    assert scenario.name == name and scenario.time == "sim" and scenario.events
    runner = ScenarioRunner(scenario, board)
    done = runner.run_until(scenario.end_s + 60)
    assert runner.done and len(done) == len(scenario.events)
    assert not any(": failed:" in line for line in done)


def test_every_shipped_scenario_is_tested() -> None:
    assert sorted(p.stem for p in SCENARIOS.glob("*.toml")) == ["core-failure", "eclipse-hot-payload", "saa-pass"]


def test_error_names_file_event_and_key(tmp_path: Path) -> None:
    """The example from the docs: a bad core id is reported with file, event index and key."""
    path = tmp_path / "scenario.toml"
    path.write_text(
        '[scenario]\nname = "x"\n'
        '[[event]]\nat = 1\naction = "saa"\non = true\n'
        '[[event]]\nat = 2\naction = "seu"\n'
        '[[event]]\nat = 3\naction = "sefi"\ncore = "x"\n'
    )
    with pytest.raises(ScenarioError) as info:
        load(path)
    assert str(info.value) == f"{path}: event[2].core: expected an integer core id, got 'x'"
    assert isinstance(info.value, ValueError) and isinstance(info.value, hal.HalError)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[[event]]\nat = 1\naction = "melt"', "t.toml: event[0].action: expected one of seu, sefi"),
        ('[[event]]\nat = 1\naction = "sefi"\ncolour = 2', "t.toml: event[0].colour: unknown key for action 'sefi'"),
        ('[[event]]\naction = "sefi"', "t.toml: event[0].at: missing"),
        ('[[event]]\nat = -1\naction = "sefi"', "t.toml: event[0].at: expected a time >= 0"),
        ('[[event]]\nat = "soon"\naction = "sefi"', "t.toml: event[0].at: expected a number, got 'soon'"),
        ("[[event]]\nat = 1", "t.toml: event[0].action: missing"),
        ('[[event]]\nat = 1\naction = "reset_core"', "t.toml: event[0].core: missing: action 'reset_core' needs it"),
        ('[[event]]\nat = 1\naction = "saa"\non = 1', "t.toml: event[0].on: expected true, false or 'auto', got 1"),
        ('[[event]]\nat = 1\naction = "load"\npct = 120\ncore = 1', "t.toml: event[0].pct: expected a load between"),
        ('[[event]]\nat = 1\naction = "load"\npct = 50', "t.toml: event[0].core: action 'load' needs exactly one"),
        ('[[event]]\nat = 1\naction = "thermal_step"', "t.toml: event[0].delta_w: action 'thermal_step' needs"),
        ('[[event]]\nat = 1\naction = "seu"\ncount = 0', "t.toml: event[0].count: expected an integer >= 1, got 0"),
        ('[[event]]\nat = 1\naction = "sel"\ndelta_ma = -5', "t.toml: event[0].delta_ma: expected a number > 0"),
        ('[[event]]\nat = 1\naction = "load"\npct = 5\ncores = [1, "a"]', "t.toml: event[0].cores[1]: expected"),
        ('[scenario]\ntime = "lunar"', "t.toml: scenario.time: expected 'sim' or 'wall', got 'lunar'"),
        ('[scenario]\nauthor = "me"', "t.toml: scenario.author: unknown key"),
        ("[events]\nat = 1", "t.toml: events: unknown table"),
        ("event = 3", "t.toml: event: expected [[event]] entries"),
        ("[[event]", "t.toml: not valid TOML"),
    ],
)
def test_validation_errors(text: str, message: str) -> None:
    """Each mistake is rejected with a message that starts with file, location and key."""
    with pytest.raises(ScenarioError) as info:
        loads(text, "t.toml")
    assert str(info.value).startswith(message), str(info.value)


def test_unreadable_file_and_cores_checked_against_the_board(tmp_path: Path, board: SimBoard) -> None:
    with pytest.raises(ScenarioError, match="cannot read"):
        load(tmp_path / "absent.toml")
    scenario = scenario_of({"at": 1, "action": "core_fail", "core": 7})
    with pytest.raises(ScenarioError, match=r"t.toml: event\[0\].core: core 7 does not exist on this board"):
        ScenarioRunner(scenario, board)


def test_board_without_fault_injection_is_refused_by_name(tmp_path: Path) -> None:
    """Scenarios reach the board through hal.FaultInjection: a real board is refused, naming it, before anything."""
    linux = hal.open_board({"backend": "linux", "root": str(tmp_path)})
    try:
        with pytest.raises(
            ScenarioError,
            match=r"t.toml: event\[0\] sefi at 5 s needs fault injection, which "
            r"the 'linux' board \(generic Linux\) does not have",
        ):
            ScenarioRunner(scenario_of({"at": 5, "action": "sefi", "core": 0}), linux)
        with pytest.raises(
            ScenarioError,
            match=r"t\.toml: scenario\.time: 'sim' counts simulated time, which "
            r"the 'linux' board",
        ):
            ScenarioRunner(scenario_of(), linux)
        assert ScenarioRunner(scenario_of(time="wall"), linux).advance() == []  # nothing to inject: it runs
        s = scenario_of({"at": 0, "action": "seu"})
        assert "failed: fault injection needs a simulated board" in s.apply(s.events[0], linux)
    finally:
        linux.close()


def test_defaults_and_every_action_documented() -> None:
    """Name defaults to the file stem, time to 'sim'; an empty scenario has no events."""
    s = loads("", "/x/quiet.toml")
    assert (s.name, s.time, s.events, s.end_s) == ("quiet", "sim", [], 0.0)
    assert set(ACTIONS) == {
        "seu", "sefi", "reset_core", "sel", "power_cycle", "core_fail", "thermal_step", "saa", "sun", "load",
    }  # fmt: skip
    docs = (Path(__file__).resolve().parents[2] / "docs" / "scenarios.md").read_text()
    for action in ACTIONS:
        assert f"`{action}`" in docs


# ---- due ---------------------------------------------------------------------------------------
def test_due_orders_by_time_then_file_order() -> None:
    """Events sort by time (file order on ties); due() is the half-open window [t_from, t_to)."""
    s = scenario_of(
        {"at": 300, "action": "sefi", "core": 2},
        {"at": 120.0, "action": "saa", "on": True},
        {"at": 120, "action": "seu", "count": 3},
        {"at": 0, "action": "sun", "on": False},
    )
    assert [(e.at, e.index) for e in s.events] == [(0, 3), (120, 1), (120, 2), (300, 0)]
    assert [e.index for e in s.due(0, 120)] == [3]
    assert [e.index for e in s.due(120, 300)] == [1, 2]
    assert [e.index for e in s.due(0, 301)] == [3, 1, 2, 0]
    assert s.due(301, 1e9) == [] and s.due(50, 50) == []
    assert s.events[1] == Event(index=1, at=120.0, action="saa", args={"on": True})


# ---- apply: each action changes what read()/events_since() shows -----------------------------------
def apply(board: SimBoard, **event: Any) -> str:
    s = scenario_of({"at": 0, **event})
    return s.apply(s.events[0], board)


def kinds(board: SimBoard) -> list[str]:
    return [e.kind for e in board.events_since(0)]


def test_apply_seu_shows_in_edac(board: SimBoard) -> None:
    text = apply(board, action="seu", count=5)
    assert text == "event[0] seu at 0 s: 5 SEU bit flip(s) in random words"
    apply(board, action="seu", address=10, bits=[0, 8])  # two nibbles of one RS codeword
    board.step(60)  # one scrub
    edac = board.read().edac
    assert edac is not None and edac.corrected == 5 and edac.uncorrected == 1
    assert kinds(board).count("seu") == 6


def test_apply_sefi_and_reset_core(board: SimBoard) -> None:
    assert apply(board, action="sefi", core=2).endswith("SEFI: core 2 hung")
    board.read()
    board.step(10)
    reading = board.read()
    assert reading.extras["core2_state"] == "hung" and reading.cores[2].load_pct == 100.0
    assert apply(board, action="reset_core", core=2).endswith("core 2 reset (now ok)")
    assert board.read().extras["core2_state"] == "ok"
    assert kinds(board) == ["sefi", "core_reset"]
    assert "random" not in apply(board, action="sefi")  # no core: a random running one
    assert "hung" in apply(board, action="sefi")


def test_apply_sel_trips_the_limiter(board: SimBoard) -> None:
    assert apply(board, action="sel", delta_ma=100).endswith("latch-up: +100 mA (total 100 mA)")
    assert board.read().extras["sel_ma"] == 100.0  # under the 150 mA margin: it stays
    apply(board, action="sel")  # +200 mA: over the margin
    board.step(1)
    assert kinds(board) == ["sel", "sel", "limiter_trip", "power_cycle"]
    assert board.read().extras["sel_ma"] == 0.0


def test_apply_power_cycle_and_core_fail(board: SimBoard) -> None:
    apply(board, action="power_cycle", reason="test")
    assert board.read().extras["power_cycles"] == 1
    assert board.events_since(0)[-1].detail["reason"] == "test"  # the board's timeline says who cycled it
    assert apply(board, action="core_fail", core=3).endswith("core 3 failed permanently")
    reading = board.read()
    assert not reading.cores[3].online and reading.extras["core3_state"] == "failed"
    assert kinds(board) == ["power_cycle", "core_failed"]
    # A failure is described, not raised: the kernel's loop keeps going.
    assert ": failed: " in apply(board, action="reset_core", core=9)


def test_apply_thermal_step(board: SimBoard) -> None:
    before = board.read().zone("cpu-thermal")
    apply(board, action="thermal_step", delta_c=15.0)
    after = board.read().zone("cpu-thermal")
    assert before is not None and after is not None and after.temp_c is not None and before.temp_c is not None
    assert after.temp_c == pytest.approx(before.temp_c + 15.0, abs=0.01)
    assert apply(board, action="thermal_step", delta_w=1.5).endswith("thermal step +1.5 W")
    assert board.read().rails_mw["EXTRA"] == 1500.0
    assert kinds(board) == ["thermal_step", "thermal_step"]


def test_apply_saa_and_sun(board: SimBoard) -> None:
    assert apply(board, action="saa", on=True).endswith("SAA forced on")
    assert apply(board, action="sun", on=False).endswith("eclipse forced")
    extras = board.read().extras
    assert extras["in_saa"] is True and extras["sunlit"] is False
    apply(board, action="sun", on="auto")
    assert board.read().extras["sunlit"] is True  # t = 0 is sunlit on the default orbit
    assert kinds(board) == ["saa_override", "sun_override", "sun_override"]


def test_apply_load(board: SimBoard) -> None:
    board.read()
    assert apply(board, action="load", cores=[2, 3], pct=80.0).endswith("load 80 % on core(s) 2, 3")
    board.step(10)
    assert [c.load_pct for c in board.read().cores] == pytest.approx([0.0, 0.0, 80.0, 80.0], abs=0.5)
    host = hal.open_board({"backend": "sim", "time_scale": 0})
    assert isinstance(host, SimBoard)
    try:
        assert "no effect on readings" in apply(host, action="load", core=1, pct=50.0)
    finally:
        host.close()


# ---- runner ------------------------------------------------------------------------------------
def test_runner_applies_each_event_once_in_order(board: SimBoard) -> None:
    """advance(now) applies what came due since the last call; nothing twice; board time by default."""
    s = scenario_of(
        {"at": 0, "action": "saa", "on": True},
        {"at": 100, "action": "sefi", "core": 1},
        {"at": 100, "action": "seu", "count": 2},
        {"at": 250, "action": "reset_core", "core": 1},
    )
    runner = ScenarioRunner(s, board)
    assert runner.advance() == ["event[0] saa at 0 s: SAA forced on"]  # now = board.sim_time = 0
    assert runner.advance(99.9) == []
    assert [t.split(":")[0] for t in runner.advance(120)] == ["event[1] sefi at 100 s", "event[2] seu at 100 s"]
    assert runner.advance(120) == [] and not runner.done
    board.advance_to(300)
    assert len(runner.advance()) == 1 and runner.done and runner.pending == []
    assert [a.t_s for a in runner.applied] == [0.0, 120.0, 120.0, 300.0]


def test_run_until_hits_exact_sim_times(board: SimBoard) -> None:
    s = scenario_of({"at": 35, "action": "sefi", "core": 2}, {"at": 95, "action": "reset_core", "core": 2})
    runner = ScenarioRunner(s, board)
    runner.run_until(200)
    assert board.sim_time == 200
    assert [(e.t_s, e.kind) for e in board.events_since(0)] == [(35.0, "sefi"), (95.0, "core_reset")]


def test_wall_time_runner(board: SimBoard) -> None:
    """time = 'wall' counts seconds since the runner started, on the given clock."""
    now = [1000.0]
    s = scenario_of({"at": 5, "action": "saa", "on": True}, time="wall")
    runner = ScenarioRunner(s, board, clock=lambda: now[0])
    assert runner.advance() == []
    now[0] = 1005.0
    assert runner.advance() == ["event[0] saa at 5 s: SAA forced on"]
    with pytest.raises(hal.HalError, match="time = 'sim'"):
        runner.run_until(10)
