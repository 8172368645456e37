"""`flightos inject` of an unknown fault names the device faults too; a real board refuses device faults."""

from __future__ import annotations

from pathlib import Path

import pytest

import hal
from flightos.bus.errors import BadArguments, ServiceUnavailable
from flightos.kernel.health.faults import BoardEffects


def test_an_unknown_fault_lists_the_device_faults_as_well(tmp_path: Path) -> None:
    """Was: 'known: seu, sefi, ..., sun', without i2c-nack, gpio-stuck... that the same command takes."""
    board = hal.open_board({"backend": "sim", "time_scale": 0, "load_source": "sim"})
    try:
        fx = BoardEffects(board, {}, lambda *a, **kw: None, runtime_dir=tmp_path)
        with pytest.raises(BadArguments) as err:
            fx.inject("i2c-nak", {"device": "plate"})
    finally:
        board.close()
    message = str(err.value)
    assert message.startswith("unknown fault 'i2c-nak'; known: seu, sefi")
    for fault in (
        "i2c-nack",
        "i2c-hang",
        "uart-bit-errors",
        "uart-dropout",
        "gpio-stuck",
        "can-bus-off",
        "device-clear",
    ):
        assert fault in message


def test_a_real_board_refuses_device_faults_as_unavailable(tmp_path: Path) -> None:
    real = BoardEffects(hal.open_board({"backend": "linux", "root": str(tmp_path)}), {}, lambda *a, **kw: None)
    with pytest.raises(ServiceUnavailable, match="device faults need simulated devices; this target's backend is"):
        real.inject("i2c-nack", {"device": "plate"})
    with pytest.raises(BadArguments, match="unknown fault 'meteor'"):
        real.inject("meteor", {})
