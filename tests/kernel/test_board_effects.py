"""The board's fault-injection capability (hal.FaultInjection) and the kernel's BoardEffects over it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import hal
from flightos.bus.errors import BadArguments, ServiceUnavailable
from flightos.kernel.events import EventId
from flightos.kernel.health.faults import BoardEffects


@pytest.fixture
def sim() -> Iterator[hal.Board]:
    board = hal.open_board({"backend": "sim", "time_scale": 0, "load_source": "sim"})
    yield board
    board.close()


def test_the_simulator_has_fault_injection_and_a_real_board_does_not(sim: hal.Board, tmp_path: Path) -> None:
    assert isinstance(sim, hal.FaultInjection)
    assert hal.fault_injection(sim) is sim
    real = hal.open_board({"backend": "linux", "root": str(tmp_path)})
    assert not isinstance(real, hal.FaultInjection)
    null = hal.fault_injection(real)
    assert isinstance(null, hal.NoFaultInjection) and isinstance(null, hal.FaultInjection)
    assert null.events_since(0.0) == [] and null.core_state(0) == "ok" and null.resume
    with pytest.raises(hal.HalUnsupported, match="needs a simulated board; this target's backend is 'linux'"):
        null.inject("seu", {})


def test_every_new_timeline_entry_is_handed_to_telemetry_exactly_once(sim: hal.Board) -> None:
    """The monitor's own tick may take new entries first: telemetry still gets each of them, once."""
    events: list[tuple[Any, ...]] = []
    fx = BoardEffects(sim, {}, lambda *a, **kw: events.append(a))
    assert fx.take_timeline() == []
    fx.inject("seu", {"count": 2})  # inject() updates at once, as the monitor's tick would
    fx.update()  # the monitor's next tick: nothing new
    fx.inject("thermal-step", {"delta_c": 1.0})
    entries = fx.take_timeline()
    assert [e["kind"] for e in entries] == ["seu", "seu", "thermal_step"]
    assert fx.take_timeline() == []  # handed out once
    fx.update()
    assert fx.take_timeline() == []
    assert [a[0] for a in events].count(EventId.HAL_FAULT_INJECTED) == 2


def test_injection_errors_keep_their_command_meaning(sim: hal.Board, tmp_path: Path) -> None:
    fx = BoardEffects(sim, {}, lambda *a, **kw: None)
    with pytest.raises(BadArguments, match=r"^count: expected 1\.\.10000 upsets in one injection, got 20000$"):
        fx.inject("seu", {"count": 20000})
    with pytest.raises(BadArguments, match=r"^unknown fault 'bogus'; known: seu, sefi"):
        fx.inject("bogus", {})
    fx.inject("sefi", {"core": 1})
    assert fx.states[1] == "hung" and fx.hung_cores() == {1} and fx.core_state(1) == "hung"
    real = BoardEffects(hal.open_board({"backend": "linux", "root": str(tmp_path)}), {}, lambda *a, **kw: None)
    with pytest.raises(ServiceUnavailable, match="fault injection needs a simulated board"):
        real.inject("seu", {})
    assert not real.injects_faults and real.update() == [] and real.take_timeline() == [] and real.full_read_s == 0.0
