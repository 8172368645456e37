"""The kernel's view of one service: its state, process, heartbeats and pending commands."""

from __future__ import annotations

import enum
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from flightos.config.target import ServiceConfig
from flightos.kernel.restart_policy import RestartTracker


class State(str, enum.Enum):
    """Where a service is in its life, as shown by ``flightos status``."""

    STARTING = "STARTING"
    READY = "READY"
    BACKOFF = "BACKOFF"
    RESTARTING = "RESTARTING"
    STOPPING = "STOPPING"
    STOPPED = "STOPPED"
    FAILED = "FAILED"
    DISABLED = "DISABLED"
    REMOTE = "REMOTE"
    """Another board runs it (after a failover); commands to it are routed there."""


ACCEPTS_QUEUED = {State.STARTING, State.BACKOFF, State.RESTARTING}
"""States in which commands wait in the bounded queue for the service to be ready again."""


@dataclass
class PendingCommand:
    """A command the kernel has accepted and not yet answered."""

    cid: str
    destination: str
    name: str
    args: Any
    deadline: float
    requesters: list[bytes]
    source: str
    delivered_to: int = 0
    timer: Any = None
    frame: bytes | None = None
    received_at: float = 0.0
    caller: str = ""
    """The calling service by its authenticated identity ("" for the local operator)."""
    forwarded: bool = False
    """Handed to the link for another board (it may run there)."""
    delivery_seq: int = 0
    """The destination's delivery count when this command was delivered (see ``ServiceRecord.deliveries``)."""


@dataclass
class ServiceRecord:
    """Everything the kernel tracks about one configured service."""

    cfg: ServiceConfig
    tracker: RestartTracker
    state: State = State.STOPPED
    pid: int | None = None
    incarnation: int = 0
    cores: list[int] = field(default_factory=list)
    host_cpus: list[int] = field(default_factory=list)
    spawned_at: float = 0.0
    ready_at: float = 0.0
    last_heartbeat: float = 0.0
    heartbeat: dict[str, Any] = field(default_factory=dict)
    cmd_attached: bool = False
    ctl_ready: bool = False
    restarts: int = 0
    last_exit: int | None = None
    hung: bool = False
    stop_requested: bool = False
    stop_reason: str = "stopped on request"
    restart_handle: Any = None
    inflight: dict[str, PendingCommand] = field(default_factory=dict)
    deliveries: int = 0
    """Commands delivered to the service, all incarnations: bounds what its started ledger may have overwritten."""
    queue: deque[PendingCommand] = field(default_factory=deque)
    throttle_sent: int = 0
    relocating: bool = False
    cpu_percent: float = 0.0
    rss_bytes: int = 0
    reason: str = ""
    interest: list[str] = field(default_factory=list)
    """Topic prefixes the service subscribes to (so peers know what to send this board)."""
    guest_of: str = ""
    """The home board of a service this board runs for a board that died."""
    escalated: bool = False
    """A critical service past its restart-intensity limit: retried slowly, forever; the watchdog goes unpetted."""
    cpu_wait_at_heartbeat: float = 0.0
    """Seconds the process had waited for a CPU at its last heartbeat (a starved service is not hung)."""
    verdict_deferred: bool = False
    """The current silence was already reported as deferred for a busy host (one event per silence)."""
    exit_cause: str = ""
    speed_factor: float = 1.0
    """The board's speed factor (health.speed): heartbeat and start limits are this many times longer."""
    """Why the last incarnation ended, in words (its own last error, the signal, a limit), for events and status."""

    @property
    def name(self) -> str:
        """The service's name."""
        return self.cfg.name

    @property
    def identity(self) -> str:
        """Bus identity of the current incarnation."""
        return f"s/{self.cfg.name}/{self.incarnation}"

    @property
    def hang_timeout(self) -> float:
        """Silence after which the service is declared hung: period x misses x the board's speed factor."""
        return self.cfg.heartbeat_period_s * self.cfg.heartbeat_misses * self.speed_factor
