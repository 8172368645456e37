"""The interface every backend implements (linux, rpi, jetson, sim)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from types import TracebackType

from hal.types import BoardIdentity, BoardReading, WatchdogInfo
from hal.watchdog import Watchdog


class Board(ABC):
    """A board: its cores, one-call snapshots, hotplug where allowed, and its watchdog."""

    identity: BoardIdentity

    @abstractmethod
    def core_ids(self) -> list[int]:
        """The board's core ids (virtual ones for the simulator)."""

    @abstractmethod
    def host_cpus(self, core_id: int) -> frozenset[int]:
        """Host CPUs that run work placed on ``core_id`` (use them for affinity and cpusets)."""

    @abstractmethod
    def read(self) -> BoardReading:
        """One full snapshot; unreadable fields are None and named in ``missing``."""

    @abstractmethod
    def can_offline(self, core_id: int, *, online: bool = False) -> tuple[bool, str]:
        """Whether the core can be put offline (or back ``online``) and, if not, why."""

    @abstractmethod
    def set_core_online(self, core_id: int, online: bool) -> None:
        """Take a core offline or bring it online; raises HalUnsupported where not allowed."""

    @abstractmethod
    def watchdog(self, device: str | None = None) -> Watchdog:
        """The board's watchdog (not yet opened)."""

    def watchdog_info(self) -> WatchdogInfo | None:
        """What sysfs says about the configured watchdog device (nowayout, last reset...); None if nothing."""
        return None

    def close(self) -> None:
        """Release resources (the simulator's rendered tree)."""
        return None

    def __enter__(self) -> Board:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
