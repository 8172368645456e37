"""A simulated watchdog: same interface as the device one, expiry measured on the kernel's runnable clock.

The simulated board's watchdog must catch a kernel that stopped petting (a blocked loop, a crash), not a
laptop that was busy with other work: time the kernel spent waiting for a CPU does not count.
"""

from __future__ import annotations

from collections.abc import Callable

from hal.errors import HalError
from hal.sched import runnable_clock
from hal.watchdog import Watchdog


class SimWatchdog(Watchdog):
    """Expires when not petted within the timeout; the board then resets (see SimBoard)."""

    def __init__(self, max_timeout_s: float, clock: Callable[[], float] = runnable_clock) -> None:
        self.max_timeout_s = max_timeout_s
        self.clock = clock
        self._timeout: float | None = None
        self._last_pet = 0.0
        self.expirations = 0

    @property
    def is_open(self) -> bool:
        return self._timeout is not None

    @property
    def timeout_s(self) -> float | None:
        return self._timeout

    def open(self, timeout_s: float | None = None) -> None:
        if self._timeout is not None:
            raise HalError("simulated watchdog is already open")
        self._timeout = float(self.check_timeout(timeout_s if timeout_s is not None else 10.0))
        self._last_pet = self.clock()

    def pet(self) -> None:
        if self._timeout is None:
            raise HalError("simulated watchdog is not open")
        self._last_pet = self.clock()

    def close(self, disarm: bool = True) -> None:
        if disarm:
            self._timeout = None

    def expired(self) -> bool:
        """True (once per expiry) if the timeout passed without a pet; re-arms the countdown."""
        if self._timeout is None or self.clock() - self._last_pet <= self._timeout:
            return False
        self.expirations += 1
        self._last_pet = self.clock()
        return True
