"""GPIO lines on Linux with libgpiod v2 (``gpiod`` >= 2): chips by label or path, lines by name or offset."""

from __future__ import annotations

import errno
from pathlib import Path
from typing import Any

from hal.devices.errors import DeviceError, from_os_error
from hal.devices.extras import load


def find_chip(gpiod: Any, device: str, chip: str) -> str:
    """The ``/dev/gpiochipN`` path of a chip given as a path, a ``gpiochipN`` name or its label."""
    if chip.startswith("/dev/"):
        return chip
    paths = sorted(Path("/dev").glob("gpiochip*"))
    labels = []
    for path in paths:
        if path.name == chip:
            return str(path)
        try:
            with gpiod.Chip(str(path)) as c:
                label = c.get_info().label
        except OSError:
            continue
        if label == chip:
            return str(path)
        labels.append(f"{path.name}={label}")
    raise DeviceError(device, f"no GPIO chip labelled {chip!r} (found: {', '.join(labels) or 'none'})", errno.ENODEV)


class GpiodLine:
    """One line requested from the kernel's GPIO character device (released on close)."""

    def __init__(self, name: str, chip: str, line: str | int, output: bool, active_low: bool, initial: int) -> None:
        gpiod = load("gpiod", device=name, kind="gpio", package="gpiod")
        from gpiod.line import Direction, Value  # the same package, loaded above

        self.name, self._value = name, Value
        path = find_chip(gpiod, name, chip)
        try:
            with gpiod.Chip(path) as c:
                self._offset = line if isinstance(line, int) else c.line_offset_from_id(line)
            settings = gpiod.LineSettings(
                direction=Direction.OUTPUT if output else Direction.INPUT,
                active_low=active_low,
                output_value=Value.ACTIVE if initial else Value.INACTIVE,
            )
            self._req: Any = gpiod.request_lines(path, consumer=f"flightos:{name}", config={self._offset: settings})
        except OSError as exc:
            raise from_os_error(name, f"request line {line!r} of {path}", exc) from None
        except ValueError as exc:  # gpiod's answer to a line name the chip does not have
            raise DeviceError(name, f"{path}: {exc}", errno.ENOENT) from None

    def get(self) -> int:
        """The line's logical value."""
        try:
            return 1 if self._req.get_value(self._offset) == self._value.ACTIVE else 0
        except OSError as exc:
            raise from_os_error(self.name, "get", exc) from None

    def set(self, value: int) -> None:
        """Drive the line active (1) or inactive (0)."""
        try:
            self._req.set_value(self._offset, self._value.ACTIVE if value else self._value.INACTIVE)
        except OSError as exc:
            raise from_os_error(self.name, "set", exc) from None

    def close(self) -> None:
        """Release the line."""
        self._req.release()
