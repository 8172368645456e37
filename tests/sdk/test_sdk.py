"""The service SDK: argument validation, parameters, the persistent store, declaration errors."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import pytest

from flightos import BadArguments, Parameter, Service, Store, StoreError, command, periodic
from flightos.sdk.service import ServiceShape
from flightos.sdk.validation import validate


class Cam(Service):
    name = "cam"
    exposure_ms = Parameter(10, min=1, max=1000, doc="exposure")
    mode = Parameter("day", choices=["day", "night"])

    @command()
    async def capture(
        self, exposure_ms: int, gain: float = 1.0, mode: Literal["raw", "jpeg"] = "raw", tags: list[str] | None = None
    ) -> dict[str, object]:
        """Take a picture."""
        return {}

    @periodic(hz=2)
    async def tick(self) -> None:
        pass


def test_shape_collects_declarations() -> None:
    """Commands, periodic tasks and parameters are found on the class."""
    shape = ServiceShape.of(Cam)
    assert set(shape.commands) == {"capture"}
    assert shape.periodics["tick"].hz == 2.0
    assert set(shape.parameters) == {"exposure_ms", "mode"}
    assert shape.commands["capture"].spec.doc == "Take a picture."


def test_arguments_are_validated_before_the_handler() -> None:
    """Types, missing and unexpected arguments are all reported in one error."""
    spec = ServiceShape.of(Cam).commands["capture"].arguments
    assert validate("cam.capture", spec, {"exposure_ms": 5, "gain": 2}) == {"exposure_ms": 5, "gain": 2.0}
    with pytest.raises(BadArguments) as info:
        validate("cam.capture", spec, {"exposure_ms": "5", "mode": "png", "zoom": 2})
    text = str(info.value)
    assert "exposure_ms" in text and "mode" in text and "zoom" in text
    with pytest.raises(BadArguments, match="missing argument 'exposure_ms'"):
        validate("cam.capture", spec, {})
    with pytest.raises(BadArguments, match="tags"):
        validate("cam.capture", spec, {"exposure_ms": 1, "tags": [1]})


def test_parameters_check_type_bounds_and_choices() -> None:
    """A parameter refuses values of the wrong type, out of range, or not among its choices."""
    cam = Cam()
    assert cam.exposure_ms == 10
    cam.exposure_ms = 20
    assert cam.exposure_ms == 20
    for bad in ("20", 0, 1001, 2.5):
        with pytest.raises(BadArguments):
            cam.exposure_ms = bad  # type: ignore[assignment]
    with pytest.raises(BadArguments, match="not one of"):
        cam.mode = "dusk"


def test_declaration_mistakes_fail_at_import() -> None:
    """Sync handlers, reserved names and bad rates are refused when the class is written."""
    with pytest.raises(TypeError, match="async def"):
        command()(lambda self: None)
    with pytest.raises(TypeError, match="reserved"):

        class Bad(Service):
            @command()
            async def describe(self) -> None: ...

    with pytest.raises(ValueError, match="hz"):
        periodic(hz=0)


def test_store_survives_reopen_and_detects_corruption(tmp_path: Path) -> None:
    """Values persist across a reopen; a flipped byte is reported with the key's name."""
    path = tmp_path / "s.sqlite"
    s = Store(path)
    s.set("a", {"x": [1, 2]})
    s.set("b", 1)
    assert s.increment("b") == 2
    s.close()
    s = Store(path)
    assert s.get("a") == {"x": [1, 2]} and s.get("b") == 2 and s.keys() == ["a", "b"]
    s._db.execute("UPDATE kv SET value = x'c3' WHERE key = 'a'")
    with pytest.raises(StoreError, match="'a' failed its checksum"):
        s.get("a")
    assert s.delete("a") and s.get("a", "gone") == "gone"
    s.close()
