"""Errors of the device layer: one typed family a payload service can catch and act on."""

from __future__ import annotations

import errno as _errno

from hal.errors import HalError


class DeviceError(HalError):
    """A device transfer failed; ``errno`` is the OS error number (``ENXIO`` for an I²C NACK, ``EIO``…)."""

    def __init__(self, device: str, message: str, errno: int = _errno.EIO) -> None:
        super().__init__(f"{device}: {message} ({_errno.errorcode.get(errno, errno)})")
        self.device = device
        self.errno = errno
        self.reason = message


class DeviceTimeout(DeviceError):
    """A transfer did not finish within the device's timeout (a hung bus, a silent radio)."""

    def __init__(self, device: str, message: str) -> None:
        super().__init__(device, message, _errno.ETIMEDOUT)


class MissingExtra(DeviceError):
    """The library a hardware device needs is not installed; the message names the pip extra."""

    def __init__(self, device: str, kind: str, module: str, package: str) -> None:
        super().__init__(
            device,
            f"the {kind} backend needs the {package!r} package (import {module!r} failed): "
            f"pip install 'flightos[devices]'",
            _errno.ENOSYS,
        )
        self.package = package


def from_os_error(device: str, what: str, exc: OSError) -> DeviceError:
    """A library's OSError as a DeviceError that keeps its errno (ETIMEDOUT becomes DeviceTimeout)."""
    code = exc.errno if exc.errno is not None else _errno.EIO
    if code == _errno.ETIMEDOUT:
        return DeviceTimeout(device, f"{what}: {exc.strerror or exc}")
    return DeviceError(device, f"{what}: {exc.strerror or exc}", code)
