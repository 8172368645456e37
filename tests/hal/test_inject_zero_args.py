"""A zero the user typed is refused, not read as the default (`seu count=0` flipped a bit, `sel delta_ma=0` 200 mA)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import hal
from hal.injection import FaultArgumentError


@pytest.fixture
def sim() -> Iterator[hal.Board]:
    board = hal.open_board({"backend": "sim", "time_scale": 0, "load_source": "sim"})
    yield board
    board.close()


@pytest.mark.parametrize(
    ("fault", "args", "says"),
    [
        ("seu", {"count": 0}, "count: expected 1..10000 upsets in one injection, got 0"),
        ("seu", {"count": -3}, "count: expected 1..10000 upsets in one injection, got -3"),
        ("sel", {"delta_ma": 0}, "delta_ma: expected a current step > 0 mA, got 0"),
        ("sel", {"delta_ma": -50}, "delta_ma: expected a current step > 0 mA, got -50"),
    ],
)
def test_a_zero_or_negative_amount_is_refused(sim: hal.Board, fault: str, args: dict[str, int], says: str) -> None:
    with pytest.raises(FaultArgumentError) as err:
        hal.fault_injection(sim).inject(fault, args)
    assert str(err.value) == says


def test_the_defaults_still_apply_when_the_argument_is_left_out(sim: hal.Board) -> None:
    injection = hal.fault_injection(sim)
    assert injection.inject("seu", {}).startswith("1 bit flip(s)")
    assert injection.inject("sel", {}) == "latch-up of 200 mA"
