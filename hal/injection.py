"""Fault injection: a capability a board may have (the simulator has it, real boards do not).

Ask for it with ``isinstance(board, hal.FaultInjection)``; ``NoFaultInjection`` is the null behaviour a
caller holds for boards without it, so the caller needs no "is this a simulator" branches.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

from hal.board import Board
from hal.errors import HalError, HalUnsupported
from hal.types import TimelineEvent

FAULTS = {
    "seu": "flip bits in memory: count=N [address=WORD], or bits=[B,...] (exact bits of one word); "
    "EDAC counts them at the next scrub",
    "sefi": "hang a core until reset: core=N (random if omitted)",
    "reset": "reset a hung core: core=N",
    "sel": "latch-up current step until power cycle: delta_ma=MA (default 200)",
    "power-cycle": "cut and restore power: clears hangs, latch-ups and unscrubbed upsets",
    "core-fail": "a permanent core failure: core=N",
    "thermal-step": "extra heat: delta_w=W and/or an instant junction step delta_c=C",
    "saa": "force the South Atlantic Anomaly: on=true|false|none (none follows the orbit)",
    "sun": "force sun or eclipse: on=true|false|none",
}
"""The faults ``inject`` knows, with their arguments."""


class FaultArgumentError(HalError, ValueError):
    """An injection named an unknown fault or gave a bad argument; the message names it."""


@runtime_checkable
class FaultInjection(Protocol):
    """A board that injects faults and reports its own timeline and core states (the simulator)."""

    resume: bool
    """Whether persistent board state (watchdog resets) carries over from earlier runs."""

    @property
    def load_from_services(self) -> bool:
        """Whether the board's core loads are what the caller says its services burn (``set_load``)."""

    def inject(self, fault: str, args: Mapping[str, Any]) -> str:
        """Inject one fault of ``FAULTS`` with its arguments; return what was done (FaultArgumentError if bad)."""

    def events_since(self, t_s: float = 0.0) -> list[TimelineEvent]:
        """The board's timeline entries at or after board time ``t_s``, oldest first."""

    def core_state(self, core: int) -> str:
        """'ok', 'hung', 'offline' or 'failed', as the board itself knows it."""

    def set_load(self, core_id: int, pct: float) -> None:
        """Set a core's load (percent), used when ``load_from_services``."""


class NoFaultInjection:
    """The null behaviour for boards without fault injection: no timeline, cores 'ok', injection refused."""

    resume = True  # a real board keeps its state between runs
    load_from_services = False

    def __init__(self, backend: str) -> None:
        self.backend = backend

    def inject(self, fault: str, args: Mapping[str, Any]) -> str:
        """Refuse: only a board with the capability can inject faults."""
        raise HalUnsupported(
            f"fault injection needs a simulated board; this target's backend is "
            f"{self.backend!r} (use kill/stop drills on real boards)"
        )

    def events_since(self, t_s: float = 0.0) -> list[TimelineEvent]:
        """A board without a timeline has no entries."""
        return []

    def core_state(self, core: int) -> str:
        """No state of its own: 'ok' (the board reading says whether a core is online)."""
        return "ok"

    def set_load(self, core_id: int, pct: float) -> None:
        """Loads are measured on a real board, never set."""
        return None


def fault_injection(board: Board) -> FaultInjection:
    """The board's fault injection, or the null behaviour when it has none."""
    if isinstance(board, FaultInjection):
        return board
    return NoFaultInjection(board.identity.backend)
