"""What a target tells thermwatch: the names of the devices it uses (each must be granted to it)."""

from __future__ import annotations

from typing import Annotated

from msgspec import Meta

from flightos import Options


class ThermwatchOptions(Options, frozen=True):
    """The device names thermwatch opens, as the target's ``[devices.<name>]`` tables call them."""

    sensor: Annotated[str, Meta(description="the i2c device of the plate's TMP102-compatible sensor")] = "plate"
    heater: Annotated[str, Meta(description="the gpio output that switches the plate's heater")] = "heater"
    radio: Annotated[str, Meta(description="the uart device of the radio that carries the reports")] = "radio"
